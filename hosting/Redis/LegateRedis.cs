using Legate.Hosting.Health;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Legate.Hosting.Redis;

/// <summary>Redis connection settings. Bound from <c>Legate:Redis</c>.</summary>
public sealed class RedisOptions
{
    public const string SectionName = "Legate:Redis";

    /// <summary>
    /// A StackExchange.Redis configuration string: <c>host:port</c>, several endpoints for a cluster,
    /// <c>serviceName=</c> for Sentinel, <c>password=</c>, <c>ssl=true</c> and the rest of its options.
    /// Empty means the service runs without Redis.
    /// </summary>
    public string Configuration { get; set; } = "";

    /// <summary>
    /// Whether StackExchange.Redis reads Redis's replies on its own pool of socket threads (its default) instead of the
    /// .NET thread pool (Legate's default). Its own threads keep replies flowing in a process whose thread pool is
    /// starved by blocking code; Legate's services never block a pool thread, and reading on the pool saves a thread
    /// hand-off per reply (the exact Redis path measured 8-15% less CPU per call and a third of the context switches).
    /// </summary>
    public bool DedicatedSocketThreads { get; set; }
}

/// <summary>
/// The process's one Redis multiplexer, shared by every caller (StackExchange.Redis is built to be shared;
/// one per operation would exhaust sockets). Its first connect starts with this object and runs in the background,
/// never on a caller's thread: StackExchange.Redis's connect waits up to <c>connectTimeout</c> per attempt
/// (<c>connectRetry</c> attempts) while Redis is down, and a request that waited for it would hold a thread-pool
/// thread all that time (the pool then adds threads, dozens under load). Until it completes, <see cref="Connection"/>
/// is pending and <see cref="TryGetMultiplexer"/> null: callers answer "unavailable" within their own deadline, and
/// readiness reports not-ready. A connect that throws (a Sentinel none of whose sentinels answers) is retried every
/// <see cref="ConnectRetryInterval"/>.
/// </summary>
public sealed class LegateRedis : IDisposable
{
    /// <summary>The wait before a new first connect after one threw.</summary>
    public static readonly TimeSpan ConnectRetryInterval = TimeSpan.FromSeconds(5);

    private readonly CancellationTokenSource _disposed = new();
    private readonly Task<IConnectionMultiplexer> _connection;

    public LegateRedis(IOptions<RedisOptions> options, ILogger<LegateRedis> logger, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = Configure(options.Value);
        // The password never reaches a log line.
        var safeDescription = configuration.ToString(includePassword: false);
        HostingLog.RedisConfigured(logger, safeDescription);
        var time = timeProvider ?? TimeProvider.System;
        _connection = Task.Run(() => ConnectAsync(configuration, safeDescription, logger, time, _disposed.Token));
    }

    /// <summary>The StackExchange.Redis options of <paramref name="options"/> with what Legate needs on top.</summary>
    internal static ConfigurationOptions Configure(RedisOptions options)
    {
        var configuration = ConfigurationOptions.Parse(options.Configuration);
        configuration.AbortOnConnectFail = false;
        // While disconnected, fail at once instead of queueing: a queued rate limit increment would be applied
        // after the caller already gave up on it, and callers here answer within milliseconds anyway.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "legate";
        configuration.SocketManager = options.DedicatedSocketThreads ? SocketManager.Shared : SocketManager.ThreadPool;
        return configuration;
    }

    /// <summary>
    /// The shared multiplexer, once its first connect completed (connected or not: from then on it reconnects by
    /// itself). Await it where waiting is fine (tools, tests, start-up work); a request path uses
    /// <see cref="TryGetMultiplexer"/> or bounds its wait.
    /// </summary>
    public Task<IConnectionMultiplexer> Connection => _connection;

    /// <summary>The shared multiplexer, or null while the first connect is still running.</summary>
    public IConnectionMultiplexer? TryGetMultiplexer() => _connection.IsCompletedSuccessfully ? _connection.Result : null;

