namespace Legate.RateLimit.Stores;

/// <summary>The arithmetic every store shares, so memory, Redis and the over-limit cache decide identically.</summary>
internal static class CounterMath
{
    /// <summary>The weight a store applies: <see cref="CounterUpdate.PreviousWeight"/> clamped to 0..1 (NaN is 0).</summary>
    public static double Weight(in CounterUpdate update) =>
        update.PreviousWindowKey is null || !(update.PreviousWeight > 0) ? 0 : Math.Min(update.PreviousWeight, 1);

    /// <summary><c>floor(previous × weight)</c> in double arithmetic, as the Lua script computes it.</summary>
    public static ulong Weighted(ulong previous, double weight) =>
        weight <= 0 || previous == 0 ? 0 : (ulong)Math.Floor(previous * weight);

    /// <summary>Addition that sticks at <see cref="ulong.MaxValue"/> instead of wrapping to a small count.</summary>
    public static ulong Add(ulong a, ulong b)
    {
        var sum = a + b;
        return sum < a ? ulong.MaxValue : sum;
    }

    /// <summary>Whether <c>count + hits + floor(previous × weight) ≤ limit</c>.</summary>
    public static bool WithinLimit(ulong count, ulong hits, ulong weightedPrevious, ulong limit) =>
        Add(Add(count, hits), weightedPrevious) <= limit;

    /// <summary>A span in <paramref name="time"/>'s timestamp units, at least 1 and capped far below overflow when added to a timestamp.</summary>
    public static long ToTimestamp(TimeProvider time, TimeSpan span) =>
        span <= TimeSpan.Zero ? 1 : Math.Max(1, (long)Math.Min(long.MaxValue / 4, span.Ticks * ((double)time.TimestampFrequency / TimeSpan.TicksPerSecond)));

    /// <summary>A TTL as a whole number of milliseconds, at least 1 (a zero or negative PEXPIRE would delete the key).</summary>
    public static long TtlMilliseconds(TimeSpan ttl) =>
        ttl <= TimeSpan.Zero ? 1 : Math.Max(1, (long)Math.Ceiling(ttl.TotalMilliseconds));
}
