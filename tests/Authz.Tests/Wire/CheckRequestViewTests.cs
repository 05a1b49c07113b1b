using System.Text;
using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using Google.Protobuf;
using Legate.Authz.Wire;

namespace Legate.Authz.Tests.Wire;

/// <summary>
/// The view authz reads a served CheckRequest through, against Google.Protobuf's generated parser on the same bytes:
/// hand-made requests, thousands of generated ones (merged messages, repeated map keys, unknown fields and groups at
/// every level, a oneof switched back and forth, non-ASCII text), and every truncation of them.
/// </summary>
public sealed class CheckRequestViewTests
{
    private static readonly string[] Words = ["", "a", "GET", "x-api-key", ":authority", "/orders?page=2", "api.example.com", "é", "日本語", "😀 emoji", "10.0.0.1", "::1", "A,B", "authorization"];

    [Fact]
    public void AnEnvoyShapedRequest_ReadsAsTheGeneratedParserReadsIt()
    {
        var request = new CheckRequest
        {
            Attributes = new AttributeContext
            {
                Source = new AttributeContext.Types.Peer
                {
                    Address = new Address { SocketAddress = new SocketAddress { Address = "10.42.7.19", PortValue = 53188 } }, Principal = "spiffe://x",
                },
                Destination = new AttributeContext.Types.Peer { Address = new Address { SocketAddress = new SocketAddress { Address = "10.42.3.4" } } },
                Request = new AttributeContext.Types.Request
                {
                    Time = new Google.Protobuf.WellKnownTypes.Timestamp { Seconds = 1767225600 },
                    Http = new AttributeContext.Types.HttpRequest
                    {
                        Id = "9a8b", Method = "GET", Path = "/orders?page=2", Host = "api.example.com", Scheme = "https", Protocol = "HTTP/2",
                        Headers = { [":authority"] = "api.example.com", ["x-api-key"] = "lgt_abc", ["accept"] = "application/json" },
                        Body = "{}",
                    },
                },
                ContextExtensions = { ["policy"] = "orders-read", ["tenant"] = "acme" },
            },
        };

        var view = CheckRequestView.Parse(request.ToByteArray());

        AssertSame(request, view);
        Assert.Equal("lgt_abc", view.Headers["x-api-key"]);
        Assert.Equal("acme", view.ContextExtensions["tenant"]);
        Assert.Equal("10.42.7.19", view.SourceAddress);
    }

    [Fact]
    public void AnEmptyMessage_HasNoHttpAttributes()
    {
        var view = CheckRequestView.Parse([]);

        Assert.False(view.HasHttp);
        Assert.Null(view.SourceAddress);
        Assert.Empty(view.Headers);
        Assert.False(view.Headers.ContainsKey(""));
    }

    [Fact]
    public void ARepeatedHeaderKey_KeepsTheLastValue_AsAMapDoes()
    {
        var first = Request(new AttributeContext.Types.HttpRequest { Headers = { ["x-api-key"] = "first", ["accept"] = "a" } });
        var second = Request(new AttributeContext.Types.HttpRequest { Headers = { ["x-api-key"] = "second" } });
        var bytes = first.ToByteArray().Concat(second.ToByteArray()).ToArray();

        var view = CheckRequestView.Parse(bytes);

        Assert.Equal("second", view.Headers["x-api-key"]);
        Assert.Equal(2, view.Headers.Count);
        AssertSame(CheckRequest.Parser.ParseFrom(bytes), view);
    }

