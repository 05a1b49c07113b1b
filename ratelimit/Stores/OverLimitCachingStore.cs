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
public sealed class OverLimitCachingStore : LocalFirstCounterStore
{
    public const int DefaultMaxEntries = 100_000;

    private readonly ExpiringMap<Entry> _entries;
    private long _hits;
    private long _misses;

    public OverLimitCachingStore(ICounterStore inner, TimeProvider timeProvider, int maxEntries = DefaultMaxEntries)
        : base(inner, timeProvider)
    {
        _entries = new ExpiringMap<Entry>(maxEntries);
    }

    /// <summary>Over-limit counters remembered, including expired ones not dropped yet.</summary>
    public int Count => _entries.Count;

    /// <summary>Updates answered from memory.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Updates sent to the inner store.</summary>
    public long Misses => Interlocked.Read(ref _misses);

    protected override void Counted(int answered, int forwarded)
    {
        if (answered > 0)
            Interlocked.Add(ref _hits, answered);
        if (forwarded > 0)
            Interlocked.Add(ref _misses, forwarded);
    }

    protected override bool TryAnswer(in CounterUpdate update, long now, out CounterResult result)
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
        result = new CounterResult(CounterMath.Add(entry.Count, update.Hits), previous, Applied: false, FromLocalCache: true);
        return true;
    }

    protected override void Learn(ReadOnlySpan<CounterUpdate> updates, ReadOnlySpan<CounterResult> results)
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
                now = Time.GetTimestamp();
            Store(update.Key, new Entry(count, result.PreviousWindowCount, now + CounterMath.ToTimestamp(Time, update.Ttl)), now);
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


    private readonly record struct Entry(ulong Count, ulong Previous, long ExpiresAt) : IExpiring;
}
