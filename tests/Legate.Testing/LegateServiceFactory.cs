using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Prometheus;

namespace Legate.Testing;

/// <summary>
/// A Legate service in process on ASP.NET Core's test server: its real Program, wiring and configuration, with
/// no drain delay, quiet logs and a metrics registry of its own (tests running side by side do not share counts).
/// </summary>
public class LegateServiceFactory<TProgram> : WebApplicationFactory<TProgram>
    where TProgram : class
{
    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _configureServices;
    private GrpcChannel? _channel;

    /// <param name="settings">Configuration on top of the service's own (<c>Legate:...</c> keys).</param>
    /// <param name="configureServices">Replacements for the service's registrations, e.g. a fake <see cref="TimeProvider"/>.</param>
    public LegateServiceFactory(IDictionary<string, string?>? settings = null, Action<IServiceCollection>? configureServices = null)
    {
        _settings = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>(), StringComparer.Ordinal);
        _configureServices = configureServices;
    }

    /// <summary>The service's own metrics registry, as <c>/metrics</c> serves it.</summary>
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    /// <summary>A gRPC channel into the test server.</summary>
    public GrpcChannel Channel => _channel ??= GrpcChannel.ForAddress(Server.BaseAddress, new GrpcChannelOptions { HttpHandler = Server.CreateHandler() });

    /// <summary>The service's <c>/metrics</c> text.</summary>
    public async Task<string> ScrapeAsync(CancellationToken cancellationToken)
    {
        using var client = CreateClient();
        return await client.GetStringAsync(new Uri("/metrics", UriKind.Relative), cancellationToken);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.UseSetting("Legate:DrainDelay", "00:00:00");
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
        foreach (var (key, value) in _settings)
            builder.UseSetting(key, value);
        builder.ConfigureTestServices(services =>
        {
            services.AddSingleton(Registry);
            _configureServices?.Invoke(services);
        });
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _channel?.Dispose();
        base.Dispose(disposing);
    }
}
