using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using Legate.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Legate.Authz.ApiKeys;

/// <summary>Settings of <see cref="RedisApiKeyStore"/>.</summary>
public sealed class RedisApiKeyStoreOptions
{
    /// <summary>
    /// Prefix of every Redis key. The default holds a hash tag (<c>{apikeys}</c>) so that, on a Redis Cluster, a key's
    /// record and the index sets live on one shard and the add and revoke transactions stay single-slot.
    /// </summary>
    public string KeyPrefix { get; set; } = "legate:{apikeys}:";

    /// <summary>
    /// How long a lookup (found or not found) is reused by this replica. This bounds how late a revocation made on
    /// another replica (or directly in Redis) takes effect here; a revocation through this instance is immediate.
    /// Zero turns the cache off.
    /// </summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>At most this many lookups are cached; past it the cache is emptied (a flood of random ids cannot grow it).</summary>
    public int CacheSize { get; set; } = 10_000;

    /// <summary>How long a Redis call may take before the lookup counts as store-unavailable (the caller fails closed).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Redis database number; -1 is the connection's default.</summary>
    public int Database { get; set; } = -1;
}

/// <summary>
/// Key records in Redis, shared by every authz replica. Layout under the prefix:
/// <list type="bullet">
/// <item><c>key:{keyId}</c>: a hash of the record's fields (<c>sha256</c> hex, <c>tenant</c>, <c>client</c>, <c>scopes</c>
/// space-separated, <c>plan</c>, <c>created</c>/<c>expires</c> Unix ms, <c>revoked</c> 0/1, <c>description</c>);</item>
/// <item><c>client:{tenant}:{client}</c>: the set of the client's key ids (rotation: several at once);</item>
/// <item><c>keys</c>: the set of all key ids, for listing.</item>
/// </list>
/// Lookups are cached locally for <see cref="RedisApiKeyStoreOptions.CacheTtl"/> (default 2 s): so a revocation is in
/// force everywhere within that time plus one Redis round trip. Redis errors and timeouts surface as
/// <see cref="ApiKeyStoreUnavailableException"/>, whose messages hold no key material.
/// </summary>
public sealed class RedisApiKeyStore : IApiKeyStore
{
    private static readonly RedisValue[] RecordFields = ["sha256", "tenant", "client", "scopes", "plan", "created", "expires", "revoked", "description"];

    private readonly Task<IConnectionMultiplexer> _connection;
    private readonly RedisApiKeyStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, CacheEntry> _cache = new(StringComparer.Ordinal);
    private readonly long _cacheTicks;
    private readonly ApiKeyMetrics? _metrics;

    // An invalid record is not cached (each lookup reads it again, so a repair is seen at once): its log line would
    // come once per request with that key id, which anyone can send.
    private readonly EventThrottle _invalidRecords;

    public RedisApiKeyStore(IConnectionMultiplexer redis, RedisApiKeyStoreOptions? options = null, TimeProvider? time = null, ILogger? logger = null)
        : this(Task.FromResult(redis ?? throw new ArgumentNullException(nameof(redis))), options, time, logger)
    {
    }

    /// <param name="connection">
    /// The shared multiplexer once its first connect completed (<c>LegateRedis.Connection</c>). Until then a lookup
    /// waits for it at most <see cref="RedisApiKeyStoreOptions.Timeout"/>, then fails as unavailable.
    /// </param>
    /// <param name="options">Key prefix, database, timeout and cache.</param>
    /// <param name="time">Clock for the cache and the timeout; the system clock when null.</param>
    /// <param name="logger">Logger; none when null.</param>
    /// <param name="metrics">Lookup and cache counters (the service's); none for the key management command.</param>
    public RedisApiKeyStore(Task<IConnectionMultiplexer> connection, RedisApiKeyStoreOptions? options = null, TimeProvider? time = null, ILogger? logger = null,
        ApiKeyMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _connection = connection;
        _options = options ?? new RedisApiKeyStoreOptions();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _cacheTicks = (long)(_options.CacheTtl.TotalSeconds * _time.TimestampFrequency);
        _invalidRecords = new EventThrottle(_time);
        _metrics = metrics;
    }

