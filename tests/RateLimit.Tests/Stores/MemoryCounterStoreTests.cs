using Legate.RateLimit.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Legate.RateLimit.Tests.Stores;

public sealed class MemoryCounterStoreTests : CounterStoreContractTests, IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly MemoryCounterStore _store;

    public MemoryCounterStoreTests() => _store = new MemoryCounterStore(_time);

    protected override ICounterStore Store => _store;

    protected override async Task AssertExpiresWithinAsync(string key, TimeSpan ttl)
    {
        Assert.NotEqual(0ul, await ReadAsync(key));
        _time.Advance(ttl - TimeSpan.FromMilliseconds(1));
        Assert.NotEqual(0ul, await ReadAsync(key));
        _time.Advance(TimeSpan.FromMilliseconds(2));
        Assert.Equal(0ul, await ReadAsync(key));
    }

    protected override Task PassAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return Task.CompletedTask;
    }

    public void Dispose() => _store.Dispose();

    [Fact]
    public void Name_IsMemory() => Assert.Equal("memory", _store.Name);

    [Fact]
    public void Update_CompletesSynchronously()
    {
        var pending = _store.UpdateAsync(new[] { Add(Key("sync"), 1) }, new CounterResult[1], Ct);

        Assert.True(pending.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task ExpiredCounter_IsReplaced_NotAddedAgain()
    {
        var key = Key("replace");
        await UpdateOneAsync(Add(key, 5, TimeSpan.FromSeconds(5)));
        _time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(new CounterResult(1, 0, true), await UpdateOneAsync(Add(key, 1, TimeSpan.FromSeconds(5))));
        Assert.Equal(1, _store.Count);
    }

    [Fact]
    public async Task ReadsAndRefusals_CreateNoCounter()
    {
        await UpdateOneAsync(Add(Key("absent"), 0));
        await UpdateOneAsync(AddWithin(Key("absent"), 10, limit: 5));

        Assert.Equal(0, _store.Count);
    }

    [Fact]
    public async Task Sweep_RemovesExpiredCounters()
    {
        for (var i = 0; i < 100; i++)
            await UpdateOneAsync(Add(Key("short-" + i), 1, TimeSpan.FromSeconds(5)));
        await UpdateOneAsync(Add(Key("long"), 1, TimeSpan.FromHours(1)));
        Assert.Equal(101, _store.Count);

        _time.Advance(MemoryCounterStore.SweepInterval); // the sweep timer fires

        Assert.Equal(1, _store.Count);
        Assert.Equal(1ul, await ReadAsync(Key("long")));
    }

    [Fact]
    public async Task Bound_HoldsUnderManyUniqueKeys_EvictingThoseClosestToExpiry()
    {
        using var store = new MemoryCounterStore(_time, maxCounters: 1000);
        var results = new CounterResult[1];
        for (var i = 0; i < 10_000; i++)
        {
            // Later keys live longer, so the oldest are the ones closest to expiry.
            await store.UpdateAsync(new[] { Add(Key("flood-" + i), 1, TimeSpan.FromSeconds(1000 + i)) }, results, Ct);
            Assert.InRange(store.Count, 1, 1000);
        }

        await store.UpdateAsync(new[] { Add(Key("flood-9999"), 0) }, results, Ct);
        Assert.Equal(1ul, results[0].Count);
        await store.UpdateAsync(new[] { Add(Key("flood-0"), 0) }, results, Ct);
        Assert.Equal(0ul, results[0].Count);
    }

    [Fact]
    public async Task Bound_HoldsWhenEveryCounterExpiresAtTheSameInstant()
    {
        // Counters of one window all end at the window's end: ties must not empty the store.
        using var store = new MemoryCounterStore(_time, maxCounters: 1000);
        var results = new CounterResult[1];
        for (var i = 0; i < 5000; i++)
            await store.UpdateAsync(new[] { Add(Key("tie-" + i), 1, TimeSpan.FromMinutes(1)) }, results, Ct);

        Assert.InRange(store.Count, 800, 1000);
    }

    [Fact]
    public async Task Bound_HoldsUnderParallelUniqueKeys()
    {
        const int Callers = 32;
        using var store = new MemoryCounterStore(_time, maxCounters: 1000);

        await Task.WhenAll(Enumerable.Range(0, Callers).Select(caller => Task.Run(async () =>
        {
            var results = new CounterResult[1];
            for (var i = 0; i < 2000; i++)
                await store.UpdateAsync(new[] { Add(Key($"parallel-{caller}-{i}"), 1) }, results, Ct);
        }, Ct)));

        // Inserts do not wait while one caller makes room, up to 110 % of the bound (plus those racing that check).
        Assert.InRange(store.Count, 1, 1100 + Callers);
    }

    [Fact]
    public async Task FullStore_DropsExpiredCountersBeforeLiveOnes()
    {
        using var store = new MemoryCounterStore(_time, maxCounters: 100);
        var results = new CounterResult[1];
        for (var i = 0; i < 50; i++)
            await store.UpdateAsync(new[] { Add(Key("dying-" + i), 1, TimeSpan.FromSeconds(1)) }, results, Ct);
        for (var i = 0; i < 50; i++)
            await store.UpdateAsync(new[] { Add(Key("living-" + i), 1, TimeSpan.FromHours(1)) }, results, Ct);
        _time.Advance(TimeSpan.FromSeconds(2)); // expired, but before the periodic sweep

        await store.UpdateAsync(new[] { Add(Key("newcomer"), 1) }, results, Ct);

        Assert.Equal(51, store.Count);
        for (var i = 0; i < 50; i++)
        {
            await store.UpdateAsync(new[] { Add(Key("living-" + i), 0) }, results, Ct);
            Assert.Equal(1ul, results[0].Count);
        }
    }

    [Fact]
    public async Task HugeHits_SaturateInsteadOfWrapping()
    {
        var key = Key("huge");
        await UpdateOneAsync(Add(key, 10));

        Assert.Equal(ulong.MaxValue, (await UpdateOneAsync(Add(key, ulong.MaxValue))).Count);
        Assert.Equal(ulong.MaxValue, await ReadAsync(key));
        Assert.False((await UpdateOneAsync(AddWithin(key, ulong.MaxValue, limit: 100))).Applied);
    }

    [Fact]
    public void Dispose_StopsTheSweep()
    {
        var store = new MemoryCounterStore(_time);
        store.Dispose();

        _time.Advance(MemoryCounterStore.SweepInterval * 3);
        Assert.Equal(0, store.Count);
    }
}
