using Legate.StatSink;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wiring of the statsink service.</summary>
public static class StatSinkExtensions
{
    /// <summary>The Envoy gRPC service statsink implements, also a name the gRPC health service answers for.</summary>
    public const string GrpcServiceName = "envoy.service.metrics.v3.MetricsService";

    public static WebApplicationBuilder AddStatSink(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<StreamCounters>();
        return builder;
    }

    public static WebApplication MapStatSink(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcService<MetricsStreamService>();
        return app;
    }
}
