namespace Legate.RateLimit.Stores;

/// <summary>
/// Group commit of <see cref="RedisCounterStore"/>: on a standalone Redis or a Sentinel's primary, the counter updates
/// of concurrent calls go to Redis together, in one script run. A Redis Cluster always gets one script per counter
/// (a script's keys must share a slot).
/// </summary>
/// <param name="Enabled">Whether to batch at all; off, every counter is its own script, as on a cluster.</param>
/// <param name="MaxCounters">
/// A batch closes once it holds this many counters (a call's updates stay together, so one call may take it past).
/// Bounds how long one script keeps Redis busy.
/// </param>
/// <param name="MaxInFlight">
/// Batches sent and not yet answered at once. While all are out, calls queue and go together in the next batch.
/// </param>
public sealed record RedisBatchOptions(bool Enabled = true, int MaxCounters = RedisBatchOptions.DefaultMaxCounters, int MaxInFlight = RedisBatchOptions.DefaultMaxInFlight)
{
    public const int DefaultMaxCounters = 256;
    public const int DefaultMaxInFlight = 2;

    /// <summary>The ranges options are held to.</summary>
    public const int MaxCountersLimit = 4096;
    public const int MaxInFlightLimit = 64;

    /// <summary>Batching on, with the default sizes.</summary>
    public static RedisBatchOptions Default { get; } = new();

    /// <summary>One script per counter, whatever the server.</summary>
    public static RedisBatchOptions Off { get; } = new(Enabled: false);
}