    [Fact]
    public void APipeAfterASocketAddress_LeavesNoSourceAddress_AndASocketAddressAfterAPipeStartsAfresh()
    {
        static byte[] Peer(Address address) => new CheckRequest { Attributes = new AttributeContext { Source = new AttributeContext.Types.Peer { Address = address } } }.ToByteArray();
        var socket = Peer(new Address { SocketAddress = new SocketAddress { Address = "10.0.0.1" } });
        var pipe = Peer(new Address { Pipe = new Pipe { Path = "/tmp/s" } });
        var portOnly = Peer(new Address { SocketAddress = new SocketAddress { PortValue = 80 } });

        Assert.Null(CheckRequestView.Parse([.. socket, .. pipe]).SourceAddress);
        Assert.Equal("", CheckRequestView.Parse([.. socket, .. pipe, .. portOnly]).SourceAddress);
        Assert.Equal("10.0.0.1", CheckRequestView.Parse([.. socket, .. portOnly]).SourceAddress);
        foreach (var bytes in new byte[][] { [.. socket, .. pipe], [.. socket, .. pipe, .. portOnly], [.. socket, .. portOnly] })
            AssertSame(CheckRequest.Parser.ParseFrom(bytes), CheckRequestView.Parse(bytes));
    }

    [Fact]
    public void RawHeaders_AsEnvoySendsThemWithEncodeRawHeaders_ReadAsTheHeadersMapItWouldHaveSent()
    {
        static HeaderValue Raw(string key, params byte[] value) => new() { Key = key, RawValue = ByteString.CopyFrom(value) };
        var http = new AttributeContext.Types.HttpRequest
        {
            Method = "GET",
            HeaderMap = new HeaderMap
            {
                Headers =
                {
                    Raw("x-api-key", Utf8("lgt_abc")), Raw("accept", Utf8("text/html")), Raw("accept", Utf8("application/json")),
                    Raw("x-bytes", 0x61, 0xFF, 0x62), Raw("x-empty"), new HeaderValue { Key = "x-value", Value = "plain" },
                },
            },
        };

        var view = CheckRequestView.Parse(Request(http).ToByteArray());

        Assert.Equal("lgt_abc", view.Headers["x-api-key"]);
        Assert.Equal("text/html,application/json", view.Headers["accept"]); // repeated headers joined, as in the map
        Assert.Equal("a!b", view.Headers["x-bytes"]); // not UTF-8: "!", as in the map
        Assert.Equal("", view.Headers["x-empty"]);
        Assert.Equal("plain", view.Headers["x-value"]);
        Assert.False(view.Headers.ContainsKey("x-missing"));
        Assert.Equal(["x-api-key", "accept", "x-bytes", "x-empty", "x-value"], view.Headers.Keys);
        Assert.Equal("text/html,application/json", view.Headers.Single(h => h.Key == "accept").Value);
    }

    [Fact]
    public void TheHeadersMapAndRawHeadersBoth_AreReadByTheMap()
    {
        var http = new AttributeContext.Types.HttpRequest
        {
            Headers = { ["x-api-key"] = "from-map" },
            HeaderMap = new HeaderMap { Headers = { new HeaderValue { Key = "x-api-key", RawValue = ByteString.CopyFromUtf8("from-raw") } } },
        };

        Assert.Equal("from-map", CheckRequestView.Parse(Request(http).ToByteArray()).Headers["x-api-key"]);
    }

    [Fact]
    public void InvalidUtf8_InAFieldItReads_IsRefused_InAFieldItSkips_IsNot()
    {
        // DEL (0x7F) marks the byte that becomes 0xFF, never valid in UTF-8.
        var header = Request(new AttributeContext.Types.HttpRequest { Headers = { ["x-bad"] = "~\u007F~" } }).ToByteArray();
        var skipped = Request(new AttributeContext.Types.HttpRequest { Id = "~\u007F~", Method = "GET" }).ToByteArray();
        header[Array.IndexOf(header, (byte)0x7F)] = 0xFF;
        skipped[Array.IndexOf(skipped, (byte)0x7F)] = 0xFF;

        Assert.Throws<InvalidProtocolBufferException>(() => CheckRequest.Parser.ParseFrom(header));
        Assert.Throws<InvalidDataException>(() => CheckRequestView.Parse(header));
        // The generated parser refuses the request id too; authz never reads it, so the request is still decided.
        Assert.Equal("GET", CheckRequestView.Parse(skipped).Method);
    }

