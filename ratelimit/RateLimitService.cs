using Envoy.Service.Ratelimit.V3;
using Grpc.Core;
using RlsBase = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceBase;

namespace Legate.RateLimit;

/// <summary>
/// Envoy's RLS v3 <c>ShouldRateLimit</c>. Until limits are configured every descriptor is under no limit:
/// the answer is OK, with one status per descriptor in request order as Envoy expects.
/// </summary>
internal sealed class RateLimitService : RlsBase
{
    private static readonly RateLimitResponse.Types.DescriptorStatus Unlimited = new() { Code = RateLimitResponse.Types.Code.Ok };

    public override Task<RateLimitResponse> ShouldRateLimit(RateLimitRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Domain.Length == 0)
            throw new RpcException(new Status(StatusCode.InvalidArgument, "rate limit domain must not be empty"));
        if (request.Descriptors.Count == 0)
            throw new RpcException(new Status(StatusCode.InvalidArgument, "rate limit descriptor list must not be empty"));

        var response = new RateLimitResponse { OverallCode = RateLimitResponse.Types.Code.Ok };
        for (var i = 0; i < request.Descriptors.Count; i++)
            response.Statuses.Add(Unlimited);
        return Task.FromResult(response);
    }
}
