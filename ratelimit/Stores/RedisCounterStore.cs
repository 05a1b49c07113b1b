using System.Buffers;
using StackExchange.Redis;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Counters in Redis, shared by every ratelimit replica. On a standalone Redis or a Sentinel's primary, the updates of
/// concurrent calls are coalesced into one run of a script that applies them in turn (group commit, see
/// <see cref="RedisBatcher"/> and <see cref="RedisBatchOptions"/>). On a Redis Cluster, each update is one Lua script
/// run on the counter's key and, for a sliding window, its previous window's key; <see cref="CounterKey"/> gives both
/// the same hash tag, so the script never spans slots. A call's scripts are all queued before any is awaited, so
/// StackExchange.Redis writes them in one pipeline: one round trip per shard. Which path applies is decided once, when
/// the multiplexer first reports a connected server.
/// StackExchange.Redis loads the script on each server and runs it by SHA; after a Redis restart or SCRIPT FLUSH the
/// NOSCRIPT reply makes it send the body again, so no handling is needed here.
/// A call waits at most <see cref="Timeout"/>, then fails with <see cref="CounterStoreException"/>. Redis commands
/// cannot be withdrawn, though: an update that timed out, or was issued while the connection was down (the multiplexer
/// keeps such commands in its backlog until its own timeout), may still be counted afterwards.
/// </summary>
public sealed class RedisCounterStore : ICounterStore
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(1);

    // KEYS[1] counter, KEYS[2] previous window (optional, only read).
    // ARGV[1] hits, ARGV[2] TTL in ms, ARGV[3] limit ('' = add unconditionally), ARGV[4] previous window weight 0..1.
    // Returns {count, previous, applied}; a refused update returns the count before it (the caller adds the hits,
    // exactly, in 64-bit arithmetic). Reads and refusals never create the key. The expiry is set only by the add that
    // created the key (INCRBY returned the hits), or on a key found without one, so increments never extend a window.
    // Counts go back through Lua's doubles, which turn into a negative integer at 2^63: every count returned is capped
    // at Saturated (2^53, exact in a double and over any limit), and an INCRBY that would pass 2^63 leaves the counter
    // as it is and answers Saturated, so a counter driven that far stays over its limit instead of failing every call.
    private const string Script = """
        local CAP = 9007199254740992
        local prev = 0
        if #KEYS > 1 then prev = tonumber(redis.call('GET', KEYS[2]) or '0') end
        local hits = ARGV[1]
        if hits == '0' or ARGV[3] ~= '' then
          local count = tonumber(redis.call('GET', KEYS[1]) or '0')
          if ARGV[3] ~= '' and count + tonumber(hits) + math.floor(prev * tonumber(ARGV[4])) > tonumber(ARGV[3]) then
            return {math.min(count, CAP), math.min(prev, CAP), 0}
          end
          if hits == '0' then return {math.min(count, CAP), math.min(prev, CAP), 1} end
        end
        local count = redis.pcall('INCRBY', KEYS[1], hits)
        if type(count) == 'table' then
          if not string.find(count.err, 'overflow', 1, true) then return count end
          return {CAP, math.min(prev, CAP), 1}
        end
        if count == tonumber(hits) or redis.call('PTTL', KEYS[1]) == -1 then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return {math.min(count, CAP), math.min(prev, CAP), 1}
        """;

    /// <summary>
    /// The count Redis answers for a counter at or past 2^53 (its scripts' cap): the last count Lua's doubles hold
    /// exactly, and far over any limit (limits are uint32), so the decision is the one the real count would give.
    /// </summary>
    public const ulong Saturated = 1UL << 53;

    private const int Undecided = 0;
    private const int Batched = 1;
    private const int PerCounter = 2;

    private readonly Task<IConnectionMultiplexer> _connection;
    private readonly int _databaseNumber;
    private readonly RedisBatchOptions _batching;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private Connected? _connected;
    private int _mode;

    /// <param name="multiplexer">A connected multiplexer (tests, tools); the services pass <c>LegateRedis.Connection</c> to the other constructor.</param>
    /// <param name="database">Database number; -1 for the configured default (a cluster has only 0).</param>
    /// <param name="timeout">The most one call waits for Redis; <see cref="DefaultTimeout"/> when null.</param>
    /// <param name="timeProvider">Clock for the timeout; the system clock when null.</param>
    /// <param name="batching">Group commit on a non-cluster Redis; <see cref="RedisBatchOptions.Default"/> when null.</param>
    public RedisCounterStore(IConnectionMultiplexer multiplexer, int database = -1, TimeSpan? timeout = null, TimeProvider? timeProvider = null, RedisBatchOptions? batching = null)
        : this(Task.FromResult(multiplexer ?? throw new ArgumentNullException(nameof(multiplexer))), database, timeout, timeProvider, batching)
    {
    }

    /// <param name="connection">
    /// The shared multiplexer once its first connect completed (<c>LegateRedis.Connection</c>). Until then a call waits
    /// for it at most <see cref="Timeout"/>, then fails as a timeout: never longer than a call with Redis down.
    /// </param>
    /// <param name="database">Database number; -1 for the configured default (a cluster has only 0).</param>
    /// <param name="timeout">The most one call waits for Redis; <see cref="DefaultTimeout"/> when null.</param>
    /// <param name="timeProvider">Clock for the timeout; the system clock when null.</param>
    /// <param name="batching">Group commit on a non-cluster Redis; <see cref="RedisBatchOptions.Default"/> when null.</param>
    public RedisCounterStore(Task<IConnectionMultiplexer> connection, int database = -1, TimeSpan? timeout = null, TimeProvider? timeProvider = null, RedisBatchOptions? batching = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _timeout = timeout ?? DefaultTimeout;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_timeout, TimeSpan.Zero, nameof(timeout));
        batching ??= RedisBatchOptions.Default;
        ArgumentOutOfRangeException.ThrowIfLessThan(batching.MaxCounters, 1, nameof(batching));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batching.MaxCounters, RedisBatchOptions.MaxCountersLimit, nameof(batching));
        ArgumentOutOfRangeException.ThrowIfLessThan(batching.MaxInFlight, 1, nameof(batching));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batching.MaxInFlight, RedisBatchOptions.MaxInFlightLimit, nameof(batching));
        _connection = connection;
        _databaseNumber = database;
        _batching = batching;
        _time = timeProvider ?? TimeProvider.System;
        if (!batching.Enabled)
            _mode = PerCounter;
    }

    // What a connected multiplexer gives, made once the first connect completed.
    private sealed record Connected(IConnectionMultiplexer Multiplexer, IDatabaseAsync Database, RedisBatcher? Batcher);

    public string Name => "redis";

    /// <summary>The most one call waits for Redis.</summary>
    public TimeSpan Timeout => _timeout;

    public TimeSpan? Deadline => _timeout;

    /// <summary>
    /// Whether calls are coalesced: batching is enabled and the multiplexer has shown a connected server that is not
    /// part of a cluster (nor a proxy). False until a server is connected, and for good on a cluster.
    /// </summary>
    public bool IsBatching => (Volatile.Read(ref _connected) ?? TryConnect()) is { } connected && IsBatchingOn(connected);

    /// <summary>Batch scripts sent so far (0 without batching): with <see cref="BatchedCounters"/>, how much batching happens.</summary>
    public long BatchScripts => Volatile.Read(ref _connected)?.Batcher?.Scripts ?? 0;

    /// <summary>Counter updates sent in batch scripts so far.</summary>
    public long BatchedCounters => Volatile.Read(ref _connected)?.Batcher?.Counters ?? 0;

    /// <summary>Entries of batch scripts sent so far: <see cref="BatchedCounters"/> less the additions merged with one before them.</summary>
    public long BatchedEntries => Volatile.Read(ref _connected)?.Batcher?.Entries ?? 0;

    public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        if (results.Length < updates.Length)
            throw new ArgumentException("There must be a result slot for every update.", nameof(results));
        if (updates.IsEmpty)
            return ValueTask.CompletedTask;
        if ((Volatile.Read(ref _connected) ?? TryConnect()) is not { } connected)
            return UpdateWhenConnectedAsync(updates, results, cancellationToken);
        return IsBatchingOn(connected)
            ? connected.Batcher!.UpdateAsync(updates, results, cancellationToken)
            : UpdateCoreAsync(connected.Database, updates, results, cancellationToken);
    }

    /// <summary>The connected state once the first connect completed; null before.</summary>
    private Connected? TryConnect()
    {
        if (!_connection.IsCompletedSuccessfully)
            return null;
        var multiplexer = _connection.Result;
        var database = multiplexer.GetDatabase(_databaseNumber);
        var batcher = _batching.Enabled ? new RedisBatcher(database, _timeout, _time, _batching.MaxCounters, _batching.MaxInFlight) : null;
        // Racing callers may each build one; all but the first are dropped before any use.
        return Interlocked.CompareExchange(ref _connected, new Connected(multiplexer, database, batcher), null) ?? _connected;
    }

    // Only at start-up, before the shared multiplexer's first connect completed: the wait for it and the update share
    // the call's one deadline, so a call never takes longer than with Redis down.
    private async ValueTask UpdateWhenConnectedAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        try
        {
            await _connection.WaitAsync(_timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new CounterStoreException($"Redis is not connected yet (its first connect did not complete within {_timeout.TotalMilliseconds:F0} ms).") { TimedOut = true };
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw new CounterStoreException($"Redis could not be connected ({e.GetType().Name}).");
        }
        var left = _timeout - _time.GetElapsedTime(started);
        var update = UpdateAsync(updates, results, cancellationToken).AsTask();
        try
        {
            // The update may still write the results after this gives up: the caller treats a timeout as such.
            await update.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException e) when (e is not RedisTimeoutException)
        {
            ObserveLater(update);
            throw new CounterStoreException($"Redis did not answer within {_timeout.TotalMilliseconds:F0} ms.") { TimedOut = true };
        }
    }

    private bool IsBatchingOn(Connected connected) =>
        Volatile.Read(ref _mode) == Batched || (Volatile.Read(ref _mode) == Undecided && Decide(connected.Multiplexer));

    // Multi-key scripts work only where every key is on one server: a standalone Redis (a Sentinel's primary is one).
    // Until a server is connected its type is unknown, and the per-counter path, which works everywhere, is used.
    private bool Decide(IConnectionMultiplexer multiplexer)
    {
        var connected = false;
        foreach (var server in multiplexer.GetServers())
        {
            // Sentinels only name the primary; they never hold counters.
            if (!server.IsConnected || server.ServerType == ServerType.Sentinel)
                continue;
            if (server.ServerType != ServerType.Standalone)
            {
                Interlocked.CompareExchange(ref _mode, PerCounter, Undecided);
                return false;
            }
            connected = true;
        }
        if (connected)
            Interlocked.CompareExchange(ref _mode, Batched, Undecided);
        return Volatile.Read(ref _mode) == Batched;
    }

    private async ValueTask UpdateCoreAsync(IDatabaseAsync database, ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var count = updates.Length;
        var tasks = ArrayPool<Task>.Shared.Rent(count);
        try
        {
            var sent = 0;
            try
            {
                for (; sent < count; sent++)
                    tasks[sent] = Send(database, updates.Span[sent]);
            }
            catch (Exception e) when (IsRedisFailure(e))
            {
                // Sent ones still complete; observe them so their faults do not surface as unobserved.
                ObserveLater(Task.WhenAll(tasks.AsSpan(0, sent)));
                throw Translate(e);
            }

            var all = count == 1 ? tasks[0] : Task.WhenAll(new ReadOnlySpan<Task>(tasks, 0, count));
            try
            {
                await all.WaitAsync(_timeout, _time, cancellationToken);
            }
            catch (TimeoutException e) when (e is not RedisTimeoutException)
            {
                ObserveLater(all);
                throw new CounterStoreException($"Redis did not answer within {_timeout.TotalMilliseconds:F0} ms.") { TimedOut = true };
            }
            catch (OperationCanceledException) when (!all.IsCompleted)
            {
                ObserveLater(all);
                throw;
            }
            catch (Exception e) when (IsRedisFailure(e))
            {
                throw Translate(e);
            }

            var target = results.Span;
            for (var i = 0; i < count; i++)
                target[i] = Read(((Task<RedisResult>)tasks[i]).Result, updates.Span[i].Hits);
        }
        finally
        {
            ArrayPool<Task>.Shared.Return(tasks, clearArray: true);
        }
    }

    private static Task<RedisResult> Send(IDatabaseAsync database, in CounterUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update.Key);
        RedisKey[] keys = update.PreviousWindowKey is { } previous ? [update.Key, previous] : [update.Key];
        // Redis counts in signed 64 bits; a larger addend would only make INCRBY fail.
        var hits = Math.Min(update.Hits, long.MaxValue);
        RedisValue[] values =
        [
            hits,
            CounterMath.TtlMilliseconds(update.Ttl),
            update.OnlyIfWithinLimit ? update.Limit : RedisValue.EmptyString,
            CounterMath.Weight(update),
        ];
        return database.ScriptEvaluateAsync(Script, keys, values);
    }

    private static CounterResult Read(RedisResult reply, ulong hits)
    {
        if (reply.Length != 3)
            throw new CounterStoreException("Redis answered the counter script with an unexpected reply.");
        var count = (ulong)Math.Max(0, (long)reply[0]);
        var previous = (ulong)Math.Max(0, (long)reply[1]);
        var applied = (long)reply[2] == 1;
        return new CounterResult(applied ? count : CounterMath.Add(count, hits), previous, applied);
    }

    internal static void ObserveLater(Task task) =>
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    // Client-side messages of StackExchange.Redis can name the key (includeDetailInExceptions), and keys carry descriptor
    // values such as API keys, so only the failure kind goes into the message and those exceptions are not kept as
    // the inner one. A server error's text comes from Redis (CLUSTERDOWN, LOADING, READONLY, OOM ...) and names no key.
    internal static bool IsRedisFailure(Exception exception) =>
        exception is RedisException or RedisTimeoutException or RedisCommandException;

    internal static CounterStoreException Translate(Exception exception) => exception switch
    {
        RedisTimeoutException => new CounterStoreException("Redis timed out on the counter update.") { TimedOut = true },
        RedisConnectionException connection => new CounterStoreException($"Redis is unreachable ({connection.FailureType})."),
        RedisServerException server => new CounterStoreException("Redis refused the counter update: " + FirstLine(server.Message), server),
        _ => new CounterStoreException($"Redis failed the counter update ({exception.GetType().Name})."),
    };

    /// <summary>A server error returned for one update of a batch (its text comes from Redis and names no key).</summary>
    internal static CounterStoreException Refused(string error) => new("Redis refused the counter update: " + FirstLine(error));

    private static string FirstLine(string message)
    {
        var end = message.AsSpan().IndexOfAny('\r', '\n');
        var line = end < 0 ? message : message[..end];
        return line.Length > 200 ? line[..200] : line;
    }
}