    // At once once the first connect completed; only at start-up do the management calls (add, revoke, list) wait for it,
    // each step within the store's timeout.
    private ValueTask<IDatabase> DatabaseAsync(CancellationToken cancellationToken) => _connection.IsCompletedSuccessfully
        ? new ValueTask<IDatabase>(_connection.Result.GetDatabase(_options.Database))
        : WaitForDatabaseAsync(cancellationToken);

    private async ValueTask<IDatabase> WaitForDatabaseAsync(CancellationToken cancellationToken) =>
        (await CallAsync(_connection, cancellationToken).ConfigureAwait(false)).GetDatabase(_options.Database);

    private async Task<RedisValue[]> ReadWhenConnectedAsync(string keyId) =>
        await (await _connection.ConfigureAwait(false)).GetDatabase(_options.Database).HashGetAsync(RecordKey(keyId), RecordFields).ConfigureAwait(false);

    private RedisKey RecordKey(string keyId) => _options.KeyPrefix + "key:" + keyId;

    private RedisKey ClientKey(string tenant, string clientId) => _options.KeyPrefix + "client:" + tenant + ":" + clientId;

    private RedisKey AllKey => _options.KeyPrefix + "keys";

    public ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        if (_cacheTicks > 0)
        {
            var hit = _cache.TryGetValue(keyId, out var entry) && _time.GetTimestamp() < entry.ExpiresAt;
            _metrics?.RedisCache(hit);
            if (hit)
            {
                _metrics?.RedisLookup(entry.Record is not null);
                return new ValueTask<ApiKeyRecord?>(entry.Record);
            }
        }
        return FindInRedisAsync(keyId, cancellationToken);
    }

    private async ValueTask<ApiKeyRecord?> FindInRedisAsync(string keyId, CancellationToken cancellationToken)
    {
        // Before the first connect completed, the wait for it and the read share the lookup's one timeout.
        var read = _connection.IsCompletedSuccessfully
            ? _connection.Result.GetDatabase(_options.Database).HashGetAsync(RecordKey(keyId), RecordFields)
            : ReadWhenConnectedAsync(keyId);
        var values = await CallAsync(read, cancellationToken).ConfigureAwait(false);
        var record = Read(keyId, values);
        _metrics?.RedisLookup(record is not null);
        if (_cacheTicks > 0)
        {
            // Bounded: a flood of made-up ids empties the cache instead of growing it (cost: a burst of Redis reads).
            if (_cache.Count >= _options.CacheSize)
                _cache.Clear();
            _cache[keyId] = new CacheEntry(record, _time.GetTimestamp() + _cacheTicks);
        }
        return record;
    }

    /// <summary>Stores a new record. False when the key id is already taken (the record is not changed).</summary>
    public async Task<bool> AddAsync(ApiKeyRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        foreach (var scope in record.Scopes)
        {
            if (scope.Length == 0 || scope.Any(char.IsWhiteSpace))
                throw new ArgumentException("Scopes cannot be empty or contain spaces.", nameof(record));
        }
        var key = RecordKey(record.KeyId);
        var transaction = (await DatabaseAsync(cancellationToken).ConfigureAwait(false)).CreateTransaction();
        transaction.AddCondition(Condition.KeyNotExists(key));
        _ = transaction.HashSetAsync(key, Write(record));
        _ = transaction.SetAddAsync(ClientKey(record.Tenant, record.ClientId), record.KeyId);
        _ = transaction.SetAddAsync(AllKey, record.KeyId);
        var added = await CallAsync(transaction.ExecuteAsync(), cancellationToken).ConfigureAwait(false);
        if (added)
            _cache.TryRemove(record.KeyId, out _);
        return added;
    }

    /// <summary>Marks a key revoked. In force at once on this instance, within the cache TTL elsewhere. False when there is no such key.</summary>
    public async Task<bool> RevokeAsync(string keyId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        var key = RecordKey(keyId);
        var transaction = (await DatabaseAsync(cancellationToken).ConfigureAwait(false)).CreateTransaction();
        transaction.AddCondition(Condition.KeyExists(key));
        _ = transaction.HashSetAsync(key, "revoked", "1");
        var revoked = await CallAsync(transaction.ExecuteAsync(), cancellationToken).ConfigureAwait(false);
        _cache.TryRemove(keyId, out _);
        return revoked;
    }

    /// <summary>The records, optionally of one tenant and/or client, ordered by tenant, client and creation.</summary>
    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string? tenant = null, string? clientId = null, CancellationToken cancellationToken = default)
    {
        var database = await DatabaseAsync(cancellationToken).ConfigureAwait(false);
        var index = tenant is not null && clientId is not null ? ClientKey(tenant, clientId) : AllKey;
        var ids = await CallAsync(database.SetMembersAsync(index), cancellationToken).ConfigureAwait(false);
        var batch = database.CreateBatch();
        var reads = new Task<RedisValue[]>[ids.Length];
        for (var i = 0; i < ids.Length; i++)
            reads[i] = batch.HashGetAsync(RecordKey(ids[i].ToString()), RecordFields);
        batch.Execute();
        await CallAsync(Task.WhenAll(reads), cancellationToken).ConfigureAwait(false);

        var records = new List<ApiKeyRecord>(ids.Length);
        for (var i = 0; i < ids.Length; i++)
        {
            if (Read(ids[i].ToString(), await reads[i].ConfigureAwait(false)) is { } record
                && (tenant is null || record.Tenant == tenant) && (clientId is null || record.ClientId == clientId))
            {
                records.Add(record);
            }
        }
        return [.. records.OrderBy(r => r.Tenant, StringComparer.Ordinal).ThenBy(r => r.ClientId, StringComparer.Ordinal).ThenBy(r => r.CreatedAt)];
    }

    private async Task<T> CallAsync<T>(Task<T> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call.WaitAsync(_options.Timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            _ = call.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            throw new ApiKeyStoreUnavailableException("The Redis API key store did not answer in time.", e);
        }
        catch (Exception e) when (e is RedisException or ObjectDisposedException)
        {
            throw new ApiKeyStoreUnavailableException("The Redis API key store failed: " + e.GetType().Name + ".", e);
        }
    }

    private static HashEntry[] Write(ApiKeyRecord record)
    {
        var fields = new List<HashEntry>(9)
        {
            new("sha256", record.Sha256Hex),
            new("tenant", record.Tenant),
            new("client", record.ClientId),
            new("scopes", string.Join(' ', record.Scopes)),
            new("created", record.CreatedAt.ToUnixTimeMilliseconds()),
            new("revoked", record.Revoked ? "1" : "0"),
        };
        if (record.Plan is not null)
            fields.Add(new("plan", record.Plan));
        if (record.ExpiresAt is { } expires)
            fields.Add(new("expires", expires.ToUnixTimeMilliseconds()));
        if (record.Description is not null)
            fields.Add(new("description", record.Description));
        return [.. fields];
    }

    // Field order as in RecordFields. A damaged record is refused (the store is then "unavailable" for that key: fail closed).
    private ApiKeyRecord? Read(string keyId, RedisValue[] values)
    {
        if (values[0].IsNull && values[1].IsNull && values[2].IsNull)
            return null;
        try
        {
            var hex = values[0].ToString();
            var scopes = values[3].IsNullOrEmpty ? ImmutableArray<string>.Empty
                : [.. values[3].ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries)];
            var record = new ApiKeyRecord(keyId, ImmutableArray.Create(Convert.FromHexString(hex)), values[1].ToString(), values[2].ToString(), scopes,
                DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(values[5].ToString(), CultureInfo.InvariantCulture)),
                values[6].IsNullOrEmpty ? null : DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(values[6].ToString(), CultureInfo.InvariantCulture)),
                values[7] == "1", values[4].IsNull ? null : values[4].ToString(), values[8].IsNull ? null : values[8].ToString());
            // The keys file's rules: these values become identity headers and descriptors.
            return ApiKeyRecordRules.Holds(record) ? record : throw new FormatException("The record's tenant, client, plan or scopes break ApiKeyRecordRules.");
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
        {
            if (_invalidRecords.TryReport(out var invalidLookups))
                ApiKeysLog.RecordInvalid(_logger, keyId, e.GetType().Name, invalidLookups, _invalidRecords.Interval.TotalSeconds);
            throw new ApiKeyStoreUnavailableException("A stored API key record is invalid.");
        }
    }

    private readonly record struct CacheEntry(ApiKeyRecord? Record, long ExpiresAt);
}
