using System.Buffers;
using Legate.Hosting.Wire;
using OverrideUnit = Envoy.Type.V3.RateLimitUnit;

namespace Legate.RateLimit;

/// <summary>
/// Reads an RLS <c>RateLimitRequest</c> from the protobuf wire format straight into an <see cref="RlsRequest"/>, with
/// the generated parser's semantics: fields matched by tag (field number and wire type), anything else skipped by its
/// wire type; the last domain, hits_addend, key and value win; descriptors and entries append in order; a descriptor's
/// <c>limit</c> given twice merges field by field and its <c>hits_addend</c> wrapper keeps a non-zero value over a later
/// zero; strings must be valid UTF-8. Malformed input (truncated, a length past its message, a varint over ten bytes, a
/// field number 0, wire type 6 or 7, an unmatched end-group tag, groups nested past the recursion limit) throws
/// <see cref="InvalidDataException"/>. Only stricter than Google.Protobuf in one place: a <c>hits_addend</c> wrapper
/// whose last field runs past the wrapper's length is refused, where Google.Protobuf reads on.
/// </summary>
public static class RlsRequestReader
{
    public static RlsRequest Read(ReadOnlySequence<byte> message)
    {
        if (message.IsSingleSegment)
            return Read(message.FirstSpan);
        // A message split over buffers (rare for a few hundred bytes): read a copy.
        var length = checked((int)message.Length);
        var copy = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            message.CopyTo(copy);
            return Read(copy.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    public static RlsRequest Read(ReadOnlySpan<byte> message)
    {
        var scratch = Scratch.Rent();
        try
        {
            var input = new WireReader(message);
            var domain = "";
            var hits = 0u;
            while (input.HasMore)
            {
                var tag = input.ReadTag();
                switch (tag)
                {
                    case 10: // string domain = 1
                        domain = input.ReadString();
                        break;
                    case 18: // repeated RateLimitDescriptor descriptors = 2
                        ReadDescriptor(input.ReadMessage(), scratch);
                        break;
                    case 24: // uint32 hits_addend = 3
                        hits = (uint)input.ReadVarint();
                        break;
                    default:
                        input.Skip(tag);
                        break;
                }
            }
            return scratch.ToRequest(domain, hits);
        }
        finally
        {
            scratch.Return();
        }
    }

    private static void ReadDescriptor(WireReader input, Scratch scratch)
    {
        var first = scratch.EntryCount;
        RlsLimitOverride? limit = null;
        ulong? hits = null;
        while (input.HasMore)
        {
            var tag = input.ReadTag();
            switch (tag)
            {
                case 10: // repeated Entry entries = 1
                    scratch.AddEntry(ReadEntry(input.ReadMessage()));
                    break;
                case 18: // RateLimitOverride limit = 2
                    limit = ReadOverride(input.ReadMessage(), limit ?? default);
                    break;
                case 26: // google.protobuf.UInt64Value hits_addend = 3
                    var value = ReadUInt64Value(input.ReadMessage());
                    if (hits is null || value != 0)
                        hits = value;
                    break;
                default:
                    input.Skip(tag);
                    break;
            }
        }
        scratch.AddDescriptor(first, limit, hits);
    }

    private static KeyValuePair<string, string> ReadEntry(WireReader input)
    {
        var key = "";
        var value = "";
        while (input.HasMore)
        {
            var tag = input.ReadTag();
            if (tag == 10)
                key = input.ReadString();
            else if (tag == 18)
                value = input.ReadString();
            else
                input.Skip(tag);
        }
        return new(key, value);
    }

    private static RlsLimitOverride ReadOverride(WireReader input, RlsLimitOverride limit)
    {
        while (input.HasMore)
        {
            var tag = input.ReadTag();
            if (tag == 8) // uint32 requests_per_unit = 1
                limit = limit with { RequestsPerUnit = (uint)input.ReadVarint() };
            else if (tag == 16) // RateLimitUnit unit = 2 (an open enum: any value is kept)
                limit = limit with { Unit = (OverrideUnit)(int)input.ReadVarint() };
            else
                input.Skip(tag);
        }
        return limit;
    }

    private static ulong ReadUInt64Value(WireReader input)
    {
        var value = 0ul;
        while (input.HasMore)
        {
            var tag = input.ReadTag();
            if (tag == 8)
                value = input.ReadVarint();
            else
                input.Skip(tag);
        }
        return value;
    }

    /// <summary>
    /// Descriptors and entries while a request is read, copied into arrays of the exact size at the end. Each thread
    /// keeps one (as long as it is small), so reading allocates only the request's own objects and strings.
    /// </summary>
    private sealed class Scratch
    {
        private const int KeepAtMost = 256;

        [ThreadStatic]
        private static Scratch? _spare;

        private (int First, int Count, RlsLimitOverride? Limit, ulong? Hits)[] _descriptors = new (int, int, RlsLimitOverride?, ulong?)[8];
        private KeyValuePair<string, string>[] _entries = new KeyValuePair<string, string>[16];
        private int _descriptorCount;

        public int EntryCount { get; private set; }

        public static Scratch Rent()
        {
            var scratch = _spare ?? new Scratch();
            _spare = null;
            return scratch;
        }

        public void Return()
        {
            // Drop the strings, so a spare keeps no request's values alive.
            Array.Clear(_entries, 0, EntryCount);
            EntryCount = 0;
            _descriptorCount = 0;
            if (_entries.Length <= KeepAtMost && _descriptors.Length <= KeepAtMost)
                _spare = this;
        }

        public void AddEntry(KeyValuePair<string, string> entry)
        {
            if (EntryCount == _entries.Length)
                Array.Resize(ref _entries, _entries.Length * 2);
            _entries[EntryCount++] = entry;
        }

        public void AddDescriptor(int first, RlsLimitOverride? limit, ulong? hits)
        {
            if (_descriptorCount == _descriptors.Length)
                Array.Resize(ref _descriptors, _descriptors.Length * 2);
            _descriptors[_descriptorCount++] = (first, EntryCount - first, limit, hits);
        }

        public RlsRequest ToRequest(string domain, uint hits)
        {
            var entries = _entries.AsSpan(0, EntryCount).ToArray();
            var descriptors = new RlsDescriptor[_descriptorCount];
            for (var i = 0; i < descriptors.Length; i++)
            {
                var (first, count, limit, descriptorHits) = _descriptors[i];
                descriptors[i] = new RlsDescriptor(new ArraySegment<KeyValuePair<string, string>>(entries, first, count), limit, descriptorHits);
            }
            return new RlsRequest(domain, descriptors, hits);
        }
    }
}
