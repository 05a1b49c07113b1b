using Envoy.Service.Auth.V3;
using Envoy.Service.Metrics.V3;
using Envoy.Service.Ratelimit.V3;
using Grpc.Core;
using RlsBase = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceBase;

namespace Legate.Bench.Noop;

/// <summary>ext_authz Check: one cached response (status code 0, allow), no work per call.</summary>
internal sealed class NoopAuthorization : Authorization.AuthorizationBase
{
    private static readonly Task<CheckResponse> Ok = Task.FromResult(new CheckResponse { Status = new Google.Rpc.Status { Code = 0 } });

    public override Task<CheckResponse> Check(CheckRequest request, ServerCallContext context) => Ok;
}

/// <summary>RLS ShouldRateLimit: overall OK and one OK status per descriptor, cached by descriptor count.</summary>
internal sealed class NoopRateLimit : RlsBase
{
    private static readonly Task<RateLimitResponse>[] ByCount = [.. Enumerable.Range(0, 16).Select(n => Task.FromResult(Build(n)))];

    public override Task<RateLimitResponse> ShouldRateLimit(RateLimitRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var n = request.Descriptors.Count;
        return n < ByCount.Length ? ByCount[n] : Task.FromResult(Build(n));
    }

    private static RateLimitResponse Build(int descriptors)
    {
        var response = new RateLimitResponse { OverallCode = RateLimitResponse.Types.Code.Ok };
        for (var i = 0; i < descriptors; i++)
            response.Statuses.Add(new RateLimitResponse.Types.DescriptorStatus { Code = RateLimitResponse.Types.Code.Ok });
        return response;
    }
}

/// <summary>StreamMetrics: reads (and so deserializes) every message, then answers empty.</summary>
internal sealed class NoopMetrics : MetricsService.MetricsServiceBase
{
    private static readonly StreamMetricsResponse Empty = new();

    public override async Task<StreamMetricsResponse> StreamMetrics(IAsyncStreamReader<StreamMetricsMessage> requestStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(context);
        while (await requestStream.MoveNext(context.CancellationToken))
        {
        }
        return Empty;
    }
}

internal static class NoopArgs
{
    /// <summary>The value of <c>--port N</c>; 20050 when absent.</summary>
    public static int Port(string[] args)
    {
        var i = Array.IndexOf(args, "--port");
        if (i < 0)
            return 20050;
        if (i + 1 >= args.Length || !int.TryParse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            throw new ArgumentException("--port needs a number between 1 and 65535.", nameof(args));
        return port;
    }
}
