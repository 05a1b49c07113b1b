using Legate.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Legate.Gateway.Up;

/// <summary>Where one of the running services listens.</summary>
internal sealed record RunningService(string Name, Uri Grpc, Uri Http);

/// <summary>
/// authz, ratelimit and statsink in this process: three WebApplications built with the services' own wiring
/// (the same calls as their Program.cs), each with its own ports, its own Prometheus registry (so each /metrics shows
/// only its service) and settings given here alone: embedded defaults, in-memory counters, the rendered rules files.
/// </summary>
internal sealed class LocalServices : IAsyncDisposable
{
    private readonly List<WebApplication> _apps = [];
    private CancellationTokenSource? _stopping;

    private LocalServices()
    {
    }

    public IReadOnlyList<RunningService> Services { get; private set; } = [];

    /// <summary>Cancelled when any of the three stops on its own (a fatal error), so the caller stops the others.</summary>
    public CancellationToken Stopping => _stopping?.Token ?? CancellationToken.None;

    /// <param name="outputDir">The rendered folder: authz loads authz/policies.yaml, ratelimit the ratelimit/ folder.</param>
    /// <param name="ports">gRPC and HTTP port of authz, ratelimit, statsink (0 = a free port).</param>
    public static async Task<LocalServices> StartAsync(string outputDir, IReadOnlyList<(int Grpc, int Http)> ports, CancellationToken cancellationToken)
    {
        var running = new LocalServices();
        try
        {
            running.Add(Path.Combine(outputDir, "authz"), ports[0],
                new() { ["Legate:Rules:authz:Path"] = Path.Combine(outputDir, "authz", "policies.yaml") },
                b =>
                {
                    b.AddLegateHosting("authz", AuthzExtensions.GrpcServiceName);
                    b.AddAuthz();
                },
                a => a.MapAuthz());
            running.Add(Path.Combine(outputDir, "ratelimit"), ports[1],
                new() { ["Legate:Rules:ratelimit:Path"] = Path.Combine(outputDir, "ratelimit"), ["Legate:RateLimit:Store"] = "memory" },
                b =>
                {
                    b.AddLegateHosting("ratelimit", RateLimitExtensions.GrpcServiceName);
                    b.AddRateLimit();
                },
                a => a.MapRateLimit());
            running.Add(outputDir, ports[2],
                [],
                b =>
                {
                    b.AddLegateHosting("statsink", StatSinkExtensions.GrpcServiceName);
                    b.AddStatSink();
                },
                a => a.MapStatSink());

            foreach (var app in running._apps)
                await app.StartAsync(cancellationToken).ConfigureAwait(false);
            running.Services = [.. running._apps.Select((app, i) =>
            {
                var endpoints = app.Services.GetRequiredService<LegateEndpoints>();
                return new RunningService(Names[i], endpoints.Grpc, endpoints.Http);
            })];
            running._stopping = CancellationTokenSource.CreateLinkedTokenSource(
                [.. running._apps.Select(a => a.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping)]);
            return running;
        }
        catch
        {
            await running.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static readonly string[] Names = ["authz", "ratelimit", "statsink"];

    private void Add(string contentRoot, (int Grpc, int Http) ports, Dictionary<string, string?> settings,
        Action<WebApplicationBuilder> add, Action<WebApplication> map)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = contentRoot, EnvironmentName = Environments.Production });
        // Only these settings: no appsettings.json, no environment variables meant for a service run on its own
        // (Legate__GrpcPort would put all three on one port).
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>(settings)
        {
            ["Legate:BindAddress"] = "127.0.0.1",
            ["Legate:GrpcPort"] = ports.Grpc.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Legate:HttpPort"] = ports.Http.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Legate:LogFormat"] = "text",
            ["Legate:DrainDelay"] = "00:00:01",
            ["Logging:LogLevel:Default"] = "Information",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
        });
        // Registered before the hosting's TryAdd of the process-wide default registry: one registry per service.
        builder.Services.AddSingleton(Prometheus.Metrics.NewCustomRegistry());
        // legate up handles Ctrl+C and SIGTERM once for all three, and stops them together.
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        add(builder);
        var app = builder.Build();
        _apps.Add(app);
        app.MapLegateEndpoints();
        map(app);
    }

    /// <summary>Stops all three at once; each drains (reports not ready, finishes its calls) before it closes.</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_apps.Select(a => a.StopAsync())).ConfigureAwait(false);
        foreach (var app in _apps)
            await app.DisposeAsync().ConfigureAwait(false);
        _apps.Clear();
        _stopping?.Dispose();
    }

    /// <summary>No signal handling of its own: <c>legate up</c> handles Ctrl+C and SIGTERM once for everything it runs.</summary>
    internal sealed class EmbeddedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
