using System.Buffers;
using System.Text;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Google.Protobuf;

namespace Legate.RateLimit.Tests;

/// <summary>
/// <see cref="RlsRequestReader"/> against the generated parser (what the service used before, and what gRPC's generated
/// marshaller calls): the same request from the same bytes, the same refusals, on hand-made and random messages.
/// </summary>
public sealed class RlsRequestReaderTests
{
    [Fact]
    public void AnEnvoyRequest_ReadsAsTheGeneratedParserReadsIt()
    {
        var request = new RateLimitRequest
        {
            Domain = "edge",
            HitsAddend = 3,
            Descriptors =
            {
                Descriptor(("tenant", "acme")),
                Descriptor(("tenant", "acme"), ("client", "c1")),
                new RateLimitDescriptor
                {
                    Entries = { new RateLimitDescriptor.Types.Entry { Key = "remote_address", Value = "10.0.0.1" } },
                    Limit = new() { RequestsPerUnit = 42, Unit = Envoy.Type.V3.RateLimitUnit.Minute },
                    HitsAddend = 0,
                },
            },
        };

        var read = RlsRequestReader.Read(request.ToByteArray());

        Assert.Equal("edge", read.Domain);
        Assert.Equal(3u, read.HitsAddend);
        Assert.Equal(3, read.Descriptors.Length);
        Assert.Equal([KeyValuePair.Create("tenant", "acme"), KeyValuePair.Create("client", "c1")], read.Descriptors[1].Entries);
        Assert.Null(read.Descriptors[0].Limit);
        Assert.Null(read.Descriptors[0].HitsAddend);
        Assert.Equal(new RlsLimitOverride(42, Envoy.Type.V3.RateLimitUnit.Minute), read.Descriptors[2].Limit);
        Assert.Equal(0ul, read.Descriptors[2].HitsAddend);
        AssertSame(request.ToByteArray());
    }

    [Fact]
    public void UnknownFieldsOfEveryWireType_AreSkippedAtEveryLevel()
    {
        var entry = Message(w => w.String(1, "k").Unknowns().String(2, "v").Unknowns());
        var limit = Message(w => w.Unknowns().Varint(1, 7).Unknowns().Varint(2, 3));
        var hits = Message(w => w.Unknowns().Varint(1, 9).Unknowns());
        var descriptor = Message(w => w.Unknowns().Bytes(1, entry).Unknowns().Bytes(2, limit).Bytes(3, hits).Unknowns());

        var bytes = Message(w => w.Unknowns().String(1, "d").Unknowns().Bytes(2, descriptor).Varint(3, 5).Unknowns());

        var read = AssertSame(bytes);
        Assert.Equal(new RlsDescriptor(read.Descriptors[0].Entries, new RlsLimitOverride(7, Envoy.Type.V3.RateLimitUnit.Hour), 9), read.Descriptors[0]);
    }

    [Fact]
    public void KnownFieldNumbersWithAnotherWireType_AreUnknownFields()
    {
        // domain as a varint, descriptors as fixed32, hits_addend length-delimited: all skipped, as the generated code
        // matches whole tags.
        var bytes = Message(w => w.String(1, "d").Varint(1, 5).Fixed32(2, 1).Bytes(3, [1, 2]).Varint(3, 4));

        var read = AssertSame(bytes);
        Assert.Equal("d", read.Domain);
        Assert.Equal(4u, read.HitsAddend);
    }

    [Fact]
    public void RepeatedScalarsAndStrings_TheLastWins_DescriptorsAndEntriesAppend_ALimitGivenTwiceMerges()
    {
        var entry = Message(w => w.String(1, "k1").String(2, "v1").String(1, "k2"));
        var descriptor = Message(w => w
            .Bytes(1, entry)
            .Bytes(2, Message(l => l.Varint(1, 10).Varint(2, 1)))
            .Bytes(1, Message(e => e.String(1, "other")))
            .Bytes(2, Message(l => l.Varint(2, 4))));
        var bytes = Message(w => w.String(1, "first").Varint(3, 7).Bytes(2, descriptor).String(1, "second").Varint(3, 0).Bytes(2, []));

        var read = AssertSame(bytes);
        Assert.Equal("second", read.Domain);
        Assert.Equal(0u, read.HitsAddend);
        Assert.Equal([KeyValuePair.Create("k2", "v1"), KeyValuePair.Create("other", "")], read.Descriptors[0].Entries);
        Assert.Equal(new RlsLimitOverride(10, Envoy.Type.V3.RateLimitUnit.Day), read.Descriptors[0].Limit);
        Assert.Equal(0, read.Descriptors[1].Entries.Count);
    }

