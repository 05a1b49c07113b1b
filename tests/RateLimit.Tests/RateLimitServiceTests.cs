using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
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

    public void Dispose() => _service.Dispose();
}
