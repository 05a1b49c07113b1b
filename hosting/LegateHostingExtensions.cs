using System.Text.Json;
using Legate.Hosting;
using Legate.Hosting.Health;
using Legate.Hosting.Metrics;
using Legate.Hosting.Rules;
using Legate.Hosting.Tls;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Microsoft.Extensions.Hosting;

/// <summary>The hosting every Legate service shares, so that each service's Program.cs stays a few lines.</summary>
public static class LegateHostingExtensions
{
    /// <summary>
    /// Kestrel with a gRPC listener and an HTTP listener, gRPC with health, reflection and server metrics,
    /// JSON console logs, validated options, and a graceful shutdown that drains before it closes.
    /// </summary>
    /// <param name="builder">The service's builder.</param>
    /// <param name="serviceName">Short name, e.g. <c>authz</c>: used in logs and as a gRPC health service name.</param>
    /// <param name="grpcServiceNames">Full names of the gRPC services it serves (e.g. <c>envoy.service.auth.v3.Authorization</c>), each answerable by the gRPC health service.</param>
    public static WebApplicationBuilder AddLegateHosting(this WebApplicationBuilder builder, string serviceName, params string[] grpcServiceNames)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddLegateServiceDefaults(HostingDefaults);
        var section = builder.Configuration.GetSection(LegateServerOptions.SectionName);
        var logFormat = section[nameof(LegateServerOptions.LogFormat)] ?? "json";