    private static async Task<IConnectionMultiplexer> ConnectAsync(ConfigurationOptions configuration, string safeDescription, ILogger logger, TimeProvider time, CancellationToken cancellationToken)
    {
        while (true)
        {
            ConnectionMultiplexer multiplexer;
            try
            {
                multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // Whatever the reason, a later try may succeed; a faulted task would leave the service without Redis for
                // good. Only the type is logged: StackExchange.Redis's messages can carry the configuration.
                HostingLog.RedisConnectThrew(logger, safeDescription, e.GetType().Name, ConnectRetryInterval.TotalSeconds);
                await Task.Delay(ConnectRetryInterval, time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            if (cancellationToken.IsCancellationRequested)
                return multiplexer; // disposed meanwhile: Dispose's continuation disposes it, no events, no log line
            multiplexer.ConnectionFailed += (_, e) => HostingLog.RedisConnectionFailed(logger, e.EndPoint, e.FailureType);
            multiplexer.ConnectionRestored += (_, e) => HostingLog.RedisConnectionRestored(logger, e.EndPoint);
            // The events above only see what happens from now on.
            if (!multiplexer.IsConnected)
                HostingLog.RedisNotConnectedYet(logger, safeDescription);
            return multiplexer;
        }
    }

    public void Dispose()
    {
        if (_disposed.IsCancellationRequested)
            return;
        // A connect still running stops at its next step; a multiplexer it already made goes when its task ends
        // (at once when it has ended), whichever side of the cancellation the connect was on.
        _disposed.Cancel();
        _connection.ContinueWith(static t => t.Result.Dispose(), CancellationToken.None,
            TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        _disposed.Dispose();
    }
}

/// <summary>Ready when Redis answers a PING within <see cref="PingTimeout"/>.</summary>
internal sealed class RedisHealthCheck(LegateRedis redis, TimeProvider? timeProvider = null) : IHealthCheck
{
    /// <summary>
    /// How long readiness waits for the PING: well under a probe's own timeout (Kubernetes's default is 1 s), so a
    /// Redis that hangs makes a clear not-ready answer rather than a probe that timed out; StackExchange.Redis's own
    /// timeout is 5 s.
    /// </summary>
    public static readonly TimeSpan PingTimeout = TimeSpan.FromMilliseconds(500);

    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (redis.TryGetMultiplexer() is not { } multiplexer)
            return HealthCheckResult.Unhealthy("Redis is connecting");
        if (!multiplexer.IsConnected)
            return HealthCheckResult.Unhealthy("Redis is not connected");
        var ping = multiplexer.GetDatabase().PingAsync();
        try
        {
            var latency = await ping.WaitAsync(PingTimeout, _time, cancellationToken);
            return HealthCheckResult.Healthy($"PING {latency.TotalMilliseconds:F1} ms");
        }
        catch (TimeoutException) when (!ping.IsCompleted)
        {
            return HealthCheckResult.Unhealthy($"Redis did not answer PING within {PingTimeout.TotalMilliseconds:F0} ms");
        }
        catch (Exception e) when (e is RedisException or RedisTimeoutException)
        {
            return HealthCheckResult.Unhealthy("Redis PING failed: " + e.GetType().Name);
        }
        finally
        {
            // A PING given up on still ends, by StackExchange.Redis's own timeout at the latest: its failure is
            // observed here rather than reported as an unobserved task exception.
            if (!ping.IsCompleted)
                _ = ping.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }
}

/// <summary>Starts the shared Redis connection with the host, not at the first request that needs it.</summary>
internal sealed class RedisConnectionStarter(LegateRedis redis) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Constructing LegateRedis (done by the container for this service) started the connect; nothing waits for it.
        GC.KeepAlive(redis);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// A configuration StackExchange.Redis cannot read (an unknown option, a value of the wrong type) is an option error
/// naming it, so the start is refused with one line; the parse would otherwise throw from the connection's constructor
/// while the host starts, which is an abort with a stack trace.
/// </summary>
internal sealed class RedisOptionsValidator : IValidateOptions<RedisOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // Empty and URL configurations are reported by the checks registered beside this one.
        if (string.IsNullOrWhiteSpace(options.Configuration) || options.Configuration.Contains("://", StringComparison.Ordinal))
            return ValidateOptionsResult.Success;
        try
        {
            ConfigurationOptions.Parse(options.Configuration);
        }
        catch (ArgumentException e)
        {
            // StackExchange.Redis names the option and its bad value. It never checks a password= value, but a
            // password with a comma in it is read as more options, whose names its message would quote.
            return ValidateOptionsResult.Fail(options.Configuration.Contains("password", StringComparison.OrdinalIgnoreCase)
                ? $"{RedisOptions.SectionName}:Configuration has an option StackExchange.Redis cannot read (its message is left out: the setting holds a password, and a comma in it starts another option)."
                : $"{RedisOptions.SectionName}:Configuration: {e.Message}");
        }
        // An endpoint after password= is most likely the tail of a password with a comma in it, which would then be
        // logged wherever the connection names its endpoints. Endpoints come first.
        var afterPassword = false;
        foreach (var part in options.Configuration.Split(','))
        {
            var option = part.Trim();
            if (afterPassword && option.Length > 0 && !option.Contains('=', StringComparison.Ordinal))
                return ValidateOptionsResult.Fail($"{RedisOptions.SectionName}:Configuration lists an endpoint after password=: list endpoints first (the value is left out: it may be the tail of a password with a comma in it).");
            afterPassword |= option.StartsWith("password=", StringComparison.OrdinalIgnoreCase);
        }
        return ValidateOptionsResult.Success;
    }
}

/// <summary>Registration of the shared Redis connection.</summary>
public static class LegateRedisExtensions
{
    /// <summary>Registers <see cref="LegateRedis"/> and, unless told otherwise, a readiness check on it. Call only when Redis is used.</summary>
    public static IServiceCollection AddLegateRedis(this IServiceCollection services, IConfiguration configuration, bool readinessCheck = true)
    {
        services.AddOptions<RedisOptions>().Bind(configuration.GetSection(RedisOptions.SectionName))
            .Validate(o => !string.IsNullOrWhiteSpace(o.Configuration), $"{RedisOptions.SectionName}:Configuration is required when Redis is used.")
            // StackExchange.Redis takes no URLs: it would read one as a host name, never connect, and log it, password
            // included, wherever it describes the connection. The message does not repeat the value for that reason.
            .Validate(o => !o.Configuration.Contains("://", StringComparison.Ordinal),
                $"{RedisOptions.SectionName}:Configuration is a URL; StackExchange.Redis takes host:port[,user=...][,password=...][,ssl=true].")
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisOptions>, RedisOptionsValidator>());
        services.TryAddSingleton(sp => new LegateRedis(sp.GetRequiredService<IOptions<RedisOptions>>(), sp.GetRequiredService<ILogger<LegateRedis>>(),
            sp.GetService<TimeProvider>()));
        services.AddHostedService<RedisConnectionStarter>();
        if (readinessCheck)
            services.AddHealthChecks().AddCheck<RedisHealthCheck>("redis", tags: [HealthTags.Ready]);
        return services;
    }
}
