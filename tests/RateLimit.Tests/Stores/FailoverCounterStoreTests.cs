using Legate.RateLimit.Stores;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Legate.Testing;
using Prometheus;

namespace Legate.RateLimit.Tests.Stores;

public sealed class FailoverCounterStoreTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly MemoryCounterStore _fallback;
    private readonly SwitchableStore _primary = new();
    private readonly CollectorRegistry _registry = Metrics.NewCustomRegistry();
    private readonly FailoverCounterStore _store;

    public FailoverCounterStoreTests()
    {
        _fallback = new MemoryCounterStore(_time);
        _store = new FailoverCounterStore(_primary, _fallback, _time, TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(1),
            NullLogger.Instance, Metrics.WithCustomRegistry(_registry));
    }

    private async Task<CounterResult> IncrementAsync(string key = "k")
    {
        var results = new CounterResult[1];
        await _store.UpdateAsync(new[] { new CounterUpdate(key, 1, TimeSpan.FromMinutes(1)) }, results, TestContext.Current.CancellationToken);
        return results[0];
    }

    [Fact]
    public async Task PrimaryFailure_IsAnsweredFromLocalCounters()
    {
        _primary.Failing = true;

        var first = await IncrementAsync();
        var second = await IncrementAsync();

        Assert.True(_store.IsDegraded);
        Assert.Equal(1ul, first.Count);
        Assert.Equal(2ul, second.Count);
        Assert.Contains("legate_ratelimit_degraded 1", _registry.Scrape(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WhileDegraded_ThePrimaryIsTriedOncePerRetryInterval()
    {
        _primary.Failing = true;
        await IncrementAsync();
        var callsAfterFailure = _primary.Calls;

        await IncrementAsync();
        await IncrementAsync();
        var callsWithinInterval = _primary.Calls;
        _time.Advance(TimeSpan.FromSeconds(1));
        await IncrementAsync();

        Assert.Equal(callsAfterFailure, callsWithinInterval);
        Assert.Equal(callsAfterFailure + 1, _primary.Calls);
    }

    [Fact]
    public async Task WhileDegraded_OneCallTriesAHangingPrimary_AndTheOthersAreAnsweredLocallyMeanwhile()
    {
        _primary.Failing = true;
        await IncrementAsync();
        _primary.Failing = false;
        _primary.Hang = true;
        _time.Advance(TimeSpan.FromSeconds(1));

        var probe = IncrementAsync();
        var others = Enumerable.Range(0, 5).Select(_ => IncrementAsync()).ToArray();

        Assert.Equal(2, _primary.Calls);
        Assert.False(probe.IsCompleted);
        Assert.All(others, call => Assert.True(call.IsCompletedSuccessfully));
        Assert.Equal([2ul, 3ul, 4ul, 5ul, 6ul], others.Select(call => call.Result.Count));
        for (var i = 0; i < 100 && !probe.IsCompleted; i++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(5));
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }
        Assert.Equal(7ul, (await probe.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)).Count);
        Assert.True(_store.IsDegraded);
    }

    [Fact]
    public async Task PrimaryBack_EndsDegradedMode()
    {
        _primary.Failing = true;
        await IncrementAsync();

        _primary.Failing = false;
        _time.Advance(TimeSpan.FromSeconds(1));
        var result = await IncrementAsync();

        Assert.False(_store.IsDegraded);
        Assert.Equal(1ul, result.Count);
        Assert.Contains("legate_ratelimit_degraded 0", _registry.Scrape(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlowPrimary_CountsAsFailed()
    {
        _primary.Hang = true;

        var pending = IncrementAsync();
        for (var i = 0; i < 100 && !pending.IsCompleted; i++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(5));
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }
        var result = await pending.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        Assert.True(_store.IsDegraded);
        Assert.Equal(1ul, result.Count);
    }


    public void Dispose() => _fallback.Dispose();

    private sealed class SwitchableStore : ICounterStore
    {
        private readonly Dictionary<string, ulong> _counts = [];

        public bool Failing { get; set; }

        public bool Hang { get; set; }

        public int Calls { get; private set; }

        public string Name => "switchable";

        public async ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            Calls++;
            if (Hang)
                await Task.Delay(Timeout.Infinite, cancellationToken);
            if (Failing)
                throw new CounterStoreException("switched off");
            for (var i = 0; i < updates.Length; i++)
            {
                var update = updates.Span[i];
                _counts[update.Key] = _counts.GetValueOrDefault(update.Key) + update.Hits;
                results.Span[i] = new CounterResult(_counts[update.Key], 0, true);
            }
        }
    }
}
