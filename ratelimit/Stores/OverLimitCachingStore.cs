using System.Buffers;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Remembers counters found over their limit and answers later updates of them from memory, as envoyproxy/ratelimit's
/// local cache does: a client hammering while limited costs no Redis round trip. Safe because a key embeds its window
/// start: the next window is another key, and an entry lives only until its counter's TTL ends.
/// An entry answers only when what it remembers proves the update over the limit it carries now: counters only grow
/// within a window, so <c>remembered + hits + floor(previous × weight) &gt; limit</c> holds for the real counter too.
/// A raised limit or a sliding window's fading previous share therefore goes back to the inner store.
/// Cached answers carry <c>Applied = false</c>: their hits are not counted anywhere.
/// </summary>
public sealed class OverLimitCachingStore : ICounterStore
{
    public const int DefaultMaxEntries = 100_000;

    private readonly ICounterStore _inner;
    private readonly TimeProvider _time;
    private readonly double _timestampsPerTick;
    private readonly ExpiringMap<Entry> _entries;
    private long _hits;
    private long _misses;

    public OverLimitCachingStore(ICounterStore inner, TimeProvider timeProvider, int maxEntries = DefaultMaxEntries)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _inner = inner;
        _time = timeProvider;
        _timestampsPerTick = (double)timeProvider.TimestampFrequency / TimeSpan.TicksPerSecond;
        _entries = new ExpiringMap<Entry>(maxEntries);
    }

    /// <summary>The inner store's name: the cache is not a store of its own.</summary>
    public string Name => _inner.Name;

    public TimeSpan? Deadline => _inner.Deadline;

    /// <summary>The store the uncached updates go to.</summary>
    public ICounterStore Inner => _inner;

    /// <summary>Over-limit counters remembered, including expired ones not dropped yet.</summary>
    public int Count => _entries.Count;

    /// <summary>Updates answered from memory.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Updates sent to the inner store.</summary>
    public long Misses => Interlocked.Read(ref _misses);

    public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        if (results.Length < updates.Length)
            throw new ArgumentException("There must be a result slot for every update.", nameof(results));
        var now = _time.GetTimestamp();
        var source = updates.Span;
        var target = results.Span;
        int[]? slots = null; // positions of the uncached updates, rented only once the cache answers one
        var uncached = 0;
        for (var i = 0; i < source.Length; i++)
        {
            if (TryAnswer(source[i], now, out target[i]))
            {
                if (slots is null)
                {
                    slots = ArrayPool<int>.Shared.Rent(source.Length);
                    for (var j = 0; j < i; j++)
                        slots[j] = j; // every update before the first answered one is uncached
                }
                continue;
            }
            if (slots is not null)
                slots[uncached] = i;
            uncached++;
        }
        var cached = source.Length - uncached;
        if (cached > 0)
            Interlocked.Add(ref _hits, cached);
        if (uncached > 0)
            Interlocked.Add(ref _misses, uncached);

        if (slots is null)
        {
            if (uncached == 0)
                return ValueTask.CompletedTask;
            // Nothing cached (the usual case): the call goes through as it is, without copies.
            var pending = _inner.UpdateAsync(updates, results, cancellationToken);
            if (!pending.IsCompletedSuccessfully)
                return RememberAfterAsync(pending, updates, results);
            pending.GetAwaiter().GetResult();
            Remember(updates.Span, results.Span);
            return ValueTask.CompletedTask;
        }
        if (uncached == 0)
        {
            ArrayPool<int>.Shared.Return(slots);
            return ValueTask.CompletedTask;
        }
        return ForwardUncachedAsync(updates, results, slots, uncached, cancellationToken);
    }

    private async ValueTask RememberAfterAsync(ValueTask pending, ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results)
    {
        await pending;
        Remember(updates.Span, results.Span);
    }

    // Sends only the updates the cache could not answer, in their order, and puts each result back in its slot.
    private async ValueTask ForwardUncachedAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, int[] slots, int uncached, CancellationToken cancellationToken)
    {
        var forwarded = ArrayPool<CounterUpdate>.Shared.Rent(uncached);
        var answers = ArrayPool<CounterResult>.Shared.Rent(uncached);
        try
        {
            var source = updates.Span;
            for (var j = 0; j < uncached; j++)
                forwarded[j] = source[slots[j]];
            await _inner.UpdateAsync(forwarded.AsMemory(0, uncached), answers.AsMemory(0, uncached), cancellationToken);
            Remember(forwarded.AsSpan(0, uncached), answers.AsSpan(0, uncached));
            var target = results.Span;
            for (var j = 0; j < uncached; j++)
                target[slots[j]] = answers[j];
        }
        finally
        {
            ArrayPool<CounterUpdate>.Shared.Return(forwarded, clearArray: true);
            ArrayPool<CounterResult>.Shared.Return(answers);
            ArrayPool<int>.Shared.Return(slots);
        }
    }

    private bool TryAnswer(in CounterUpdate update, long now, out CounterResult result)
    {
        result = default;
        if (update.Limit == 0 || !_entries.TryGetValue(update.Key, out var entry))
            return false;
        if (entry.ExpiresAt <= now)
        {
            _entries.TryRemove(update.Key, entry);
            return false;
        }
        var previous = update.PreviousWindowKey is null ? 0 : entry.Previous;
        var weighted = CounterMath.Weighted(previous, CounterMath.Weight(update));
        if (CounterMath.WithinLimit(entry.Count, update.Hits, weighted, update.Limit))
            return false;
        result = new CounterResult(CounterMath.Add(entry.Count, update.Hits), previous, Applied: false);
        return true;
    }

    private void Remember(ReadOnlySpan<CounterUpdate> updates, ReadOnlySpan<CounterResult> results)
    {
        long now = 0;
        for (var i = 0; i < updates.Length; i++)
        {
            ref readonly var update = ref updates[i];
            var result = results[i];
            if (update.Limit == 0)
                continue;
            // What the counter holds: a refused update reports count + hits, but only count is in the store.
            var count = result.Applied ? result.Count : result.Count - Math.Min(result.Count, update.Hits);
            var weighted = CounterMath.Weighted(result.PreviousWindowCount, CounterMath.Weight(update));
            if (CounterMath.Add(result.Count, weighted) <= update.Limit)
                continue;
            if (now == 0)
                now = _time.GetTimestamp();
            Store(update.Key, new Entry(count, result.PreviousWindowCount, now + ToTimestamp(update.Ttl)), now);
        }
    }

    private void Store(string key, Entry entry, long now)
    {
        while (true)
        {
            if (_entries.TryGetValue(key, out var existing))
            {
                if (_entries.TryReplace(key, entry, existing))
                    return;
            }
            else if (_entries.TryAdd(key, entry, now))
            {
                return;
            }
        }
    }

    private long ToTimestamp(TimeSpan ttl) =>
        ttl <= TimeSpan.Zero ? 1 : Math.Max(1, (long)Math.Min(long.MaxValue / 4, ttl.Ticks * _timestampsPerTick));

    private readonly record struct Entry(ulong Count, ulong Previous, long ExpiresAt) : IExpiring;
}
