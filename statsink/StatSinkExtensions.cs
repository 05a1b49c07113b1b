using System.Globalization;
using Legate.StatSink;
using Legate.StatSink.DogStatsd;
using Legate.StatSink.Exposition;
using Legate.StatSink.Store;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wiring of the statsink service.</summary>
public static class StatSinkExtensions
{
    /// <summary>The Envoy gRPC service statsink implements, also a name the gRPC health service answers for.</summary>
    public const string GrpcServiceName = "envoy.service.metrics.v3.MetricsService";

    /// <summary>The series store, its sweeper, the exposition and (when enabled) the DogStatsD forwarder.</summary>
    public static WebApplicationBuilder AddStatSink(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        // Envoy sends a whole flush as one message: a busy Envoy's passes the usual 4 MiB.
        builder.AddLegateServiceDefaults([new("Legate:MaxReceiveMessageSize", (64 * 1024 * 1024).ToString(CultureInfo.InvariantCulture))]);
        var services = builder.Services;
        services.AddOptions<StatSinkOptions>().Bind(builder.Configuration.GetSection(StatSinkOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StatSinkOptions>, StatSinkOptionsValidator>());
        services.TryAddSingleton(sp => new StatSinkMetrics(sp.GetRequiredService<IMetricFactory>()));
        services.TryAddSingleton<SeriesStore>();
        services.TryAddSingleton<EnvoyExposition>();
        services.AddHostedService<SeriesSweeper>();
        services.TryAddSingleton<StreamShutdown>();
        services.AddHostedService(sp => sp.GetRequiredService<StreamShutdown>());
        // Inert unless Legate:StatSink:DogStatsd:Enabled; when on, it observes every flush the store applies.
        services.TryAddSingleton<DogStatsdForwarder>();
        services.AddHostedService(sp => sp.GetRequiredService<DogStatsdForwarder>());
        return builder;
    }

    public static WebApplication MapStatSink(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcService<MetricsStreamService>();
        var registry = app.Services.GetRequiredService<CollectorRegistry>();
        var envoy = app.Services.GetRequiredService<EnvoyExposition>();
        // Takes /metrics over from the hosting's prometheus-net endpoint (a lower order wins the route): the
        // service's own series, then the Envoy series.
        app.MapGet("/metrics", context => MetricsEndpoint.HandleAsync(context, registry, envoy)).WithOrder(-1).OnHttpListener();
        return app;
    }
}
