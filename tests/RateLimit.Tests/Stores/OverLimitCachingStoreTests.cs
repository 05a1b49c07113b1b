using Legate.RateLimit.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Legate.RateLimit.Tests.Stores;

public sealed class OverLimitCachingStoreTests : IDisposable
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(60);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly MemoryCounterStore _memory;
    private readonly CountingStore _inner;
    private readonly OverLimitCachingStore _cache;

    public OverLimitCachingStoreTests()
    {
        _memory = new MemoryCounterStore(_time);
        _inner = new CountingStore(_memory);
        _cache = new OverLimitCachingStore(_inner, _time);
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _memory.Dispose();

    private static string Key(string name, long window = 1_767_225_600) =>
        CounterKey.Build("legate:rl:", "domain", new KeyValuePair<string, string>[] { new("name", name) }, "m", window);

    private static CounterUpdate Add(string name, ulong hits, ulong limit) => new(Key(name), hits, Ttl, limit);

    private static CounterUpdate AddWithin(string name, ulong hits, ulong limit) => new(Key(name), hits, Ttl, limit, OnlyIfWithinLimit: true);

    private static async Task<CounterResult[]> UpdateAsync(OverLimitCachingStore store, params CounterUpdate[] updates)
    {
        var results = new CounterResult[updates.Length];
        await store.UpdateAsync(updates, results, Ct);
        return results;
    }

    private Task<CounterResult[]> UpdateAsync(params CounterUpdate[] updates) => UpdateAsync(_cache, updates);

    // Drives a counter over its limit of 3 through the cache: 4 calls reach the inner store.
    private async Task DriveOverAsync(string name)
    {
        for (var i = 0; i < 4; i++)
            await UpdateAsync(Add(name, 1, 3));
    }

    [Fact]
    public async Task OverLimitKey_IsAnsweredFromMemory_WithoutTheInnerStore()
    {
        for (ulong i = 1; i <= 4; i++)
            Assert.Equal(new CounterResult(i, 0, true), (await UpdateAsync(Add("a", 1, 3)))[0]);
        Assert.Equal(4, _inner.Calls);

        Assert.Equal(new CounterResult(5, 0, false, FromLocalCache: true), (await UpdateAsync(Add("a", 1, 3)))[0]);
        Assert.Equal(new CounterResult(6, 0, false, FromLocalCache: true), (await UpdateAsync(Add("a", 2, 3)))[0]);

        Assert.Equal(4, _inner.Calls);
        Assert.Equal(2, _cache.Hits);
        Assert.Equal(4, _cache.Misses);
        Assert.Equal(1, _cache.Count);
        Assert.Equal("memory", _cache.Name);
    }

    [Fact]
    public async Task CachedAnswer_CompletesSynchronously()
    {
        await DriveOverAsync("sync");

        var pending = _cache.UpdateAsync(new[] { Add("sync", 1, 3) }, new CounterResult[1], Ct);

        Assert.True(pending.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Entry_ExpiresWithTheWindow()
    {
        await DriveOverAsync("a");
        _time.Advance(Ttl - TimeSpan.FromSeconds(1));
        await UpdateAsync(Add("a", 1, 3));
        Assert.Equal(4, _inner.Calls);

        _time.Advance(TimeSpan.FromSeconds(1));
        await UpdateAsync(Add("a", 1, 3));

        Assert.Equal(5, _inner.Calls);
    }

    [Fact]
    public async Task MixedCall_SendsOnlyTheUncached_AndKeepsOrder()
    {
        await DriveOverAsync("a");
        await DriveOverAsync("c");
        await UpdateAsync(Add("b", 1, 3));
        _inner.Reset();

        var results = await UpdateAsync(Add("a", 1, 3), Add("b", 1, 3), Add("c", 2, 3), Add("d", 5, 10), Add("a", 1, 3));

        Assert.Equal([Key("b"), Key("d")], _inner.Keys);
        Assert.Equal(1, _inner.Calls);
        Assert.Equal(
            [new(5, 0, false, true), new(2, 0, true), new(6, 0, false, true), new(5, 0, true), new(5, 0, false, true)],
            results);
    }

    [Fact]
    public async Task AllCached_SkipTheInnerStore()
    {
        await DriveOverAsync("a");
        await DriveOverAsync("b");
        _inner.Reset();

        var results = await UpdateAsync(Add("b", 1, 3), Add("a", 1, 3));

        Assert.Equal(0, _inner.Calls);
        Assert.Equal([new(5, 0, false, true), new(5, 0, false, true)], results);
    }

    [Fact]
    public async Task AsyncInnerStore_MixedCall_KeepsOrder()
    {
        var inner = new CountingStore(_memory, yields: true);
        var cache = new OverLimitCachingStore(inner, _time);
        for (var i = 0; i < 4; i++)
            await UpdateAsync(cache, Add("async-a", 1, 3));
        inner.Reset();

        var results = await UpdateAsync(cache, Add("async-b", 1, 3), Add("async-a", 1, 3), Add("async-c", 7, 3));
        Assert.Equal([new(1, 0, true), new(5, 0, false, true), new(7, 0, true)], results);
        Assert.Equal([Key("async-b"), Key("async-c")], inner.Keys);

        // async-c went over in that call, and is remembered from it.
        inner.Reset();
        Assert.Equal(new CounterResult(8, 0, false, FromLocalCache: true), (await UpdateAsync(cache, Add("async-c", 1, 3)))[0]);
        Assert.Equal(0, inner.Calls);
    }

    [Fact]
    public async Task RefusedUpdate_RemembersTheCountActuallyStored()
    {
        await UpdateAsync(AddWithin("r", 5, 5));
        Assert.Equal(new CounterResult(7, 0, false), (await UpdateAsync(AddWithin("r", 2, 5)))[0]);
        _inner.Reset();

        // 5 stored + 1 > 5: over, from memory.
        Assert.Equal(new CounterResult(6, 0, false, FromLocalCache: true), (await UpdateAsync(AddWithin("r", 1, 5)))[0]);
        Assert.Equal(0, _inner.Calls);
        // A read is not over the limit by itself: 5 + 0 ≤ 5.
        Assert.Equal(new CounterResult(5, 0, true), (await UpdateAsync(AddWithin("r", 0, 5)))[0]);
        Assert.Equal(1, _inner.Calls);
    }

    [Fact]
    public async Task RaisedLimit_GoesToTheInnerStore()
    {
        await DriveOverAsync("raised");
        _inner.Reset();

        Assert.Equal(new CounterResult(5, 0, true), (await UpdateAsync(Add("raised", 1, 100)))[0]);
        Assert.Equal(1, _inner.Calls);
    }

    [Fact]
    public async Task SlidingWindow_FadingPreviousShare_GoesToTheInnerStore()
    {
        var previous = Key("sliding", 1_767_225_600);
        var current = Key("sliding", 1_767_225_660);
        await UpdateAsync(new CounterUpdate(previous, 10, Ttl));
        CounterUpdate Sliding(double weight) => new(current, 2, Ttl, 10, OnlyIfWithinLimit: true, previous, weight);

        // 0 + 2 + floor(10 × 0.9) = 11 > 10: refused, and remembered.
        Assert.Equal(new CounterResult(2, 10, false), (await UpdateAsync(Sliding(0.9)))[0]);
        _inner.Reset();
        Assert.Equal(new CounterResult(2, 10, false, FromLocalCache: true), (await UpdateAsync(Sliding(0.9)))[0]);
        Assert.Equal(0, _inner.Calls);

        // Later in the window the previous share is 5: 0 + 2 + 5 ≤ 10, so the cache must not answer.
        Assert.Equal(new CounterResult(2, 10, true), (await UpdateAsync(Sliding(0.5)))[0]);
        Assert.Equal(1, _inner.Calls);
    }

    [Fact]
    public async Task UpdatesWithoutALimit_AreNeverCached()
    {
        for (var i = 0; i < 5; i++)
            await UpdateAsync(new CounterUpdate(Key("nolimit"), 10, Ttl));

        Assert.Equal(5, _inner.Calls);
        Assert.Equal(0, _cache.Count);
    }

    [Fact]
    public async Task Bound_HoldsUnderManyOverLimitKeys()
    {
        var cache = new OverLimitCachingStore(_inner, _time, maxEntries: 100);

        for (var i = 0; i < 1000; i++)
        {
            await UpdateAsync(cache, Add("bound-" + i, 5, 3));
            Assert.InRange(cache.Count, 1, 100);
        }
    }

    [Fact]
    public async Task InnerFailure_PropagatesUnchanged()
    {
        var cache = new OverLimitCachingStore(new FailingStore(), _time);

        await Assert.ThrowsAsync<CounterStoreException>(async () => await UpdateAsync(cache, Add("fail", 1, 3)));
    }

    /// <summary>Counts the calls and the keys that reach the wrapped store.</summary>
    private sealed class CountingStore(ICounterStore inner, bool yields = false) : ICounterStore
    {
        public int Calls { get; private set; }

        public List<string> Keys { get; } = [];

        public string Name => inner.Name;

        public void Reset()
        {
            Calls = 0;
            Keys.Clear();
        }

        public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            Calls++;
            foreach (var update in updates.Span)
                Keys.Add(update.Key);
            return yields ? YieldThenAsync(updates, results, cancellationToken) : inner.UpdateAsync(updates, results, cancellationToken);
        }

        private async ValueTask YieldThenAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            await Task.Yield();
            await inner.UpdateAsync(updates, results, cancellationToken);
        }
    }

    private sealed class FailingStore : ICounterStore
    {
        public string Name => "failing";

        public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken) =>
            ValueTask.FromException(new CounterStoreException("down"));
    }
}
