using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace Legate.RateLimit.Stores;

/// <summary>An entry that stops being valid at a <see cref="TimeProvider.GetTimestamp"/> value.</summary>
internal interface IExpiring
{
    long ExpiresAt { get; }
}

/// <summary>
/// A concurrent string-keyed map of expiring entries that never holds much more than its capacity.
/// When an insert finds it full, it drops every expired entry and, if that did not free a tenth of the capacity,
/// the live entries closest to expiry until it did. Making room in steps of 10 % keeps the cost amortised: under a
/// flood of unique keys one O(n) pass pays for n/10 inserts, and the bound holds whatever the keys are.
/// Closest-to-expiry, not least-recently-used: it needs no bookkeeping on the hot path, and an entry about to expire
/// is the one whose loss matters least (a counter loses at most the rest of its window). While one caller makes room,
/// the others insert without waiting for it (blocking request threads under a flood would starve the thread pool)
/// until the map reaches 110 % of its capacity; only then do they wait. So the map holds at most 110 % of its
/// capacity, plus the inserts racing that check.
/// </summary>
internal sealed class ExpiringMap<TValue>
    where TValue : IExpiring
{
    private const int SampleSize = 256;

    private readonly ConcurrentDictionary<string, TValue> _entries = new(StringComparer.Ordinal);
    private readonly Lock _sweepLock = new();
    private readonly int _capacity;
    private readonly int _target;
    private readonly int _ceiling;
    private int _count;

    public ExpiringMap(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        _target = capacity - Math.Max(1, capacity / 10);
        _ceiling = capacity + Math.Max(1, capacity / 10);
    }

    /// <summary>Entries held, expired or not (kept beside the dictionary: its own Count takes every lock).</summary>
    public int Count => Volatile.Read(ref _count);

    public bool TryGetValue(string key, [MaybeNullWhen(false)] out TValue value) => _entries.TryGetValue(key, out value);

    /// <summary>Adds an entry unless the key is present; makes room first when the map is full.</summary>
    public bool TryAdd(string key, TValue value, long now)
    {
        if (Volatile.Read(ref _count) >= _capacity)
            MakeRoom(now);
        if (!_entries.TryAdd(key, value))
            return false;
        Interlocked.Increment(ref _count);
        return true;
    }

    /// <summary>Replaces the entry only if it is still <paramref name="comparison"/> (an expired entry swapped for a fresh one).</summary>
    public bool TryReplace(string key, TValue value, TValue comparison) => _entries.TryUpdate(key, value, comparison);

    /// <summary>Removes the entry only if it is still <paramref name="value"/>, so a fresh replacement is never lost.</summary>
    public bool TryRemove(string key, TValue value)
    {
        if (!_entries.TryRemove(KeyValuePair.Create(key, value)))
            return false;
        Interlocked.Decrement(ref _count);
        return true;
    }

    /// <summary>Removes expired entries; does nothing when another sweep is already running.</summary>
    public int SweepExpired(long now)
    {
        if (!_sweepLock.TryEnter())
            return 0;
        try
        {
            return RemoveExpired(now);
        }
        finally
        {
            _sweepLock.Exit();
        }
    }

    private int RemoveExpired(long now)
    {
        var removed = 0;
        foreach (var (key, value) in _entries)
        {
            if (value.ExpiresAt <= now && TryRemove(key, value))
                removed++;
        }
        return removed;
    }

    private void MakeRoom(long now)
    {
        if (!_sweepLock.TryEnter())
        {
            if (Volatile.Read(ref _count) < _ceiling)
                return; // someone is making room already
            _sweepLock.Enter();
        }
        try
        {
            if (Volatile.Read(ref _count) < _capacity)
                return;
            RemoveExpired(now);
            var excess = Volatile.Read(ref _count) - _target;
            if (excess > 0)
                EvictClosestToExpiry(excess);
        }
        finally
        {
            _sweepLock.Exit();
        }
    }

    // Sorting every expiry would cost O(n log n) and an n-sized buffer; a sample (enumeration follows hash order, so
    // the first entries are a fair one) estimates the expiry below which the excess lies. Each pass removes at most
    // the excess, so ties (every counter of one window expires at the same instant) never empty the map; a pass that
    // falls short widens the threshold.
    private void EvictClosestToExpiry(int toRemove)
    {
        Span<long> sample = stackalloc long[SampleSize];
        var sampled = 0;
        foreach (var entry in _entries)
        {
            sample[sampled++] = entry.Value.ExpiresAt;
            if (sampled == SampleSize)
                break;
        }
        if (sampled == 0)
            return;
        sample = sample[..sampled];
        sample.Sort();

        var index = (int)Math.Min(sampled - 1, (long)sampled * toRemove / Math.Max(1, Volatile.Read(ref _count)));
        var removed = 0;
        while (removed < toRemove)
        {
            var threshold = index < sampled ? sample[index] : long.MaxValue;
            foreach (var (key, value) in _entries)
            {
                if (removed >= toRemove)
                    return;
                if (value.ExpiresAt <= threshold && TryRemove(key, value))
                    removed++;
            }
            if (threshold == long.MaxValue)
                return;
            index = (index * 2) + 1;
        }
    }
}