        builder.Logging.ClearProviders();
        if (logFormat == "text")
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            });
        }
        else
        {
            builder.Logging.AddConsole(o => o.FormatterName = JsonLogFormatter.FormatterName)
                .AddConsoleFormatter<JsonLogFormatter, ConsoleFormatterOptions>();
        }

        ExportOnlyCheapDefaultMetrics();
        var services = builder.Services;
        services.AddSingleton(new LegateServiceInfo(serviceName));
        services.AddOptions<LegateServerOptions>().Bind(section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LegateServerOptions>, LegateServerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        // One registry for the process: /metrics serves it and every metric the services create goes into it.
        services.TryAddSingleton(Prometheus.Metrics.DefaultRegistry);
        services.TryAddSingleton<IMetricFactory>(sp =>
        {
            var factory = Prometheus.Metrics.WithCustomRegistry(sp.GetRequiredService<CollectorRegistry>());
            // Exemplars would read the trace context and the clock on every counter increment of every call (a
            // tenth of a ratelimit call's CPU in a profile), for trace ids no Legate service records.
            factory.ExemplarBehavior = ExemplarBehavior.NoExemplars();
            return factory;
        });
        services.TryAddSingleton<ReadinessState>();
        services.TryAddSingleton<LegateEndpoints>();
        services.AddHostedService<GracefulShutdown>();
        services.AddOptions<HostOptions>().Configure<IOptions<LegateServerOptions>>((host, server) =>
            host.ShutdownTimeout = server.Value.DrainDelay + server.Value.ShutdownTimeout);
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<LegateServerOptions>, LegateEndpoints, TimeProvider, ILoggerFactory>(ConfigureKestrel);

        services.TryAddSingleton<GrpcServerMetrics>();
        services.AddGrpc(o =>
        {
            o.Interceptors.Add<GrpcServerMetrics>();
            o.EnableDetailedErrors = false;
        });
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>().Configure<IOptions<LegateServerOptions>>((grpc, server) =>
            grpc.MaxReceiveMessageSize = server.Value.MaxReceiveMessageSize);
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks(o =>
        {
            o.Services.Clear();
            foreach (var name in (string[])["", serviceName, .. grpcServiceNames])
                o.Services.Map(name, r => r.Tags.Contains(HealthTags.Ready));
        });
        services.AddHealthChecks()
            .AddCheck("process", () => HealthCheckResult.Healthy(), tags: [HealthTags.Live])
            .AddCheck<ReadinessHealthCheck>("readiness", tags: [HealthTags.Ready]);
        return builder;
    }

    // Per-call log lines start at Warning, whatever the content root (appsettings.json says the same for ASP.NET Core):
    // grpc-dotnet logs every call that ends with a status other than OK ("Error status code 'Unavailable' ... raised")
    // or that its client cancelled at Information, and ASP.NET Core two lines per request. During a Redis outage or
    // when Envoy's timeouts cancel calls that is a line per call, thousands a second, when the service can least
    // afford them; grpc_server_handled_total{grpc_code} counts those calls instead. Any configuration source can
    // lower the levels again (Logging__LogLevel__Grpc.AspNetCore.Server.ServerCallHandler=Information).
    private static readonly KeyValuePair<string, string?>[] HostingDefaults =
    [
        new("Logging:LogLevel:Microsoft.AspNetCore", "Warning"),
        new("Logging:LogLevel:Grpc.AspNetCore.Server.ServerCallHandler", "Warning"),
    ];

    /// <summary>
    /// A service's own defaults (e.g. authz's larger gRPC message limit), below every configuration source: whatever
    /// hosts the service (its own process, <c>legate up</c>, a test) gets them, and any source can override them.
    /// </summary>
    public static WebApplicationBuilder AddLegateServiceDefaults(this WebApplicationBuilder builder, IEnumerable<KeyValuePair<string, string?>> defaults)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(defaults);
        ((IConfigurationBuilder)builder.Configuration).Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource { InitialData = defaults });
        return builder;
    }

    /// <summary>
    /// Loads a named set of rules (<c>Legate:Rules:{name}</c>) with <typeparamref name="TLoader"/> before the server
    /// starts, and reloads it when the files change. Inject <see cref="RulesProvider{TRules}"/> to read it.
    /// </summary>
    public static WebApplicationBuilder AddLegateRules<TRules, TLoader>(this WebApplicationBuilder builder, string name)
        where TRules : class
        where TLoader : class, IRulesLoader<TRules>
    {
        ArgumentNullException.ThrowIfNull(builder);
        var key = $"{LegateServerOptions.SectionName}:Rules:{name}";
        var contentRoot = builder.Environment.ContentRootPath;
        builder.Services.AddOptions<RulesOptions>(name).Bind(builder.Configuration.GetSection(key))
            // A relative path is relative to the service's folder, wherever it was started from.
            .PostConfigure(o => o.Path = string.IsNullOrWhiteSpace(o.Path) ? o.Path : Path.GetFullPath(o.Path, contentRoot))
            .Validate(o => !string.IsNullOrWhiteSpace(o.Path), $"{key}:Path is required: a rules file or directory.")
            .Validate(o => o.PollInterval > TimeSpan.Zero, $"{key}:PollInterval must be positive.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton<TLoader>();
        builder.Services.TryAddSingleton(sp => new RulesProvider<TRules>(
            name,
            sp.GetRequiredService<IOptionsMonitor<RulesOptions>>().Get(name),
            sp.GetRequiredService<TLoader>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger($"Legate.Rules.{name}"),
            sp.GetRequiredService<IMetricFactory>()));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RulesProvider<TRules>>());
        return builder;
    }

    /// <summary>
    /// Maps what every service serves besides its own gRPC service: the gRPC health service and reflection on the
    /// gRPC listener; <c>/metrics</c>, <c>/healthz</c> (alive) and <c>/readyz</c> (ready for traffic) on the HTTP listener.
    /// </summary>
    public static WebApplication MapLegateEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseRouting();
        app.Use(ListenerAffinity.Enforce);
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();

        var ops = app.MapGroup("").OnHttpListener();
        ops.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = r => r.Tags.Contains(HealthTags.Live), ResponseWriter = WriteHealth });
        ops.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = r => r.Tags.Contains(HealthTags.Ready), ResponseWriter = WriteHealth });
        var registry = app.Services.GetRequiredService<CollectorRegistry>();
        ops.MapMetrics("/metrics", registry);
        return app;
    }

    /// <summary>Serves an endpoint only on the HTTP listener (operational and debug endpoints), never on the gRPC port.</summary>
    public static TBuilder OnHttpListener<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.WithMetadata(HttpListenerOnly.Instance);
    }

    private static int _defaultMetricsChosen;

    // prometheus-net subscribes to every EventSource counter and every Meter by default. Subscribing switches on
    // per-request events and measurements inside Kestrel, ASP.NET Core and gRPC, which cut a service's
    // throughput several-fold in the benchmarks. Keep the process metrics; the gRPC interceptor covers calls.
    private static void ExportOnlyCheapDefaultMetrics()
    {
        if (Interlocked.Exchange(ref _defaultMetricsChosen, 1) != 0)
            return;
        try
        {
            Prometheus.Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions
            {
                SuppressEventCounters = true,
                SuppressMeters = true,
                SuppressDebugMetrics = true,
                SuppressProcessMetrics = false,
            });
        }
        catch (InvalidOperationException)
        {
            // The default registry was already in use (a host embedding us chose first): keep its choice.
        }
    }

    private static void ConfigureKestrel(KestrelServerOptions kestrel, IOptions<LegateServerOptions> options, LegateEndpoints endpoints, TimeProvider time, ILoggerFactory loggers)
    {
        var server = options.Value;
        kestrel.AddServerHeader = false;
        kestrel.Limits.Http2.MaxStreamsPerConnection = server.MaxStreamsPerConnection;
        var address = server.ParsedBindAddress;
        var tls = server.GrpcTls.Enabled ? new CertificateFiles(server.GrpcTls, time, loggers.CreateLogger("Legate.Hosting.Tls")) : null;

        kestrel.Listen(address, server.GrpcPort, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            ListenerAffinity.Tag(listen, Listener.Grpc);
            if (tls is not null)
                listen.UseHttps(tls.ToHttpsOptions());
            endpoints.Set(Listener.Grpc, listen, tls is not null);
        });
        kestrel.Listen(address, server.HttpPort, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            ListenerAffinity.Tag(listen, Listener.Http);
            endpoints.Set(Listener.Http, listen, tls: false);
        });
    }

    private static Task WriteHealth(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("status", report.Status.ToString());
            json.WriteStartObject("checks");
            foreach (var (name, entry) in report.Entries)
            {
                json.WriteStartObject(name);
                json.WriteString("status", entry.Status.ToString());
                if (entry.Description is { } description)
                    json.WriteString("description", description);
                json.WriteEndObject();
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return context.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length)).AsTask();
    }
}