    [Theory]
    [InlineData(new ulong[] { 5, 0 }, 5ul)] // a later zero does not clear the wrapper (proto3 merge of a message)
    [InlineData(new ulong[] { 0, 5 }, 5ul)]
    [InlineData(new ulong[] { 0 }, 0ul)] // present and zero: check only
    [InlineData(new ulong[] { 5, 6 }, 6ul)]
    [InlineData(new ulong[] { ulong.MaxValue }, ulong.MaxValue)]
    public void HitsAddendWrapper_MergesAsTheGeneratedCode(ulong[] values, ulong expected)
    {
        var descriptor = Message(w =>
        {
            foreach (var value in values)
                w.Bytes(3, value == 0 ? [] : Message(h => h.Varint(1, value)));
        });

        var read = AssertSame(Message(w => w.String(1, "d").Bytes(2, descriptor)));
        Assert.Equal(expected, read.Descriptors[0].HitsAddend);
    }

    [Fact]
    public void BigAndOverlongVarints_KeepTheLow32BitsOfUInt32FieldsTagsAndEnums()
    {
        // hits_addend = 2^32 + 9 (reads as 9); a tag written in ten bytes; a unit of 2^31 + 3 (an unknown enum value).
        var overlongTag = new byte[] { 0x8A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 }; // 10 = field 1, LEN
        var limit = Message(w => w.Varint(1, ulong.MaxValue).Varint(2, (1ul << 31) + 3));
        var bytes = Message(w => w.Raw(overlongTag).Raw([1, (byte)'x']).Varint(3, (1ul << 32) + 9)
            .Bytes(2, Message(d => d.Bytes(2, limit))));

        var read = AssertSame(bytes);
        Assert.Equal("x", read.Domain);
        Assert.Equal(9u, read.HitsAddend);
        Assert.Equal(uint.MaxValue, read.Descriptors[0].Limit!.Value.RequestsPerUnit);
        Assert.Equal(unchecked((Envoy.Type.V3.RateLimitUnit)(int)((1u << 31) + 3)), read.Descriptors[0].Limit!.Value.Unit);
    }

    [Fact]
    public void EmptyAndNonAsciiStrings_ReadAsTheGeneratedParserReadsThem()
    {
        var entry = Message(w => w.String(1, "").String(2, "zürich-日本-😀"));
        var read = AssertSame(Message(w => w.String(1, "").Bytes(2, Message(d => d.Bytes(1, entry))).Bytes(2, Message(d => d.Bytes(1, [])))));
        Assert.Equal(KeyValuePair.Create("", "zürich-日本-😀"), read.Descriptors[0].Entries[0]);
        Assert.Equal(KeyValuePair.Create("", ""), read.Descriptors[1].Entries[0]);
    }

    [Fact]
    public void GroupsNestedUpToTheRecursionLimit_AreSkipped_OneMoreIsRefused()
    {
        // Google.Protobuf counts messages and groups together, to 100: a hundred groups at the top level pass.
        AssertSame(Message(w => w.String(1, "d").Groups(100)));
        AssertBothRefuse(Message(w => w.String(1, "d").Groups(101)));
        // Inside a descriptor the message itself counts one.
        AssertSame(Message(w => w.Bytes(2, Message(d => d.Groups(99)))));
        AssertBothRefuse(Message(w => w.Bytes(2, Message(d => d.Groups(100)))));
    }