    [Fact]
    public void GeneratedRequests_MergedAndWithUnknownFields_ReadAsTheGeneratedParserReadsThem()
    {
        var random = new Random(20261127);
        for (var i = 0; i < 3000; i++)
        {
            var bytes = RandomMessage(random);
            AssertSame(CheckRequest.Parser.ParseFrom(bytes), CheckRequestView.Parse(bytes));
        }
    }

    [Fact]
    public void EveryTruncation_FailsExactlyWhenTheGeneratedParserFails_AndOtherwiseReadsTheSame()
    {
        var random = new Random(7);
        var truncations = 0;
        for (var i = 0; i < 200; i++)
        {
            var bytes = RandomMessage(random);
            for (var length = 0; length < bytes.Length; length++)
            {
                var prefix = bytes[..length];
                CheckRequest? expected;
                try
                {
                    expected = CheckRequest.Parser.ParseFrom(prefix);
                }
                catch (InvalidProtocolBufferException)
                {
                    expected = null;
                }
                if (expected is null)
                {
                    Assert.Throws<InvalidDataException>(() => CheckRequestView.Parse(prefix));
                    truncations++;
                }
                else
                {
                    AssertSame(expected, CheckRequestView.Parse(prefix));
                }
            }
        }
        Assert.True(truncations > 1000, $"only {truncations} malformed prefixes");
    }

