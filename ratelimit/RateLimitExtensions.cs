using Legate.Hosting.Redis;
using Legate.Hosting.Rules;
using Legate.RateLimit;
using Legate.RateLimit.Config;
using Legate.RateLimit.Stores;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wiring of the ratelimit service.</summary>
public static class RateLimitExtensions
{
    /// <summary>The Envoy gRPC service ratelimit implements, also a name the gRPC health service answers for.</summary>
    public const string GrpcServiceName = "envoy.service.ratelimit.v3.RateLimitService";

    /// <summary>The rules' name: configured under <c>Legate:Rules:ratelimit</c>.</summary>
    public const string RulesName = "ratelimit";

    /// <summary>
    /// Rules from envoyproxy/ratelimit YAML files (hot-reloaded), the decision engine, and the counter store the
    /// configuration names: in memory (default), or Redis behind a local cache of counters already over limit (or, with
    /// write-behind, behind local counters synced every interval).
    /// </summary>
    public static WebApplicationBuilder AddRateLimit(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = builder.Configuration.GetSection(RateLimitOptions.SectionName).Get<RateLimitOptions>() ?? new RateLimitOptions();
        services.AddOptions<RateLimitOptions>().Bind(builder.Configuration.GetSection(RateLimitOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RateLimitOptions>, RateLimitOptionsValidator>());

        services.TryAddSingleton(sp => new RateLimitConfigLoader(sp.GetRequiredService<IOptions<RateLimitOptions>>().Value.MergeDomains));
        builder.AddLegateRules<RateLimitConfig, RateLimitConfigLoader>(RulesName);

        if (options.Store == "redis")
        {
            services.AddLegateRedis(builder.Configuration, readinessCheck: options.ReadinessFollowsStore);
            services.TryAddSingleton(sp =>
            {
                var o = sp.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                return new RedisCounterStore(sp.GetRequiredService<LegateRedis>().Connection, timeout: RedisTimeout(o), timeProvider: sp.GetRequiredService<TimeProvider>(), batching: Batching(o));
            });
            // A singleton of its own, so that the container disposes it (sending the hits left) even when it is wrapped.
            services.TryAddSingleton(sp =>
            {
                var o = sp.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                var time = sp.GetRequiredService<TimeProvider>();
                // Syncs wait up to a second rather than a call's deadline: no caller waits for them, and one that times
                // out is sent again, counting twice if Redis had applied it.
                var syncs = new RedisCounterStore(sp.GetRequiredService<LegateRedis>().Connection, timeout: RedisCounterStore.DefaultTimeout, timeProvider: time, batching: Batching(o));
                return new WriteBehindCounterStore(sp.GetRequiredService<RedisCounterStore>(), time, o.WriteBehindInterval, o.MaxMemoryCounters,
                    sp.GetRequiredService<ILoggerFactory>().CreateLogger<WriteBehindCounterStore>(), sp.GetRequiredService<IMetricFactory>(), syncs);
            });
            services.TryAddSingleton<ICounterStore>(sp =>
            {
                var o = sp.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                var time = sp.GetRequiredService<TimeProvider>();
                ICounterStore store = o.WriteBehind ? sp.GetRequiredService<WriteBehindCounterStore>() : sp.GetRequiredService<RedisCounterStore>();
                if (!o.WriteBehind && o.LocalOverLimitCache)
                    store = new OverLimitCachingStore(store, time);
                if (o.DegradedMode)
                {
                    store = new FailoverCounterStore(store, new MemoryCounterStore(time, o.MaxMemoryCounters), time, RedisTimeout(o), o.DegradedRetryInterval,
                        sp.GetRequiredService<ILoggerFactory>().CreateLogger<FailoverCounterStore>(), sp.GetRequiredService<IMetricFactory>());
                }
                return store;
            });
        }
        else
        {
            services.TryAddSingleton<ICounterStore>(sp =>
                new MemoryCounterStore(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<IOptions<RateLimitOptions>>().Value.MaxMemoryCounters));
        }
        services.TryAddSingleton(sp => new RateLimitMetrics(sp.GetRequiredService<IMetricFactory>()));
        services.TryAddSingleton<RateLimiter>();
        return builder;
    }

    private static RedisBatchOptions Batching(RateLimitOptions options) => new(options.RedisBatching, options.RedisBatchMaxCounters, options.RedisBatchesInFlight);

    // In degraded mode Redis gets half the deadline, so the local counters can still answer within it.
    private static TimeSpan RedisTimeout(RateLimitOptions options) => options.DegradedMode ? options.StoreTimeout / 2 : options.StoreTimeout;

    public static WebApplication MapRateLimit(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcService<RateLimitService>();
        DebugEndpoints.Map(app);
        return app;
    }
}
