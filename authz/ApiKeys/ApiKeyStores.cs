using Legate.Hosting.Rules;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using StackExchange.Redis;

namespace Legate.Authz.ApiKeys;

/// <summary>
/// The key stores a policy file names (<c>api_keys: {file: …}</c> or <c>{redis: true}</c>), kept across policy reloads.
/// <para>
/// A keys file gets a <see cref="RulesProvider{TRules}"/> of its own (rules name <c>authz-keys</c>): it is watched and
/// reloaded on its own, so a <c>legate keys create|revoke</c> needs no policy edit and does not re-create the policy's
/// JWKS sources; a bad keys file is logged and counted (<c>legate_rules_reloads_total{rules="authz-keys",result="failure"}</c>)
/// while the last good keys stay in force. A policy reload that names the same file reuses its provider.
/// </para>
/// <para>The Redis store is one per process, on the shared multiplexer, so its lookup cache survives policy reloads.</para>
/// </summary>
public sealed class ApiKeyStores : IDisposable
{
    public const string KeysRulesName = "authz-keys";

    private readonly TimeProvider _time;
    private readonly RulesOptions _watch;
    private readonly IMetricFactory _metrics;
    private readonly ApiKeyMetrics _lookups;
    private readonly ILoggerFactory _loggers;
    private readonly Task<IConnectionMultiplexer>? _redis;
    private readonly Dictionary<string, RulesProvider<ApiKeySet>> _files = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private RedisApiKeyStore? _redisStore;
    private TimeSpan _redisCacheTtl;

    /// <param name="watch">Whether and how often keys files are watched (the policy's own <c>Legate:Rules:authz</c> settings).</param>
    /// <param name="redis">The shared Redis connection (<c>LegateRedis.Connection</c>, which may still be connecting), or null when <c>Legate:Redis:Configuration</c> is not set.</param>
    public ApiKeyStores(TimeProvider time, RulesOptions? watch = null, IMetricFactory? metrics = null, ILoggerFactory? loggers = null,
        Task<IConnectionMultiplexer>? redis = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _watch = watch ?? new RulesOptions { Watch = false };
        _metrics = metrics ?? Metrics.WithCustomRegistry(Metrics.NewCustomRegistry());
        _lookups = new ApiKeyMetrics(_metrics);
        _loggers = loggers ?? NullLoggerFactory.Instance;
        _redis = redis;
    }

    /// <summary>Whether a Redis connection is configured.</summary>
    public bool HasRedis => _redis is not null;

    /// <summary>The store of a keys file, loading it now if it is new to this process.</summary>
    /// <exception cref="RulesException">A keys file named for the first time is missing or invalid.</exception>
    public FileApiKeyStore File(string path)
    {
        var full = Path.GetFullPath(path);
        lock (_gate)
        {
            if (!_files.TryGetValue(full, out var provider))
            {
                var options = new RulesOptions { Path = full, PollInterval = _watch.PollInterval, Watch = _watch.Watch };
                provider = new RulesProvider<ApiKeySet>(KeysRulesName, options, new ApiKeySetLoader(), _time,
                    _loggers.CreateLogger($"Legate.Rules.{KeysRulesName}"), _metrics);
                try
                {
                    // The hosted-service start: first load (throws on a bad file), then the watcher and the poll timer.
                    ((IHostedLifecycleService)provider).StartingAsync(CancellationToken.None).GetAwaiter().GetResult();
                }
                catch
                {
                    provider.Dispose();
                    throw;
                }
                _files.Add(full, provider);
            }
            return new FileApiKeyStore(provider, _lookups);
        }
    }

    /// <summary>The process's Redis store.</summary>
    /// <exception cref="InvalidOperationException">No Redis connection is configured.</exception>
    public RedisApiKeyStore Redis(TimeSpan cacheTtl)
    {
        lock (_gate)
        {
            if (_redisStore is null || _redisCacheTtl != cacheTtl)
            {
                var redis = _redis ?? throw new InvalidOperationException("No Redis connection is configured.");
                _redisStore = new RedisApiKeyStore(redis, new RedisApiKeyStoreOptions { CacheTtl = cacheTtl }, _time, _loggers.CreateLogger<RedisApiKeyStore>(), _lookups);
                _redisCacheTtl = cacheTtl;
            }
            return _redisStore;
        }
    }

    /// <summary>Stops watching the keys files not in <paramref name="inUse"/> (full paths): the policy no longer names them.</summary>
    public void Retain(IEnumerable<string> inUse)
    {
        var keep = new HashSet<string>(inUse.Select(p => Path.GetFullPath(p)), StringComparer.Ordinal);
        lock (_gate)
        {
            foreach (var path in _files.Keys.Where(p => !keep.Contains(p)).ToList())
            {
                _files[path].Dispose();
                _files.Remove(path);
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var provider in _files.Values)
                provider.Dispose();
            _files.Clear();
        }
    }
}
