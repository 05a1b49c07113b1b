using Legate.Hosting.Health;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
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
}

/// <summary>
/// The process's one Redis multiplexer, shared by every caller (StackExchange.Redis is built to be shared;
/// one per operation would exhaust sockets). It connects in the background, so the service starts while Redis
/// is down and reports not-ready until the connection is up.
/// </summary>
public sealed class LegateRedis : IDisposable
{
    private readonly Lazy<ConnectionMultiplexer> _multiplexer;

    public LegateRedis(IOptions<RedisOptions> options, ILogger<LegateRedis> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = ConfigurationOptions.Parse(options.Value.Configuration);
        configuration.AbortOnConnectFail = false;
        // While disconnected, fail at once instead of queueing: a queued rate limit increment would be applied
        // after the caller already gave up on it, and callers here answer within milliseconds anyway.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "legate";
        // The password never reaches a log line.
        var safeDescription = configuration.ToString(includePassword: false);
        HostingLog.RedisConfigured(logger, safeDescription);
        _multiplexer = new Lazy<ConnectionMultiplexer>(() =>
        {
            var multiplexer = ConnectionMultiplexer.Connect(configuration);
            multiplexer.ConnectionFailed += (_, e) => HostingLog.RedisConnectionFailed(logger, e.EndPoint, e.FailureType);
            multiplexer.ConnectionRestored += (_, e) => HostingLog.RedisConnectionRestored(logger, e.EndPoint);
            return multiplexer;
        });
    }

    /// <summary>The shared multiplexer; connects on first use.</summary>
    public IConnectionMultiplexer Multiplexer => _multiplexer.Value;

    public void Dispose()
    {
        if (_multiplexer.IsValueCreated)
            _multiplexer.Value.Dispose();
    }
}

/// <summary>Ready when Redis answers a PING.</summary>
internal sealed class RedisHealthCheck(LegateRedis redis) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var multiplexer = redis.Multiplexer;
        if (!multiplexer.IsConnected)
            return HealthCheckResult.Unhealthy("Redis is not connected");
        try
        {
            var latency = await multiplexer.GetDatabase().PingAsync();
            return HealthCheckResult.Healthy($"PING {latency.TotalMilliseconds:F1} ms");
        }
        catch (RedisException e)
        {
            return HealthCheckResult.Unhealthy("Redis PING failed: " + e.GetType().Name);
        }
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
            .ValidateOnStart();
        services.TryAddSingleton<LegateRedis>();
        if (readinessCheck)
            services.AddHealthChecks().AddCheck<RedisHealthCheck>("redis", tags: [HealthTags.Ready]);
        return services;
    }
}
