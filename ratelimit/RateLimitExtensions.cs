using Legate.RateLimit;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wiring of the ratelimit service.</summary>
public static class RateLimitExtensions
{
    /// <summary>The Envoy gRPC service ratelimit implements, also a name the gRPC health service answers for.</summary>
    public const string GrpcServiceName = "envoy.service.ratelimit.v3.RateLimitService";

    public static WebApplicationBuilder AddRateLimit(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }

    public static WebApplication MapRateLimit(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcService<RateLimitService>();
        return app;
    }
}
