using System.Buffers;
using StackExchange.Redis;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Counters in Redis, shared by every ratelimit replica. Each update is one Lua script run on the counter's key and,
/// for a sliding window, its previous window's key; <see cref="CounterKey"/> gives both the same hash tag, so the
/// script never spans slots and works on Redis Cluster. A call's scripts are all queued before any is awaited, so
/// StackExchange.Redis writes them in one pipeline: one round trip (per shard on a cluster).
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
    private const string Script = """
        local prev = 0
        if #KEYS > 1 then prev = tonumber(redis.call('GET', KEYS[2]) or '0') end
        local hits = ARGV[1]
        if hits == '0' or ARGV[3] ~= '' then
          local count = tonumber(redis.call('GET', KEYS[1]) or '0')
          if ARGV[3] ~= '' and count + tonumber(hits) + math.floor(prev * tonumber(ARGV[4])) > tonumber(ARGV[3]) then
            return {count, prev, 0}
          end
          if hits == '0' then return {count, prev, 1} end
        end
        local count = redis.call('INCRBY', KEYS[1], hits)
        if count == tonumber(hits) or redis.call('PTTL', KEYS[1]) == -1 then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return {count, prev, 1}
        """;

    private readonly IDatabaseAsync _database;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;

    /// <param name="multiplexer">The process's shared multiplexer (<c>LegateRedis.Multiplexer</c>).</param>
    /// <param name="database">Database number; -1 for the configured default (a cluster has only 0).</param>
    /// <param name="timeout">The most one call waits for Redis; <see cref="DefaultTimeout"/> when null.</param>
    /// <param name="timeProvider">Clock for the timeout; the system clock when null.</param>
    public RedisCounterStore(IConnectionMultiplexer multiplexer, int database = -1, TimeSpan? timeout = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        _timeout = timeout ?? DefaultTimeout;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_timeout, TimeSpan.Zero, nameof(timeout));
        _database = multiplexer.GetDatabase(database);
        _time = timeProvider ?? TimeProvider.System;
    }

    public string Name => "redis";

    /// <summary>The most one call waits for Redis.</summary>
    public TimeSpan Timeout => _timeout;

    public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        if (results.Length < updates.Length)
            throw new ArgumentException("There must be a result slot for every update.", nameof(results));
        if (updates.IsEmpty)
            return ValueTask.CompletedTask;
        return UpdateCoreAsync(updates, results, cancellationToken);
    }

    private async ValueTask UpdateCoreAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
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
                    tasks[sent] = Send(updates.Span[sent]);
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
                throw new CounterStoreException($"Redis did not answer within {_timeout.TotalMilliseconds:F0} ms.");
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

    private Task<RedisResult> Send(in CounterUpdate update)
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
        return _database.ScriptEvaluateAsync(Script, keys, values);
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

    private static void ObserveLater(Task task) =>
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    // Client-side messages of StackExchange.Redis can name the key (includeDetailInExceptions), and keys carry descriptor
    // values such as API keys, so only the failure kind goes into the message and those exceptions are not kept as
    // the inner one. A server error's text comes from Redis (CLUSTERDOWN, LOADING, READONLY, OOM ...) and names no key.
    private static bool IsRedisFailure(Exception exception) =>
        exception is RedisException or RedisTimeoutException or RedisCommandException;

    private static CounterStoreException Translate(Exception exception) => exception switch
    {
        RedisTimeoutException => new CounterStoreException("Redis timed out on the counter update."),
        RedisConnectionException connection => new CounterStoreException($"Redis is unreachable ({connection.FailureType})."),
        RedisServerException server => new CounterStoreException("Redis refused the counter update: " + FirstLine(server.Message), server),
        _ => new CounterStoreException($"Redis failed the counter update ({exception.GetType().Name})."),
    };

    private static string FirstLine(string message)
    {
        var end = message.AsSpan().IndexOfAny('\r', '\n');
        var line = end < 0 ? message : message[..end];
        return line.Length > 200 ? line[..200] : line;
    }
}
