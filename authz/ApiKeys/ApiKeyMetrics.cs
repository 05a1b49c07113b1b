using Prometheus;

namespace Legate.Authz.ApiKeys;

/// <summary>
/// <c>legate_authz_api_key_lookups_total{store, result}</c>: lookups of well-formed keys by store (file | redis) and
/// whether a record was found (found | unknown); <c>legate_authz_api_key_cache_total{result}</c>: the Redis store's
/// local cache (hit | miss). Fixed label values, so cardinality is constant.
/// </summary>
public sealed class ApiKeyMetrics
{
    private readonly Counter.Child _fileFound;
    private readonly Counter.Child _fileUnknown;
    private readonly Counter.Child _redisFound;
    private readonly Counter.Child _redisUnknown;
    private readonly Counter.Child _cacheHit;
    private readonly Counter.Child _cacheMiss;

    public ApiKeyMetrics(IMetricFactory metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var lookups = metrics.CreateCounter("legate_authz_api_key_lookups_total", "API key lookups by store (file, redis) and result (found, unknown).", ["store", "result"]);
        var cache = metrics.CreateCounter("legate_authz_api_key_cache_total", "Lookups in the Redis key store's local cache, by result (hit, miss).", ["result"]);
        _fileFound = lookups.WithLabels("file", "found");
        _fileUnknown = lookups.WithLabels("file", "unknown");
        _redisFound = lookups.WithLabels("redis", "found");
        _redisUnknown = lookups.WithLabels("redis", "unknown");
        _cacheHit = cache.WithLabels("hit");
        _cacheMiss = cache.WithLabels("miss");
    }

    internal void FileLookup(bool found) => (found ? _fileFound : _fileUnknown).Inc();

    internal void RedisLookup(bool found) => (found ? _redisFound : _redisUnknown).Inc();

    internal void RedisCache(bool hit) => (hit ? _cacheHit : _cacheMiss).Inc();
}
