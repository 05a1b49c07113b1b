using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Google.Protobuf;
using Grpc.Core;
using Legate.Testing;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;
using RateLimitClient = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceClient;

namespace Legate.RateLimit.Tests;

public sealed class RateLimitServiceTests : IDisposable
{
    private readonly LegateServiceFactory<Program> _service = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static RateLimitDescriptor Descriptor(params (string Key, string Value)[] entries)
    {
        var descriptor = new RateLimitDescriptor();
        foreach (var (key, value) in entries)
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
        return descriptor;
    }

    [Fact]
    public async Task ShouldRateLimit_UnderTheSampleLimits_AnswersOkForEveryDescriptorInOrder()
    {
        var client = new RateLimitClient(_service.Channel);
        var request = new RateLimitRequest
        {
            Domain = "edge",
            Descriptors = { Descriptor(("tenant", "acme")), Descriptor(("tenant", "acme"), ("client", "c1")), Descriptor(("remote_address", "10.0.0.1")) },
        };

        var response = await client.ShouldRateLimitAsync(request, cancellationToken: Ct);

        Assert.Equal(Code.Ok, response.OverallCode);
        Assert.Equal(3, response.Statuses.Count);
        Assert.All(response.Statuses, s => Assert.Equal(Code.Ok, s.Code));
    }

    [Fact]
    public async Task ShouldRateLimit_EmptyDomain_IsInvalidArgument()
    {
        var client = new RateLimitClient(_service.Channel);

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            client.ShouldRateLimitAsync(new RateLimitRequest { Descriptors = { Descriptor(("k", "v")) } }, cancellationToken: Ct).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("rate limit domain must not be empty", error.Status.Detail);
    }

    [Fact]
    public async Task ShouldRateLimit_NoDescriptors_IsInvalidArgument()
    {
        var client = new RateLimitClient(_service.Channel);

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            client.ShouldRateLimitAsync(new RateLimitRequest { Domain = "edge" }, cancellationToken: Ct).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Theory]
    [InlineData("0A05656467")] // domain: a length of 5 with 3 bytes
    [InlineData("00")] // field number 0
    [InlineData("0A02C328")] // domain not UTF-8
    [InlineData("120512030A0561")] // an entry longer than its descriptor
    public async Task ShouldRateLimit_MalformedRequest_IsInvalidArgument(string hex)
    {
        var call = _service.Channel.CreateCallInvoker().AsyncUnaryCall(RawMethod, null, new CallOptions(cancellationToken: Ct), Convert.FromHexString(hex));

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith("malformed RateLimitRequest: ", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ShouldRateLimit_UnknownFields_AreIgnored()
    {
        // A newer Envoy's fields: a varint 99 and a string 100 in the request, a fixed32 9 in the descriptor.
        byte[] descriptor = [.. Descriptor(("tenant", "acme")).ToByteArray(), 0x4D, 1, 2, 3, 4];
        byte[] request = [0x98, 0x06, 0x01, 0xA2, 0x06, 0x01, (byte)'x', 0x0A, 4, .. "edge"u8, 0x12, (byte)descriptor.Length, .. descriptor];
        Assert.Equal("edge", RateLimitRequest.Parser.ParseFrom(request).Domain);

        var call = _service.Channel.CreateCallInvoker().AsyncUnaryCall(RawMethod, null, new CallOptions(cancellationToken: Ct), request);
        var response = RateLimitResponse.Parser.ParseFrom(await call.ResponseAsync);

        Assert.Equal(Code.Ok, response.OverallCode);
        Assert.Single(response.Statuses);
    }

    [Fact]
    public async Task Reflection_ListsTheRateLimitService_BoundWithTheWireReader()
    {
        var (services, declaringFileFound) = await GrpcReflection.AskAsync(_service.Channel, "envoy.service.ratelimit.v3.RateLimitService", Ct);

        Assert.Contains("envoy.service.ratelimit.v3.RateLimitService", services);
        Assert.True(declaringFileFound);
    }

    // ShouldRateLimit with the payload as bytes, to send what a generated client never would.
    private static readonly Method<byte[], byte[]> RawMethod = new(MethodType.Unary, "envoy.service.ratelimit.v3.RateLimitService", "ShouldRateLimit",
        Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));

    public void Dispose() => _service.Dispose();
}
