using Microsoft.Extensions.Logging;
using Prometheus;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Degraded mode: while the primary store (Redis) fails, keep limiting with this instance's own counters instead
/// of answering UNAVAILABLE. Each replica then limits on its own, so a tenant may get up to replicas × limit while
/// Redis is away; that is the trade this option makes for not failing open or closed. Every
/// <see cref="RetryInterval"/> one call tries the primary again, and the first success returns to it.
/// </summary>
public sealed partial class FailoverCounterStore : ICounterStore
{
    private readonly ICounterStore _primary;
    private readonly ICounterStore _fallback;
    private readonly TimeProvider _time;
    private readonly TimeSpan _primaryTimeout;
    private readonly ILogger _logger;
    private readonly Gauge _degradedGauge;
    private long _retryAtTimestamp;
    private int _degraded;

    /// <param name="primary">The shared store (Redis).</param>
    /// <param name="fallback">This instance's own counters.</param>
    /// <param name="primaryTimeout">How long a call waits for the primary before answering from the fallback.</param>
    /// <param name="retryInterval">While degraded, how often a call tries the primary again.</param>
    public FailoverCounterStore(ICounterStore primary, ICounterStore fallback, TimeProvider time, TimeSpan primaryTimeout, TimeSpan retryInterval, ILogger logger, IMetricFactory metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _primary = primary;
        _fallback = fallback;
        _time = time;
        _primaryTimeout = primaryTimeout;
        RetryInterval = retryInterval;
        _logger = logger;
        _degradedGauge = metrics.CreateGauge("legate_ratelimit_degraded", "1 while the shared counter store fails and this instance limits with its own counters.");
    }

    public string Name => _primary.Name;

    /// <summary>The primary's wait, after which the fallback (in memory) answers at once.</summary>
    public TimeSpan? Deadline => _primaryTimeout;

    /// <summary>While degraded, how often a call tries the primary again.</summary>
    public TimeSpan RetryInterval { get; }

    /// <summary>True while calls are answered from this instance's own counters.</summary>
    public bool IsDegraded => Volatile.Read(ref _degraded) == 1;

    public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        if (IsDegraded && !ClaimRetry())
            return _fallback.UpdateAsync(updates, results, cancellationToken);

        ValueTask primary;
        try
        {
            primary = _primary.UpdateAsync(updates, results, cancellationToken);
        }
        catch (CounterStoreException e)
        {
            Degrade(e.Message);
            return _fallback.UpdateAsync(updates, results, cancellationToken);
        }
        if (primary.IsCompletedSuccessfully)
        {
            primary.GetAwaiter().GetResult();
            Recover();
            return ValueTask.CompletedTask;
        }
        return AwaitPrimary(primary, updates, results, cancellationToken);
    }

    private async ValueTask AwaitPrimary(ValueTask primary, ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        try
        {
            // A primary that bounds its own calls within our wait needs no timer of ours (and fails with CounterStoreException).
            if (_primary.Deadline is { } bound && bound <= _primaryTimeout)
                await primary;
            else
                await primary.AsTask().WaitAsync(_primaryTimeout, _time, cancellationToken);
            Recover();
            return;
        }
        catch (CounterStoreException e)
        {
            Degrade(e.Message);
        }
        catch (TimeoutException)
        {
            Degrade($"no answer within {_primaryTimeout.TotalMilliseconds} ms");
        }
        await _fallback.UpdateAsync(updates, results, cancellationToken);
    }

    // While degraded, one call per interval tries the primary: the first to see the interval over moves the next try
    // on before it goes, so the calls behind it stay on the fallback instead of all waiting on a primary that may hang.
    private bool ClaimRetry()
    {
        var retryAt = Interlocked.Read(ref _retryAtTimestamp);
        var now = _time.GetTimestamp();
        return now >= retryAt && Interlocked.CompareExchange(ref _retryAtTimestamp, NextRetry(now), retryAt) == retryAt;
    }

    private long NextRetry(long now) => now + CounterMath.ToTimestamp(_time, RetryInterval);

    private void Degrade(string reason)
    {
        Interlocked.Exchange(ref _retryAtTimestamp, NextRetry(_time.GetTimestamp()));
        if (Interlocked.Exchange(ref _degraded, 1) == 0)
        {
            _degradedGauge.Set(1);
            LogDegraded(_logger, _primary.Name, reason);
        }
    }

    private void Recover()
    {
        if (Volatile.Read(ref _degraded) == 1 && Interlocked.Exchange(ref _degraded, 0) == 1)
        {
            _degradedGauge.Set(0);
            LogRecovered(_logger, _primary.Name);
        }
    }

    [LoggerMessage(EventId = 101, EventName = "RateLimitDegraded", Level = LogLevel.Warning,
        Message = "The {Store} counter store failed ({Reason}); limiting with this instance's own counters until it answers again")]
    private static partial void LogDegraded(ILogger logger, string store, string reason);

    [LoggerMessage(EventId = 102, EventName = "RateLimitRecovered", Level = LogLevel.Information,
        Message = "The {Store} counter store answers again; shared counting resumed")]
    private static partial void LogRecovered(ILogger logger, string store);
}
