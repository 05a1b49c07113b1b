using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
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
    private Exception? _startError;

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

    /// <summary>Starts the service expecting its start to fail, and returns the exception the start threw.</summary>
    /// <exception cref="InvalidOperationException">The service started.</exception>
    public Exception StartFailure()
    {
        try
        {
            _ = Server;
        }
        // When the start fails fast, the service's Program can dispose its host before WebApplicationFactory comes to
        // watch the start, and the factory then sees only a disposed service provider: the host logged why, so that is
        // the answer.
        catch (ObjectDisposedException) when (Volatile.Read(ref _startError) is { } logged)
        {
            return logged;
        }
#pragma warning disable CA1031 // Whatever the start threw is the answer.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return e;
        }
        throw new InvalidOperationException("The service started.");
    }

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
            services.AddSingleton<ILoggerProvider>(new StartErrorLog(e => Interlocked.CompareExchange(ref _startError, e, null)));
            // The services log that category from Critical only (LegateProgram: a refused start is one line); this
            // provider still needs its errors, and a rule for one provider outranks the category's own.
            services.Configure<LoggerFilterOptions>(o => o.AddFilter<StartErrorLog>(StartErrorLog.HostCategory, LogLevel.Error));
            _configureServices?.Invoke(services);
        });
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _channel?.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>Keeps the exception of the host's "Hosting failed to start" line.</summary>
    private sealed class StartErrorLog(Action<Exception> failed) : ILoggerProvider, ILogger
    {
        public const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

        public ILogger CreateLogger(string categoryName) => categoryName == HostCategory ? this : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Error && exception is not null)
                failed(exception);
        }

        public void Dispose()
        {
        }
    }
}
