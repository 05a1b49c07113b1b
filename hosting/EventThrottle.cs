namespace Legate.Hosting;

/// <summary>
/// Counts an event that can happen on every call (a store outage fails them all) and lets one report through per
/// interval, carrying how many happened since the last: a log line every few seconds instead of one per call, when
/// the service can least afford them. Thread-safe and lock-free; a report races with counts only by a call or two.
/// </summary>
public sealed class EventThrottle
{
    private readonly TimeProvider _time;
    private readonly long _intervalTicks;
    private long _count;
    private long _nextReport = long.MinValue;

    /// <summary>Legate's interval for log lines about failures that can repeat on every call.</summary>
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    /// <summary>A throttle at <see cref="LogInterval"/>.</summary>
    public EventThrottle(TimeProvider time)
        : this(time, LogInterval)
    {
    }

    public EventThrottle(TimeProvider time, TimeSpan interval)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _time = time;
        Interval = interval;
        _intervalTicks = (long)(interval.TotalSeconds * time.TimestampFrequency);
    }

    /// <summary>The least time between two reports.</summary>
    public TimeSpan Interval { get; }

    /// <summary>Counts one event; true when a report is due, with the events since the last report, this one included.</summary>
    public bool TryReport(out long count)
    {
        Interlocked.Increment(ref _count);
        var now = _time.GetTimestamp();
        var due = Volatile.Read(ref _nextReport);
        if (now >= due && Interlocked.CompareExchange(ref _nextReport, now + _intervalTicks, due) == due)
        {
            count = Interlocked.Exchange(ref _count, 0);
            return true;
        }
        count = 0;
        return false;
    }
}
