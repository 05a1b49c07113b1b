using Envoy.Config.Core.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Legate.RateLimit.Config;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Legate.RateLimit.Tests;

/// <summary><see cref="RlsResponse"/> writes the bytes the generated message writes for the same answer.</summary>
public sealed class RlsResponseTests
{
    private static readonly RateLimitPolicy Named = new("edge", "tenant", LimitUnit.Minute, 100, name: "acme-tenant");
    private static readonly RateLimitPolicy Plain = new("edge", "client", LimitUnit.Second, 2);
    private static readonly RateLimitPolicy Blocking = new("edge", "blocked", LimitUnit.Week, 0);

    [Fact]
    public void EveryKindOfStatus_WritesTheGeneratedMessagesBytes()
    {
        AssertSameBytes(new RlsResponse(Code.OverLimit,
        [
            new(Code.Ok), // no limit
            new(Code.Ok, LimitRemaining: uint.MaxValue), // unlimited
            new(Code.Ok, Named, 99, 60),
            new(Code.OverLimit, Plain, 0, 1),
            new(Code.OverLimit, Blocking, 0, 604_800),
            new(Code.Ok, Plain, 1, 0), // a zero duration is still present
            new(Code.Unknown, Plain, 5, long.MaxValue),
        ]));
    }

    [Fact]
    public void HeadersAndMetadata_WriteTheGeneratedMessagesBytes()
    {
        var metadata = new Struct { Fields = { ["domain"] = Value.ForString("edge"), ["n"] = Value.ForNumber(2), ["list"] = Value.ForList(Value.ForBool(true)) } };
        HeaderValue[] headers = [new() { Key = "RateLimit-Limit", Value = "100" }, new() { Key = "RateLimit-Reset", Value = "" }];

        AssertSameBytes(new RlsResponse(Code.Ok, [new(Code.Ok, Named, 7, 3)], headers, metadata));
        AssertSameBytes(new RlsResponse(Code.Ok, [], headers));
        AssertSameBytes(new RlsResponse(Code.Unknown, [], dynamicMetadata: new Struct()));
    }

    [Fact]
    public void RandomAnswers_WriteTheGeneratedMessagesBytes()
    {
        var random = new Random(5);
        RateLimitPolicy?[] policies = [null, Named, Plain, Blocking];
        for (var i = 0; i < 2000; i++)
        {
            var statuses = new RlsStatus[random.Next(0, 6)];
            for (var j = 0; j < statuses.Length; j++)
            {
                statuses[j] = new RlsStatus(
                    (Code)random.Next(3),
                    policies[random.Next(policies.Length)],
                    random.Next(3) == 0 ? 0 : (uint)random.NextInt64(uint.MaxValue + 1L),
                    random.Next(3) == 0 ? null : random.NextInt64(0, random.Next(2) == 0 ? 4000 : long.MaxValue));
            }
            AssertSameBytes(new RlsResponse((Code)random.Next(3), statuses));
        }
    }

    private static void AssertSameBytes(RlsResponse response)
    {
        var expected = response.ToProto().ToByteArray();
        var size = response.CalculateSize();
        var written = new byte[size];
        response.WriteTo(written);

        Assert.Equal(expected.Length, size);
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(written));
    }
}
