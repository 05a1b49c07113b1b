namespace Legate.RateLimit.Stores;

/// <summary>
/// Counters in this process: the default when one ratelimit instance serves alone. Each counter is a small object
/// changed with Interlocked operations, so callers never take a lock; a counter past its expiry reads as absent and
/// is swapped for a fresh one atomically. Memory is bounded: a timer drops expired counters every
/// <see cref="SweepInterval"/>, and a full store makes room as <see cref="ExpiringMap{TValue}"/> describes (expired
/// first, then the counters closest to expiry), so a flood of unique keys cannot grow it past the bound.
/// </summary>
public sealed class MemoryCounterStore : ICounterStore, IDisposable
{
    public const int DefaultMaxCounters = 1_000_000;

    /// <summary>How often expired counters are dropped.</summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(10);

    private readonly TimeProvider _time;
    private readonly ExpiringMap<Counter> _counters;
    private readonly ITimer _sweepTimer;

    public MemoryCounterStore(TimeProvider timeProvider, int maxCounters = DefaultMaxCounters)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        _time = timeProvider;
        _counters = new ExpiringMap<Counter>(maxCounters);
        _sweepTimer = timeProvider.CreateTimer(static state => ((MemoryCounterStore)state!).Sweep(), this, SweepInterval, SweepInterval);
    }

    public string Name => "memory";

    /// <summary>Counters held, including expired ones not swept yet.</summary>
    public int Count => _counters.Count;

    public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        if (results.Length < updates.Length)
            throw new ArgumentException("There must be a result slot for every update.", nameof(results));
        cancellationToken.ThrowIfCancellationRequested();
        var now = _time.GetTimestamp();
        var source = updates.Span;
        var target = results.Span;
        for (var i = 0; i < source.Length; i++)
            target[i] = Apply(source[i], now);
        return ValueTask.CompletedTask;
    }

    /// <summary>Drops expired counters now (the timer does this every <see cref="SweepInterval"/>).</summary>
    public int Sweep() => _counters.SweepExpired(_time.GetTimestamp());

    public void Dispose() => _sweepTimer.Dispose();

    private CounterResult Apply(in CounterUpdate update, long now)
    {
        ArgumentNullException.ThrowIfNull(update.Key);
        ulong previous = 0;
        if (update.PreviousWindowKey is { } previousKey && _counters.TryGetValue(previousKey, out var previousCounter) && previousCounter.ExpiresAt > now)
            previous = Volatile.Read(ref previousCounter.Value);
        var weighted = update.OnlyIfWithinLimit ? CounterMath.Weighted(previous, CounterMath.Weight(update)) : 0;
        var hits = update.Hits;

        while (true)
        {
            _counters.TryGetValue(update.Key, out var existing);
            if (existing is null || existing.ExpiresAt <= now)
            {
                // Absent (or expired, which is the same): the count is 0. Reads and refusals create nothing.
                var applied = !update.OnlyIfWithinLimit || CounterMath.WithinLimit(0, hits, weighted, update.Limit);
                if (hits == 0 || !applied)
                    return new CounterResult(hits, previous, applied);
                // The hits are in the counter before it is published, so creation and the first add are one step.
                var fresh = new Counter(now + CounterMath.ToTimestamp(_time, update.Ttl)) { Value = hits };
                if (existing is null ? _counters.TryAdd(update.Key, fresh, now) : _counters.TryReplace(update.Key, fresh, existing))
                    return new CounterResult(hits, previous, true);
                continue; // another caller created or replaced it first: count on theirs
            }

            if (!update.OnlyIfWithinLimit)
            {
                if (hits == 0)
                    return new CounterResult(Volatile.Read(ref existing.Value), previous, true);
                var after = Interlocked.Add(ref existing.Value, hits);
                if (after < hits)
                {
                    // Wrapped past 2^64: stick at the maximum rather than restart from a small count.
                    Interlocked.Exchange(ref existing.Value, ulong.MaxValue);
                    after = ulong.MaxValue;
                }
                return new CounterResult(after, previous, true);
            }

            // The condition and the add are one compare-and-swap: no caller can slip in between.
            var current = Volatile.Read(ref existing.Value);
            while (true)
            {
                var wouldBe = CounterMath.Add(current, hits);
                if (!CounterMath.WithinLimit(current, hits, weighted, update.Limit))
                    return new CounterResult(wouldBe, previous, false);
                if (hits == 0)
                    return new CounterResult(current, previous, true);
                var seen = Interlocked.CompareExchange(ref existing.Value, wouldBe, current);
                if (seen == current)
                    return new CounterResult(wouldBe, previous, true);
                current = seen;
            }
        }
    }


    private sealed class Counter(long expiresAt) : IExpiring
    {
        public ulong Value;

        public long ExpiresAt { get; } = expiresAt;
    }
}