    [Theory]
    [InlineData(new byte[] { 0x08 }, "Truncated")] // a varint field with no value
    [InlineData(new byte[] { 0x00 }, "field number 0")]
    [InlineData(new byte[] { 0x0E }, "wire type 6")]
    [InlineData(new byte[] { 0x0C }, "end-group")] // an end group with no start
    [InlineData(new byte[] { 0x0B, 0x08, 0x01 }, "no end")] // a group never closed
    [InlineData(new byte[] { 0x0B, 0x14 }, "another field")] // group 1 closed as group 2
    [InlineData(new byte[] { 0x0A, 0x05, 0x01 }, "Truncated")] // 5 bytes announced, 1 present
    [InlineData(new byte[] { 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, "Malformed varint")]
    public void MalformedInput_IsRefusedWithItsReason(byte[] bytes, string reason)
    {
        var e = Assert.Throws<InvalidDataException>(() => CheckRequestView.Parse(bytes));

        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidProtocolBufferException>(() => CheckRequest.Parser.ParseFrom(bytes));
    }

    [Fact]
    public void GroupsNestedTooDeeply_AreRefused()
    {
        var bytes = Enumerable.Repeat((byte)0x0B, 101).Concat(Enumerable.Repeat((byte)0x0C, 101)).ToArray();

        Assert.Contains("too deeply", Assert.Throws<InvalidDataException>(() => CheckRequestView.Parse(bytes)).Message, StringComparison.Ordinal);
        Assert.Throws<InvalidProtocolBufferException>(() => CheckRequest.Parser.ParseFrom(bytes));
    }

    private static CheckRequest Request(AttributeContext.Types.HttpRequest http)
        => new() { Attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } } };

    /// <summary>Several generated messages and unknown fields, concatenated: protobuf reads a concatenation as a merge.</summary>
    private static byte[] RandomMessage(Random random)
    {
        var output = new List<byte>();
        var parts = random.Next(1, 4);
        for (var p = 0; p < parts; p++)
        {
            switch (random.Next(4))
            {
                case 0:
                    output.AddRange(Unknown(random));
                    break;
                case 1:
                    // Unknown fields inside each level that is read: attributes, request, http, a header entry, the peer.
                    var header = Field(3, [.. Unknown(random), .. Field(1, Utf8(Pick(random))), .. Unknown(random), .. Field(2, Utf8(Pick(random)))]);
                    var http = Field(2, [.. Unknown(random), .. header, .. Unknown(random), .. Field(2, Utf8(Pick(random)))]);
                    var socket = Field(1, [.. Unknown(random), .. Field(2, Utf8(Pick(random))), .. Unknown(random)]);
                    var source = Field(1, [.. Field(1, [.. Unknown(random), .. socket]), .. Unknown(random)]);
                    output.AddRange(Field(1, [.. Unknown(random), .. Field(4, [.. Unknown(random), .. http]), .. source, .. Unknown(random)]));
                    break;
                default:
                    output.AddRange(RandomRequest(random).ToByteArray());
                    break;
            }
        }
        return [.. output];
    }

    private static CheckRequest RandomRequest(Random random)
    {
        var attributes = new AttributeContext();
        if (random.Next(4) > 0)
        {
            var http = new AttributeContext.Types.HttpRequest { Method = Pick(random), Path = Pick(random), Host = Pick(random), Id = Pick(random), Body = Pick(random) };
            for (var i = random.Next(6); i > 0; i--)
                http.Headers[Pick(random)] = Pick(random);
            attributes.Request = new AttributeContext.Types.Request { Http = http };
        }
        if (random.Next(2) == 0)
        {
            attributes.Source = new AttributeContext.Types.Peer
            {
                Address = random.Next(3) == 0 ? new Address { Pipe = new Pipe { Path = Pick(random) } } : new Address { SocketAddress = new SocketAddress { Address = Pick(random), PortValue = (uint)random.Next(65536) } },
            };
        }
        for (var i = random.Next(3); i > 0; i--)
            attributes.ContextExtensions[Pick(random)] = Pick(random);
        return new CheckRequest { Attributes = attributes };
    }

    private static string Pick(Random random) => Words[random.Next(Words.Length)];

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Field(int number, byte[] content)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(number, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(content));
        output.Flush();
        return stream.ToArray();
    }

    /// <summary>A field of a number no message here uses, of a random wire type (a group with a field inside it).</summary>
    private static byte[] Unknown(Random random)
    {
        if (random.Next(2) == 0)
            return [];
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        var number = 50 + random.Next(50);
        switch (random.Next(5))
        {
            case 0:
                output.WriteTag(number, WireFormat.WireType.Varint);
                output.WriteUInt64((ulong)random.NextInt64());
                break;
            case 1:
                output.WriteTag(number, WireFormat.WireType.Fixed64);
                output.WriteFixed64(7);
                break;
            case 2:
                output.WriteTag(number, WireFormat.WireType.Fixed32);
                output.WriteFixed32(7);
                break;
            case 3:
                output.WriteTag(number, WireFormat.WireType.LengthDelimited);
                output.WriteBytes(ByteString.CopyFrom([0xFF, 0x00, 0x0C])); // not a message, not UTF-8: skipped unread
                break;
            default:
                output.WriteTag(number, WireFormat.WireType.StartGroup);
                output.WriteTag(1, WireFormat.WireType.Varint);
                output.WriteUInt32(1);
                output.WriteTag(number, WireFormat.WireType.EndGroup);
                break;
        }
        output.Flush();
        return stream.ToArray();
    }

    private static void AssertSame(CheckRequest expected, CheckRequestView view)
    {
        var http = expected.Attributes?.Request?.Http;
        Assert.Equal(http is not null, view.HasHttp);
        Assert.Equal(http?.Method ?? "", view.Method);
        Assert.Equal(http?.Path ?? "", view.Path);
        Assert.Equal(http?.Host ?? "", view.Host);
        Assert.Equal(expected.Attributes?.Source?.Address?.SocketAddress?.Address, view.SourceAddress);
        AssertSameMap(http?.Headers ?? [], view.Headers);
        AssertSameMap(expected.Attributes?.ContextExtensions ?? [], view.ContextExtensions);
    }

    private static void AssertSameMap(Google.Protobuf.Collections.MapField<string, string> expected, IReadOnlyDictionary<string, string> actual)
    {
        foreach (var (key, value) in expected)
            Assert.Equal(value, Assert.Contains(key, actual));
        foreach (var word in Words)
            Assert.Equal(expected.ContainsKey(word), actual.ContainsKey(word));
        Assert.Equal(expected.ToArray(), actual.ToArray()); // the same entries in the same order
    }
}
