using System.Buffers;
using System.Collections.Concurrent;
using Legate.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Write-behind counting on a shared store (Redis), opt-in, as Limitador's "cached Redis": a counter this instance
/// has seen in its window is decided here, from the store's count at the last sync plus this instance's hits since,
/// without a round trip. Every interval the hits gathered go to the store in one call, and its answer
/// brings in the other replicas' hits. A counter's first call in a window (and any call naming a counter not known
/// here) goes to the store exactly as without this layer, and what the store answers seeds the local view.
/// <para>
/// What it trades: one instance alone decides as the store would (while a call for a counter is out to the store, no
/// call for it is decided here). The exception: a call that must go to the store although its counter has hits
/// gathered here — a sliding-window call whose previous window is not known here — is decided by the store without
/// them, until the next sync. With several instances, a counter can admit more
/// than its limit until each replica has seen the others' hits: up to (replicas − 1) × (hits per replica per
/// interval plus a round trip). While the store fails, known counters go on being decided here and their hits are
/// kept and sent once it answers again; a sync that timed out may have been applied and is sent again, so it may
/// count twice (the strict direction). Counters not known here fail as they would without this layer.
/// </para>
/// </summary>
public sealed partial class WriteBehindCounterStore : LocalFirstCounterStore, IAsyncDisposable
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(10);

    // Counters sent per call to the inner store: one batch script, a bounded reply.
    private const int SyncChunk = 1024;

    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(10);

    private readonly ICounterStore _syncStore;
    private readonly long _intervalTimestamps;
    private readonly ExpiringMap<Entry> _entries;
    private readonly ConcurrentQueue<Entry> _due = new();
    private readonly ILogger _logger;
    private readonly Counter.Child _syncsOk;
    private readonly Counter.Child _syncsFailed;
    private readonly Gauge _counters;
    private readonly System.Threading.ITimer _timer;
    // Syncs run every few ms: a store at the edge of its deadline fails some and not others, and a bug may fail them
    // all. Their lines are counted, at most one per interval, and "recovered" follows only a "failing" line.
    private readonly EventThrottle _syncFailures;
    private readonly EventThrottle _syncBugs;
    private int _syncing;
    private int _failing;
    private int _failingLogged;
    private long _sweepAt;

    /// <param name="inner">The shared store (Redis), exact, for the calls not decided here.</param>
    /// <param name="interval">How often the hits gathered here go to the shared store.</param>
    /// <param name="maxCounters">Most counters known here; beyond it the ones closest to expiry go first (their hits not sent yet still go).</param>
    /// <param name="syncStore">
    /// The same shared store with a deadline for syncs: no caller waits for them, so they can wait longer than a call,
    /// and a sync that times out is sent again (counted twice if it was applied). <paramref name="inner"/> when null.
    /// </param>
    public WriteBehindCounterStore(ICounterStore inner, TimeProvider time, TimeSpan interval, int maxCounters, ILogger logger, IMetricFactory metrics, ICounterStore? syncStore = null)
        : base(inner, time)
    {
        _syncStore = syncStore ?? inner;
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _intervalTimestamps = CounterMath.ToTimestamp(Time, interval);
        _entries = new ExpiringMap<Entry>(maxCounters);
        _logger = logger;
        var syncs = metrics.CreateCounter("legate_ratelimit_write_behind_syncs_total", "Syncs of the hits gathered here with the shared counter store, by result.", ["result"]);
        _syncsOk = syncs.WithLabels("ok");
        _syncsFailed = syncs.WithLabels("failed");
        _counters = metrics.CreateGauge("legate_ratelimit_write_behind_counters", "Counters decided here between syncs (expired ones included until swept).");
        _sweepAt = time.GetTimestamp() + CounterMath.ToTimestamp(Time, SweepInterval);
        _syncFailures = new EventThrottle(time);
        _syncBugs = new EventThrottle(time);
        _timer = time.CreateTimer(static state => ((WriteBehindCounterStore)state!).OnTimer(), this, interval, interval);
    }

    /// <summary>Sends the hits gathered here to the shared store now (the timer does this every interval).</summary>
    public async Task SyncAsync(CancellationToken cancellationToken = default)
    {
        var updates = ArrayPool<CounterUpdate>.Shared.Rent(SyncChunk);
        var results = ArrayPool<CounterResult>.Shared.Rent(SyncChunk);
        var entries = ArrayPool<Entry>.Shared.Rent(SyncChunk);
        try
        {
            // Only what is due now: entries queued again meanwhile wait for the next sync.
            for (var left = _due.Count; left > 0;)
            {
                var now = Time.GetTimestamp();
                var count = 0;
                for (; count < SyncChunk && left > 0 && _due.TryDequeue(out var entry); left--)
                {
                    if (!entry.TakePending(now, out var hits))
                        continue; // its window is over: what was not sent no longer limits anyone
                    entries[count] = entry;
                    updates[count++] = new CounterUpdate(entry.Key, hits, Time.GetElapsedTime(now, entry.ExpiresAt));
                }
                if (count == 0)
                    break;
                await SyncChunkAsync(entries, updates, results, count, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<CounterUpdate>.Shared.Return(updates, clearArray: true);
            ArrayPool<CounterResult>.Shared.Return(results);
            ArrayPool<Entry>.Shared.Return(entries, clearArray: true);
        }
    }

    /// <summary>Stops the timer and sends what is left, within the inner store's bound.</summary>
    public async ValueTask DisposeAsync()
    {
        await _timer.DisposeAsync().ConfigureAwait(false);
        // The timer's last sync may still be running: wait for it (bounded by the inner store), then send the rest.
        for (var i = 0; i < 200 && Interlocked.CompareExchange(ref _syncing, 1, 0) != 0; i++)
            await Task.Delay(10).ConfigureAwait(false);
        try
        {
            await SyncAsync().ConfigureAwait(false);
        }
        catch (CounterStoreException e)
        {
            LogFinalSyncFailed(_logger, e.Message);
        }
    }

    /// <summary>
    /// Decides an update here when its counter is known and no call for it is out to the store, and its previous
    /// window (if any) is known. Otherwise the update goes to the store, and until it (and every other call for that
    /// counter sent meanwhile) has answered, no call for the counter is decided here: a call decided by the store alone
    /// does not see the hits gathered here, so while one is out, deciding here too could admit more than the limit.
    /// </summary>
    protected override bool TryAnswer(in CounterUpdate update, long now, out CounterResult result)
    {
        result = default;
        var entry = GetOrAddLive(update.Key, update.Ttl, now);
        ulong previous = 0;
        if (update.PreviousWindowKey is { } previousKey)
        {
            if (!TryGetLive(previousKey, now, out var previousEntry) || !previousEntry.TryRead(out previous))
            {
                entry.Forwarding();
                return false;
            }
        }
        var weighted = update.OnlyIfWithinLimit ? CounterMath.Weighted(previous, CounterMath.Weight(update)) : 0;
        if (!entry.TryApply(update, previous, weighted, now, _intervalTimestamps, out result, out var due))
            return false;
        if (due)
            _due.Enqueue(entry);
        return true;
    }

    private bool TryGetLive(string key, long now, out Entry entry) =>
        _entries.TryGetValue(key, out entry!) && entry.ExpiresAt > now;

    /// <summary>The live entry for the key; a new one (not knowing the count yet) when there is none or it expired.</summary>
    private Entry GetOrAddLive(string key, TimeSpan ttl, long now)
    {
        while (true)
        {
            if (_entries.TryGetValue(key, out var existing) && existing.ExpiresAt > now)
                return existing;
            var fresh = new Entry(key, now + CounterMath.ToTimestamp(Time, ttl));
            if (existing is null ? _entries.TryAdd(key, fresh, now) : _entries.TryReplace(key, fresh, existing))
                return fresh;
        }
    }

    /// <summary>What the store answered becomes the local view: each counter's count, and each previous window's.</summary>
    protected override void Learn(ReadOnlySpan<CounterUpdate> updates, ReadOnlySpan<CounterResult> results)
    {
        var now = Time.GetTimestamp();
        for (var i = 0; i < updates.Length; i++)
        {
            ref readonly var update = ref updates[i];
            var result = results[i];
            // A refused update reports count + hits; the store holds the count.
            var stored = result.Applied ? result.Count : result.Count - Math.Min(result.Count, update.Hits);
            GetOrAddLive(update.Key, update.Ttl, now).Answered(stored, now);
            // The previous window is only read: it is kept as long as the window that reads it.
            if (update.PreviousWindowKey is { } previous)
                GetOrAddLive(previous, update.Ttl, now).Heard(result.PreviousWindowCount, now);
        }
        _counters.Set(_entries.Count);
    }

    protected override void Unanswered(ReadOnlySpan<CounterUpdate> updates)
    {
        var now = Time.GetTimestamp();
        foreach (ref readonly var update in updates)
        {
            if (TryGetLive(update.Key, now, out var entry))
                entry.Unanswered();
        }
    }

    private void OnTimer()
    {
        if (Interlocked.CompareExchange(ref _syncing, 1, 0) != 0)
            return; // the last sync is still out
        _ = RunSyncAsync();
    }

    private async Task RunSyncAsync()
    {
        try
        {
            var now = Time.GetTimestamp();
            if (now >= Interlocked.Read(ref _sweepAt))
            {
                Interlocked.Exchange(ref _sweepAt, now + CounterMath.ToTimestamp(Time, SweepInterval));
                _entries.SweepExpired(now);
                _counters.Set(_entries.Count);
            }
            await SyncAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // SyncChunkAsync handles the store's failures; anything else is a bug, which must not stop the timer's syncs.
            if (_syncBugs.TryReport(out var failed))
                LogSyncBug(_logger, e, failed, _syncBugs.Interval.TotalSeconds);
        }
        finally
        {
            Volatile.Write(ref _syncing, 0);
        }
    }

    // A sync the store refused: counted, and logged at most once per interval (every sync fails alike while
    // Redis is away).
    private void SyncFailed(Exception e)
    {
        _syncsFailed.Inc();
        Volatile.Write(ref _failing, 1);
        if (_syncFailures.TryReport(out var failed))
        {
            Volatile.Write(ref _failingLogged, 1);
            LogSyncFailing(_logger, failed, _syncFailures.Interval.TotalSeconds, e.Message);
        }
    }

    private async Task SyncChunkAsync(Entry[] entries, CounterUpdate[] updates, CounterResult[] results, int count, CancellationToken cancellationToken)
    {
        try
        {
            await _syncStore.UpdateAsync(updates.AsMemory(0, count), results.AsMemory(0, count), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CounterStoreException or OperationCanceledException)
        {
            // Kept, and sent again with the next sync: nothing gathered here is lost while the store is away.
            for (var i = 0; i < count; i++)
            {
                if (entries[i].Unsent(updates[i].Hits))
                    _due.Enqueue(entries[i]);
            }
            if (e is OperationCanceledException)
                throw;
            SyncFailed(e);
            return;
        }
        var now = Time.GetTimestamp();
        for (var i = 0; i < count; i++)
            entries[i].Sent(updates[i].Hits, results[i].Count, now);
        _syncsOk.Inc();
        if (Interlocked.Exchange(ref _failing, 0) == 1 && Interlocked.Exchange(ref _failingLogged, 0) == 1)
            LogSyncRecovered(_logger);
    }


    [LoggerMessage(EventId = 121, EventName = "WriteBehindSyncFailing", Level = LogLevel.Warning,
        Message = "Sending the hits gathered here to the shared counter store failed {FailedSyncs} time(s) since the last such line (at most one every {IntervalSeconds} s), the latest: {Reason}; counters known here are still decided here and their hits kept until it answers.")]
    private static partial void LogSyncFailing(ILogger logger, long failedSyncs, double intervalSeconds, string reason);

    [LoggerMessage(EventId = 122, EventName = "WriteBehindSyncRecovered", Level = LogLevel.Information,
        Message = "The shared counter store answers again; the hits kept meanwhile were sent.")]
    private static partial void LogSyncRecovered(ILogger logger);

    [LoggerMessage(EventId = 123, EventName = "WriteBehindSyncBug", Level = LogLevel.Error,
        Message = "{FailedSyncs} write-behind sync(s) failed unexpectedly since the last such line (at most one every {IntervalSeconds} s); the latest error is attached.")]
    private static partial void LogSyncBug(ILogger logger, Exception exception, long failedSyncs, double intervalSeconds);

    [LoggerMessage(EventId = 124, EventName = "WriteBehindFinalSyncFailed", Level = LogLevel.Warning,
        Message = "At shutdown, the hits gathered here could not be sent to the shared counter store ({Reason}).")]
    private static partial void LogFinalSyncFailed(ILogger logger, string reason);

    /// <summary>
    /// One counter as this instance sees it: the store's count when last heard (<c>stored</c>), hits sent and not yet
    /// answered (<c>sending</c>) and hits not sent yet (<c>pending</c>). Their sum is what this instance decides on,
    /// once the store has answered a call for the counter (<c>known</c>) and while no call for it is out (<c>forwarded</c>).
    /// </summary>
    private sealed class Entry(string key, long expiresAt) : IExpiring
    {
        private readonly Lock _lock = new();
        private ulong _stored;
        private ulong _sending;
        private ulong _pending;
        private long _heardAt;
        private bool _known;
        private int _forwarded;
        private int _due;

        public string Key { get; } = key;

        public long ExpiresAt { get; } = expiresAt;

        private ulong Sum() => CounterMath.Add(CounterMath.Add(_stored, _sending), _pending);

        /// <summary>The count, for a previous window read here; false while it is not known or a call for it is out.</summary>
        public bool TryRead(out ulong count)
        {
            lock (_lock)
            {
                count = Sum();
                return _known && _forwarded == 0;
            }
        }

        /// <summary>A call for the counter goes to the store (see <see cref="Answered"/> and <see cref="Unanswered"/>).</summary>
        public void Forwarding()
        {
            lock (_lock)
                _forwarded++;
        }

        /// <summary>
        /// Decides the update on this instance's view; false (and the call counted as going to the store) when the
        /// count is not known or a call for the counter is out. <paramref name="due"/> (true once until the next sync
        /// takes the entry) asks for it to be queued for that sync: it holds hits not sent, or what the store said is
        /// older than an interval (so a counter only read here still hears the other replicas' hits).
        /// </summary>
        public bool TryApply(in CounterUpdate update, ulong previous, ulong weighted, long now, long interval, out CounterResult result, out bool due)
        {
            var hits = update.Hits;
            bool needed;
            lock (_lock)
            {
                if (!_known || _forwarded > 0)
                {
                    _forwarded++;
                    result = default;
                    due = false;
                    return false;
                }
                var count = Sum();
                if (update.OnlyIfWithinLimit && !CounterMath.WithinLimit(count, hits, weighted, update.Limit))
                {
                    result = new CounterResult(CounterMath.Add(count, hits), previous, false);
                }
                else
                {
                    _pending = CounterMath.Add(_pending, hits);
                    result = new CounterResult(CounterMath.Add(count, hits), previous, true);
                }
                needed = _pending > 0 || now - _heardAt >= interval;
            }
            due = needed && Volatile.Read(ref _due) == 0 && Interlocked.Exchange(ref _due, 1) == 0;
            return true;
        }

        /// <summary>Takes the hits to send; false when the counter's window is over (they are dropped).</summary>
        public bool TakePending(long now, out ulong hits)
        {
            Volatile.Write(ref _due, 0);
            lock (_lock)
            {
                hits = _pending;
                _pending = 0;
                if (ExpiresAt <= now)
                    return false;
                _sending = CounterMath.Add(_sending, hits);
                return true;
            }
        }

        /// <summary>The store took the hits and answered its count, which includes them and every replica's hits sent so far.</summary>
        public void Sent(ulong hits, ulong count, long now)
        {
            lock (_lock)
            {
                _sending -= Math.Min(_sending, hits);
                _stored = Math.Max(_stored, count);
                _heardAt = now;
            }
        }

        /// <summary>The sync failed: the hits are pending again. True when the entry is to be queued again.</summary>
        public bool Unsent(ulong hits)
        {
            lock (_lock)
            {
                _sending -= Math.Min(_sending, hits);
                _pending = CounterMath.Add(_pending, hits);
            }
            return Interlocked.Exchange(ref _due, 1) == 0;
        }

        /// <summary>The store answered a call sent for this counter: its count (counts only grow, so the larger is newer).</summary>
        public void Answered(ulong stored, long now)
        {
            lock (_lock)
            {
                Heard(stored, now);
                if (_forwarded > 0)
                    _forwarded--;
            }
        }

        /// <summary>A call sent for this counter failed: nothing learnt.</summary>
        public void Unanswered()
        {
            lock (_lock)
            {
                if (_forwarded > 0)
                    _forwarded--;
            }
        }

        /// <summary>The store's count, read by a call for another counter (a previous window).</summary>
        public void Heard(ulong stored, long now)
        {
            lock (_lock)
            {
                _stored = Math.Max(_stored, stored);
                _known = true;
                _heardAt = now;
            }
        }
    }
}
