using Envoy.Service.Ratelimit.V3;
using Grpc.Core;
using RlsBase = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceBase;

namespace Legate.RateLimit;

/// <summary>Envoy's RLS v3 <c>ShouldRateLimit</c>, answered by the <see cref="RateLimiter"/>.</summary>
internal sealed class RateLimitService(RateLimiter limiter) : RlsBase
{
    public override Task<RateLimitResponse> ShouldRateLimit(RateLimitRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var decision = limiter.ShouldRateLimitAsync(request, context.CancellationToken);
        return decision.IsCompletedSuccessfully ? Task.FromResult(decision.Result) : decision.AsTask();
    }
}