    public static TheoryData<string, byte[]> MalformedMessages() => new()
    {
        { "field number 0", [0x00] },
        { "field number 0 with a wire type", [0x02, 0x00] },
        { "wire type 6", [0x0E] },
        { "wire type 7", [0x0F] },
        { "end group without start", [0x0C] },
        { "end group of another field", [0x0B, 0x14] },
        { "group without end", [0x0B, 0x08, 0x01] },
        { "varint of eleven bytes", [0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] },
        { "truncated varint", [0x18, 0xFF] },
        { "truncated fixed64", [0x21, 1, 2, 3] },
        { "truncated fixed32", [0x25, 1, 2] },
        { "length past the end", [0x0A, 0x05, (byte)'a'] },
        { "negative length", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F] },
        { "invalid UTF-8 in the domain", [0x0A, 0x02, 0xC3, 0x28] },
        { "invalid UTF-8 in a value", [0x12, 0x06, 0x0A, 0x04, 0x12, 0x02, 0xFF, 0xFE] },
        { "an entry past its descriptor", [0x12, 0x02, 0x0A, 0x05, (byte)'a', (byte)'b', (byte)'c'] },
        { "end group inside a descriptor", [0x12, 0x01, 0x0C] },
        { "malformed limit", [0x12, 0x03, 0x12, 0x01, 0x08] },
    };

    [Theory]
    [MemberData(nameof(MalformedMessages))]
    public void MalformedMessages_AreRefusedByBoth(string what, byte[] bytes)
    {
        Assert.NotNull(what);
        AssertBothRefuse(bytes);
    }

    [Fact]
    public void AWrapperWhoseLastFieldRunsPastItsLength_IsRefused_WhereGoogleProtobufReadsOn()
    {
        // hits_addend { length 2: tag 8, then a varint 0x80 0x01 that ends one byte after the wrapper }.
        byte[] bytes = [0x12, 0x05, 0x1A, 0x02, 0x08, 0x80, 0x01];

        Assert.Equal(128ul, RateLimitRequest.Parser.ParseFrom(bytes).Descriptors[0].HitsAddend);
        Assert.Throws<InvalidDataException>(() => RlsRequestReader.Read(bytes));
    }

    [Fact]
    public void EveryPrefixOfAMessage_ReadsOrIsRefusedAsByTheGeneratedParser()
    {
        var random = new Random(7);
        var bytes = RandomRequest(random);
        for (var length = 0; length <= bytes.Length; length++)
            AssertAgrees(bytes[..length]);
    }

    [Fact]
    public void RandomMessages_ReadAsTheGeneratedParserReadsThem()
    {
        var random = new Random(20261127);
        for (var i = 0; i < 3000; i++)
            AssertSame(RandomRequest(random));
    }

    [Fact]
    public void RandomlyDamagedMessages_AreReadOrRefusedAsByTheGeneratedParser()
    {
        var random = new Random(42);
        var read = 0;
        var refused = 0;
        for (var i = 0; i < 5000; i++)
        {
            var bytes = RandomRequest(random);
            if (bytes.Length == 0)
                continue;
            for (var n = random.Next(1, 4); n > 0; n--)
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            if (AssertAgrees(bytes))
                read++;
            else
                refused++;
        }

        // Both outcomes, many times each: the damage is neither always fatal nor always harmless.
        Assert.InRange(read, 500, 4500);
        Assert.InRange(refused, 500, 4500);
    }

    [Fact]
    public void AMessageSplitOverBuffers_ReadsAsOneBuffer()
    {
        var bytes = RandomRequest(new Random(3));
        var first = new Segment(bytes.AsMemory(0, bytes.Length / 2));
        var last = first.Append(bytes.AsMemory(bytes.Length / 2));

        var split = RlsRequestReader.Read(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length));

        Assert.Equal(Describe(RlsRequestReader.Read(bytes)), Describe(split));
    }

    [Fact]
    public void From_ConvertsAParsedMessage()
    {
        var bytes = RandomRequest(new Random(11));

        Assert.Equal(Describe(RateLimitRequest.Parser.ParseFrom(bytes)), Describe(RlsRequest.From(RateLimitRequest.Parser.ParseFrom(bytes))));
    }

    private static RlsRequest AssertSame(byte[] bytes)
    {
        var expected = RateLimitRequest.Parser.ParseFrom(new ReadOnlySequence<byte>(bytes));
        var read = RlsRequestReader.Read(new ReadOnlySequence<byte>(bytes));
        Assert.Equal(Describe(expected), Describe(read));
        return read;
    }

    private static void AssertBothRefuse(byte[] bytes)
    {
        Assert.Throws<InvalidProtocolBufferException>(() => RateLimitRequest.Parser.ParseFrom(bytes));
        Assert.Throws<InvalidDataException>(() => RlsRequestReader.Read(bytes));
    }

    // Both read it alike, or both refuse it; the reader may also refuse the one message Google.Protobuf is lax about
    // (a wrapper overrun, above), and never fails other than with InvalidDataException.
    private static bool AssertAgrees(byte[] bytes)
    {
        RateLimitRequest? expected;
        try
        {
            expected = RateLimitRequest.Parser.ParseFrom(bytes);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidOperationException)
        {
            // (Google.Protobuf throws InvalidOperationException for a hits_addend wrapper cut short by its descriptor.)
            expected = null;
        }
        RlsRequest? read;
        try
        {
            read = RlsRequestReader.Read(bytes);
        }
        catch (InvalidDataException)
        {
            read = null;
        }
        if (read is not null)
            Assert.Equal(Describe(expected ?? throw new Xunit.Sdk.XunitException($"read what Google.Protobuf refuses: {Convert.ToHexString(bytes)}")), Describe(read));
        else if (expected is not null)
            Assert.True(HasWrapperOverrun(bytes), $"refused what Google.Protobuf reads: {Convert.ToHexString(bytes)}");
        return read is not null;
    }

    // Whether Google.Protobuf reads the message only through its lax hits_addend wrapper: parsed again with every
    // wrapper's varint kept inside its length, it is refused.
    private static bool HasWrapperOverrun(byte[] bytes)
    {
        var parsed = RateLimitRequest.Parser.ParseFrom(bytes);
        return parsed.Descriptors.Any(d => d.HitsAddend is not null) && !ParsesStrictly(bytes);
    }

    private static bool ParsesStrictly(byte[] bytes)
    {
        // Google.Protobuf's own UInt64Value parser, as a message, is strict: check each descriptor's wrappers with it.
        try
        {
            foreach (var descriptor in Fields(bytes).Where(f => f.Tag == 18))
            {
                foreach (var wrapper in Fields(descriptor.Payload).Where(f => f.Tag == 26))
                    Google.Protobuf.WellKnownTypes.UInt64Value.Parser.ParseFrom(wrapper.Payload);
            }
            return true;
        }
        catch (InvalidProtocolBufferException)
        {
            return false;
        }
    }

    // Top-level length-delimited fields of a message that Google.Protobuf read (so well-formed at this level).
    private static List<(uint Tag, byte[] Payload)> Fields(byte[] bytes)
    {
        var fields = new List<(uint Tag, byte[] Payload)>();
        var input = new CodedInputStream(bytes);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if ((tag & 7) == 2)
                fields.Add((tag, input.ReadBytes().ToByteArray()));
            else
                input.SkipLastField();
        }
        return fields;
    }

    private static string Describe(RateLimitRequest request) =>
        Describe(request.Domain, request.HitsAddend, request.Descriptors.Select(d => (
            d.Entries.Select(e => (e.Key, e.Value)),
            d.Limit is null ? "none" : $"{d.Limit.RequestsPerUnit}/{(int)d.Limit.Unit}",
            d.HitsAddend)));

    private static string Describe(RlsRequest request) =>
        Describe(request.Domain, request.HitsAddend, request.Descriptors.ToArray().Select(d => (
            d.Entries.Select(e => (e.Key, e.Value)),
            d.Limit is not { } limit ? "none" : $"{limit.RequestsPerUnit}/{(int)limit.Unit}",
            d.HitsAddend)));

    private static string Describe(string domain, uint hits, IEnumerable<(IEnumerable<(string Key, string Value)> Entries, string Limit, ulong? Hits)> descriptors)
    {
        var text = new StringBuilder().Append(Quote(domain)).Append(" hits=").Append(hits);
        foreach (var (entries, limit, descriptorHits) in descriptors)
        {
            text.Append(" [");
            foreach (var (key, value) in entries)
                text.Append(Quote(key)).Append('=').Append(Quote(value)).Append(' ');
            text.Append("limit=").Append(limit).Append(" hits=").Append(descriptorHits?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none").Append(']');
        }
        return text.ToString();
    }

    private static string Quote(string text) => $"{text.Length}:{text}";

    private static RateLimitDescriptor Descriptor(params (string Key, string Value)[] entries)
    {
        var descriptor = new RateLimitDescriptor();
        foreach (var (key, value) in entries)
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
        return descriptor;
    }

    private static byte[] Message(Action<Wire> write)
    {
        var wire = new Wire();
        write(wire);
        return wire.ToArray();
    }

    // A request in wire format with what an encoder may send and the generated parser accepts: fields in any order and
    // repeated, unknown fields of every wire type (and known numbers with another wire type), groups, overlong varints,
    // empty and non-ASCII strings.
    private static byte[] RandomRequest(Random random)
    {
        var wire = new Wire(random);
        for (var n = random.Next(0, 6); n > 0; n--)
        {
            switch (random.Next(5))
            {
                case 0:
                    wire.String(1, RandomString(random));
                    break;
                case 1 or 2:
                    wire.Bytes(2, RandomDescriptor(random));
                    break;
                case 3:
                    wire.Varint(3, RandomVarint(random));
                    break;
                default:
                    wire.Unknowns();
                    break;
            }
        }
        return wire.ToArray();
    }

    private static byte[] RandomDescriptor(Random random)
    {
        var wire = new Wire(random);
        for (var n = random.Next(0, 6); n > 0; n--)
        {
            switch (random.Next(6))
            {
                case 0 or 1 or 2:
                    wire.Bytes(1, RandomFields(random, 4, e => e.String(random.Next(1, 3), RandomString(random))));
                    break;
                case 3:
                    wire.Bytes(2, RandomFields(random, 4, l => l.Varint(random.Next(1, 3), RandomVarint(random))));
                    break;
                case 4:
                    wire.Bytes(3, RandomFields(random, 3, h => h.Varint(1, RandomVarint(random))));
                    break;
                default:
                    wire.Unknowns();
                    break;
            }
        }
        return wire.ToArray();
    }

    private static readonly string[] Pieces = ["", "a", "tenant", "acme", "10.0.0.1", "client", "é", "日本", "😀", "=", "|", "*", " "];

    // Fewer than max fields, each an unknown one a quarter of the time, else one that field writes.
    private static byte[] RandomFields(Random random, int max, Action<Wire> field) => Message(w =>
    {
        for (var m = random.Next(0, max); m > 0; m--)
        {
            if (random.Next(4) == 0)
                w.Unknowns();
            else
                field(w);
        }
    });

    private static string RandomString(Random random)
    {
        var text = new StringBuilder();
        for (var n = random.Next(0, 4); n > 0; n--)
            text.Append(Pieces[random.Next(Pieces.Length)]);
        return text.ToString();
    }

    private static ulong RandomVarint(Random random) => random.Next(5) switch
    {
        0 => 0,
        1 => (ulong)random.Next(1, 128),
        2 => (ulong)random.NextInt64(),
        3 => ulong.MaxValue - (ulong)random.Next(3),
        _ => (1ul << 32) + (ulong)random.Next(10),
    };

    /// <summary>Writes protobuf wire format by hand, including what a generated encoder never writes.</summary>
    private sealed class Wire(Random? random = null)
    {
        private readonly List<byte> _bytes = [];

        public byte[] ToArray() => [.. _bytes];

        public Wire Raw(byte[] bytes)
        {
            _bytes.AddRange(bytes);
            return this;
        }

        public Wire Varint(int field, ulong value) => Tag(field, 0).Number(value);

        public Wire String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public Wire Bytes(int field, byte[] value) => Tag(field, 2).Number((ulong)value.Length).Raw(value);

        public Wire Fixed32(int field, uint value) => Tag(field, 5).Raw(BitConverter.GetBytes(value));

        public Wire Fixed64(int field, ulong value) => Tag(field, 1).Raw(BitConverter.GetBytes(value));

        /// <summary><paramref name="depth"/> groups of field 9, nested, each closed.</summary>
        public Wire Groups(int depth)
        {
            for (var i = 0; i < depth; i++)
                Tag(9, 3);
            for (var i = 0; i < depth; i++)
                Tag(9, 4);
            return this;
        }

        /// <summary>A few unknown fields: every wire type, and known numbers with a wire type they do not have.</summary>
        public Wire Unknowns()
        {
            var random1 = random ?? new Random(1);
            Varint(random1.Next(4, 2000), RandomVarint(random1));
            Fixed64(random1.Next(4, 20), (ulong)random1.NextInt64());
            Fixed32(random1.Next(4, 20), (uint)random1.Next());
            Bytes(random1.Next(4, 20), [1, 2, 3]);
            Tag(7, 3).Varint(1, 5).Bytes(2, [9]).Tag(8, 3).Fixed32(1, 1).Tag(8, 4).Tag(7, 4);
            Fixed32(1, 7).Fixed64(2, 8).Fixed32(3, 9);
            return this;
        }

        private Wire Tag(int field, int wireType) => Number(((ulong)field << 3) | (uint)wireType);

        // Now and then overlong, as protobuf allows (up to ten bytes in all).
        private Wire Number(ulong value)
        {
            var padding = random is not null && random.Next(8) == 0 ? random.Next(1, 4) : 0;
            var bytes = new List<byte>();
            do
            {
                bytes.Add((byte)((value & 0x7F) | 0x80));
                value >>= 7;
            }
            while (value != 0);
            for (var i = 0; i < padding && bytes.Count < 10; i++)
                bytes.Add(0x80);
            bytes[^1] &= 0x7F;
            _bytes.AddRange(bytes);
            return this;
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
