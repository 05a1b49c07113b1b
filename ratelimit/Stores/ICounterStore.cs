namespace Legate.RateLimit.Stores;

/// <summary>
/// One counter change within a request. The store adds <see cref="Hits"/> to the counter at <see cref="Key"/>,
/// creating it with <see cref="Ttl"/> when it does not exist yet, and reports the count.
/// </summary>
/// <param name="Key">The counter's key; it already embeds the window, so a new window is a new counter.</param>
/// <param name="Hits">Hits to add; 0 only reads the counter.</param>
/// <param name="Ttl">Lifetime of a counter created by this change: the rest of its window and a margin.</param>
/// <param name="Limit">The limit the count is held against, used only when <see cref="OnlyIfWithinLimit"/> is set.</param>
/// <param name="OnlyIfWithinLimit">
/// Add the hits only if <c>count + Hits + floor(previous × PreviousWeight) ≤ Limit</c>, atomically; otherwise leave
/// the counter as it is (rejected hits are not counted).
/// </param>
/// <param name="PreviousWindowKey">For sliding windows: the previous window's counter, read (never changed) in the same step.</param>
/// <param name="PreviousWeight">For sliding windows: the share of the previous window still inside the sliding window, 0..1.</param>
public readonly record struct CounterUpdate(
    string Key,
    ulong Hits,
    TimeSpan Ttl,
    ulong Limit = 0,
    bool OnlyIfWithinLimit = false,
    string? PreviousWindowKey = null,
    double PreviousWeight = 0);

/// <summary>What a counter change did.</summary>
/// <param name="Count">The counter after the change, or, when the change was refused, what it would have been (count + hits).</param>
/// <param name="PreviousWindowCount">The previous window's counter when one was asked for, else 0.</param>
/// <param name="Applied">False when <see cref="CounterUpdate.OnlyIfWithinLimit"/> refused the hits.</param>
/// <param name="FromLocalCache">True when the local over-limit cache answered, without the store (for the metrics).</param>
public readonly record struct CounterResult(ulong Count, ulong PreviousWindowCount, bool Applied, bool FromLocalCache = false);

/// <summary>Where rate limit counters live: in this process, or in Redis shared by every ratelimit replica.</summary>
public interface ICounterStore
{
    /// <summary>Short name for logs and metrics: <c>memory</c>, <c>redis</c>.</summary>
    string Name { get; }

    /// <summary>
    /// Applies every update, each atomically, and writes one result per update in the same order. A remote store
    /// sends them all in one round trip. Throws <see cref="CounterStoreException"/> when the store cannot answer.
    /// </summary>
    ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken);

    /// <summary>
    /// The longest an <see cref="UpdateAsync"/> call can take: past it the store fails the call by itself, with a
    /// <see cref="CounterStoreException"/> whose <see cref="CounterStoreException.TimedOut"/> is set. Null when the store
    /// promises no bound; the caller then sets its own deadline (a timer per call, which a bounded store spares it).
    /// </summary>
    TimeSpan? Deadline => null;
}

/// <summary>The counter store could not answer (unreachable, timed out, refused).</summary>
public sealed class CounterStoreException : Exception
{
    /// <summary>The store gave up waiting (as opposed to being refused or unreachable).</summary>
    public bool TimedOut { get; init; }

    public CounterStoreException()
    {
    }

    public CounterStoreException(string message)
        : base(message)
    {
    }

    public CounterStoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
