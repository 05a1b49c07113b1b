using System.Collections.Concurrent;
using Legate.RateLimit.Stores;
using Legate.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Prometheus;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// The contract on write-behind counting over the test assembly's Redis: one instance alone must decide exactly as Redis
/// would, whatever it keeps locally. The hits it gathers reach Redis by a sync, which the expiry checks run first.
/// </summary>
public sealed class WriteBehindCounterStoreTests(RedisFixture redis) : CounterStoreContractTests, IAsyncDisposable
{
    private readonly int _database = redis.DedicatedDatabase();
    private WriteBehindCounterStore? _store;

    protected override ICounterStore Store => _store ??= Create();

    private WriteBehindCounterStore Create()
    {
        redis.RequireRedis();
        return new WriteBehindCounterStore(new RedisCounterStore(redis.Multiplexer, _database, TimeSpan.FromSeconds(10)), TimeProvider.System,
            TimeSpan.FromMilliseconds(50), 10_000, NullLogger.Instance, Metrics.WithCustomRegistry(Metrics.NewCustomRegistry()));
    }

    protected override async Task AssertExpiresWithinAsync(string key, TimeSpan ttl)
    {
        await ((WriteBehindCounterStore)Store).SyncAsync(Ct);
        Assert.InRange(await RedisCounterStoreTests.PttlAsync(redis.Multiplexer.GetDatabase(_database), key), TimeSpan.FromMilliseconds(1), ttl);
    }

    protected override Task PassAsync(TimeSpan duration) => Task.Delay(duration, Ct);

    public async ValueTask DisposeAsync()
    {
        if (_store is not null)
            await _store.DisposeAsync();
    }

    [Fact]
    public async Task KnownCounter_IsDecidedHere_AndItsHitsReachRedisWithTheSync()
    {
        var key = Key("known");
        var database = redis.Multiplexer.GetDatabase(_database);

        Assert.Equal(new CounterResult(1, 0, true), await UpdateOneAsync(Add(key, 1)));
        Assert.Equal(1, (long)await database.StringGetAsync(key)); // the first call went to Redis
        for (var i = 2; i <= 5; i++)
            Assert.Equal(new CounterResult((ulong)i, 0, true), await UpdateOneAsync(AddWithin(key, 1, limit: 5)));
        Assert.Equal(new CounterResult(6, 0, false), await UpdateOneAsync(AddWithin(key, 1, limit: 5)));
        Assert.Equal(1, (long)await database.StringGetAsync(key)); // decided here, not sent yet

        await ((WriteBehindCounterStore)Store).SyncAsync(Ct);

        Assert.Equal(5, (long)await database.StringGetAsync(key));
        Assert.Equal(5ul, await ReadAsync(key));
    }
}

/// <summary>What write-behind trades, on a Redis of the test's own: replicas hear each other at each sync, and Redis away loses no hit.</summary>
public sealed class WriteBehindReplicaTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Key(string name) =>
        CounterKey.Build("legate:rl:wb:" + Guid.NewGuid().ToString("N") + ":", "domain", new KeyValuePair<string, string>[] { new("name", name) }, "m", 1_767_225_600);

    private static CounterUpdate AddWithin(string key, ulong limit) => new(key, 1, TimeSpan.FromMinutes(2), limit, OnlyIfWithinLimit: true);

    // The syncs' timer runs on the test's clock; Redis's deadline on real time (a frozen Redis is waited for for real).
    private static WriteBehindCounterStore Replica(IConnectionMultiplexer multiplexer, TimeProvider time, TimeSpan? timeout = null) =>
        new(new RedisCounterStore(multiplexer, timeout: timeout ?? TimeSpan.FromSeconds(5)), time, Interval, 10_000,
            NullLogger.Instance, Metrics.WithCustomRegistry(Metrics.NewCustomRegistry()));

    private static async Task<bool> AdmitAsync(WriteBehindCounterStore store, string key, ulong limit)
    {
        var results = new CounterResult[1];
        await store.UpdateAsync(new[] { AddWithin(key, limit) }, results, Ct);
        return results[0].Applied;
    }

    [Fact]
    public async Task TwoReplicas_HearEachOthersHitsAtTheirSyncs_SoTheyOvershootOnlyByWhatTheyAdmittedBetweenSyncs()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        await using var a = Replica(multiplexer, time);
        await using var b = Replica(multiplexer, time);
        var key = Key("shared");
        const ulong Limit = 10;

        // Each replica's first call goes to Redis (1, then 2); then each admits locally on what it knows.
        Assert.True(await AdmitAsync(a, key, Limit));
        Assert.True(await AdmitAsync(b, key, Limit));
        var admitted = 2;
        for (var i = 0; i < 4; i++)
        {
            admitted += await AdmitAsync(a, key, Limit) ? 1 : 0;
            admitted += await AdmitAsync(b, key, Limit) ? 1 : 0;
        }
        Assert.Equal(10, admitted); // a sees 1 + 4, b sees 2 + 4: both still within 10

        // At its sync each sends its hits and hears the total so far: a hears 6 (b's local hits are not sent yet), b 10.
        await a.SyncAsync(Ct);
        await b.SyncAsync(Ct);
        Assert.Equal(10, (long)await multiplexer.GetDatabase().StringGetAsync(key));
        Assert.False(await AdmitAsync(b, key, Limit));
        // a has not heard b's last hits: it admits one more on its view (6 + 1), the overshoot write-behind trades.
        Assert.True(await AdmitAsync(a, key, Limit));
        await a.SyncAsync(Ct);
        Assert.False(await AdmitAsync(a, key, Limit));
        Assert.Equal(11, (long)await multiplexer.GetDatabase().StringGetAsync(key));

        // Between syncs they can overshoot: each admits on its own view, at most its own hits since it last heard.
        var other = Key("overshoot");
        Assert.True(await AdmitAsync(a, other, Limit));
        Assert.True(await AdmitAsync(b, other, Limit));
        var total = 2;
        for (var i = 0; i < 20; i++)
        {
            total += await AdmitAsync(a, other, Limit) ? 1 : 0;
            total += await AdmitAsync(b, other, Limit) ? 1 : 0;
        }
        // a: 1 + 9 local = 10; b: 2 + 8 local = 10. Together 19 > 10, and no more than 2 × 10.
        Assert.Equal(19, total);
        await a.SyncAsync(Ct);
        await b.SyncAsync(Ct);
        Assert.Equal(19, (long)await multiplexer.GetDatabase().StringGetAsync(other));
        Assert.False(await AdmitAsync(b, other, Limit));
    }

    [Fact]
    public async Task TheTimer_Syncs_EveryInterval()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        await using var store = Replica(multiplexer, time);
        var key = Key("timer");

        for (var i = 0; i < 5; i++)
            Assert.True(await AdmitAsync(store, key, 100));
        Assert.Equal(1, (long)await multiplexer.GetDatabase().StringGetAsync(key));

        time.Advance(Interval);
        var count = 0L;
        for (var i = 0; i < 200 && count != 5; i++)
        {
            await Task.Delay(10, Ct);
            count = (long)await multiplexer.GetDatabase().StringGetAsync(key);
        }
        Assert.Equal(5, count);
    }

    [Fact]
    public async Task RedisAway_KnownCountersAreStillDecidedHere_AndTheirHitsAreSentOnceItIsBack()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        var store = Replica(multiplexer, time, TimeSpan.FromMilliseconds(300));
        var known = Key("known");
        var unknown = Key("unknown");
        Assert.True(await AdmitAsync(store, known, 5));

        server.Freeze();
        try
        {
            for (var i = 0; i < 3; i++)
                Assert.True(await AdmitAsync(store, known, 5));
            // The sync cannot reach Redis: it fails at Redis's deadline, and the hits are kept.
            await store.SyncAsync(Ct);
            Assert.True(await AdmitAsync(store, known, 5));
            Assert.False(await AdmitAsync(store, known, 5)); // 5 known here: the limit holds without Redis
            // A counter not known here needs Redis, as without write-behind.
            await Assert.ThrowsAsync<CounterStoreException>(() => AdmitAsync(store, unknown, 5));
        }
        finally
        {
            server.Thaw();
        }

        // Once Redis answers, the kept hits go; the sync that timed out may have been applied too (counted twice).
        await store.DisposeAsync();
        var count = (long)await multiplexer.GetDatabase().StringGetAsync(known);
        Assert.InRange(count, 5, 5 + 3);
    }
}

/// <summary>Write-behind over a store whose answers the test releases one by one: when a counter is decided here.</summary>
public sealed class WriteBehindGatingTests : IAsyncDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch.AddYears(56));
    private readonly GatedStore _gated;
    private readonly WriteBehindCounterStore _store;

    public WriteBehindGatingTests()
    {
        _gated = new GatedStore(new MemoryCounterStore(_time));
        _store = new WriteBehindCounterStore(_gated, _time, TimeSpan.FromMilliseconds(100), 10_000, NullLogger.Instance, Metrics.WithCustomRegistry(Metrics.NewCustomRegistry()));
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private (Task Call, CounterResult[] Results) Admit(ulong limit)
    {
        var results = new CounterResult[1];
        return (_store.UpdateAsync(new[] { new CounterUpdate("k", 1, TimeSpan.FromMinutes(2), limit, OnlyIfWithinLimit: true) }, results, Ct).AsTask(), results);
    }

    [Fact]
    public async Task WhileACallForACounterIsOutToTheStore_NoCallForItIsDecidedHere()
    {
        // Two first calls go to the store; the first answers, so the count is known, but the second is still out.
        var a = Admit(2);
        var b = Admit(2);
        await _gated.ReleaseNextAsync();
        await a.Call;

        // Decided here, this call would see 1 and admit (1 + 1 ≤ 2), then b's answer 2 would make 3: over the limit.
        var c = Admit(2);
        Assert.False(c.Call.IsCompleted); // it went to the store, behind b

        await _gated.ReleaseNextAsync();
        await b.Call;
        await _gated.ReleaseNextAsync();
        await c.Call;
        Assert.Equal([true, true, false], new[] { a, b, c }.Select(x => x.Results[0].Applied));

        // Nothing out any more: decided here, at once.
        var d = Admit(2);
        Assert.True(d.Call.IsCompletedSuccessfully);
        Assert.False(d.Results[0].Applied);
        Assert.Equal(0, _gated.Waiting);
    }

    [Fact]
    public async Task ACallTheStoreFails_LeavesTheCounterUnknown_AndTheNextCallAsksTheStoreAgain()
    {
        var a = Admit(2);
        _gated.FailNext();
        await Assert.ThrowsAsync<CounterStoreException>(() => a.Call);

        var b = Admit(2);
        Assert.False(b.Call.IsCompleted);
        await _gated.ReleaseNextAsync();
        await b.Call;
        Assert.True(b.Results[0].Applied);
        Assert.True(Admit(2).Call.IsCompletedSuccessfully); // known now: decided here
    }

    /// <summary>Holds every call until the test releases it (in order), then lets the inner store answer it.</summary>
    private sealed class GatedStore(ICounterStore inner) : ICounterStore
    {
        private readonly ConcurrentQueue<TaskCompletionSource<bool>> _gates = new();

        public string Name => "gated";

        public int Waiting => _gates.Count;

        public async ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            var gate = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _gates.Enqueue(gate);
            if (!await gate.Task)
                throw new CounterStoreException("failed by the test");
            await inner.UpdateAsync(updates, results, cancellationToken);
        }

        public Task ReleaseNextAsync()
        {
            Assert.True(_gates.TryDequeue(out var gate));
            gate.SetResult(true);
            return Task.CompletedTask;
        }

        public void FailNext()
        {
            Assert.True(_gates.TryDequeue(out var gate));
            gate.SetResult(false);
        }
    }
}

/// <summary>Write-behind's sync logs on the test's clock: a store that fails syncs, or a sync that fails unexpectedly, every few ms.</summary>
public sealed class WriteBehindSyncLogTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch.AddYears(56));
    private readonly FakeLogger _logger = new();
    private readonly FlakyStore _sync = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private WriteBehindCounterStore Store(TimeSpan interval) =>
        new(new MemoryCounterStore(_time), _time, interval, 10_000, _logger, Metrics.WithCustomRegistry(Metrics.NewCustomRegistry()), _sync);

    private List<FakeLogRecord> Lines(string name) => [.. _logger.Collector.GetSnapshot().Where(r => r.Id.Name == name)];

    /// <summary>One hit, decided here once the counter is known (its first call goes to the inner store): a sync then has it to send.</summary>
    private static async Task HitAsync(WriteBehindCounterStore store)
    {
        var results = new CounterResult[1];
        await store.UpdateAsync(new[] { new CounterUpdate("k", 1, TimeSpan.FromHours(1), 1_000_000, OnlyIfWithinLimit: true) }, results, Ct);
        Assert.True(results[0].Applied);
    }

    [Fact]
    public async Task AFlappingStore_IsLoggedAtMostOncePerTenSeconds_WithTheSyncsFailedSinceTheLastLine()
    {
        await using var store = Store(TimeSpan.FromHours(1)); // the test syncs; the timer never does
        await HitAsync(store);
        async Task FlapAsync(int times)
        {
            for (var i = 0; i < times; i++)
            {
                await HitAsync(store);
                _sync.Failing = true;
                await store.SyncAsync(Ct);
                _sync.Failing = false;
                await store.SyncAsync(Ct);
            }
        }

        var recoveredAfter = new List<int>();
        async Task FlapAndCountAsync(int times)
        {
            await FlapAsync(times);
            recoveredAfter.Add(Lines("WriteBehindSyncRecovered").Count);
        }
        await ThrottledLogAssert.OncePerTenSecondsAsync(FlapAndCountAsync, _time.Advance, () => [.. Lines("WriteBehindSyncFailing").Select(r => r.Message)], n => $"failed {n} time(s)");
        Assert.Equal([1, 1, 2], recoveredAfter); // a recovered line only after a failing one
        Assert.Equal(61 + 61, _sync.Calls);
    }

    [Fact]
    public async Task UnexpectedSyncFailures_AreLoggedAtMostOncePerTenSeconds_WithTheSyncsFailedSinceTheLastLine()
    {
        var interval = TimeSpan.FromMilliseconds(1);
        await using var store = Store(interval);
        await HitAsync(store);
        _sync.Bug = true;
        async Task FailAsync(int times)
        {
            // Each tick of the timer (on the test's clock) syncs the one hit given before it, and fails inside.
            for (var i = 0; i < times; i++)
            {
                await HitAsync(store);
                var calls = _sync.Calls;
                _time.Advance(interval);
                for (var j = 0; j < 500 && _sync.Calls == calls; j++)
                    await Task.Delay(1, Ct);
                Assert.Equal(calls + 1, _sync.Calls);
            }
        }

        await ThrottledLogAssert.OncePerTenSecondsAsync(FailAsync, _time.Advance, () => [.. Lines("WriteBehindSyncBug").Select(r => r.Message)], n => $"{n} write-behind sync(s)");
        Assert.StartsWith("60 write-behind sync(s)", Lines("WriteBehindSyncBug")[1].Message, StringComparison.Ordinal);
        Assert.IsType<InvalidOperationException>(Lines("WriteBehindSyncBug")[1].Exception);
        _sync.Bug = false;
    }

    /// <summary>The sync store: answers, fails as a store does (CounterStoreException), or throws what no store should.</summary>
    private sealed class FlakyStore : ICounterStore
    {
        private int _calls;

        public string Name => "flaky";

        public volatile bool Failing;

        public volatile bool Bug;

        public int Calls => Volatile.Read(ref _calls);

        public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            if (Bug)
                throw new InvalidOperationException("a bug, by the test");
            if (Failing)
                return ValueTask.FromException(new CounterStoreException("failed by the test"));
            for (var i = 0; i < updates.Length; i++)
                results.Span[i] = new CounterResult(updates.Span[i].Hits, 0, true);
            return ValueTask.CompletedTask;
        }
    }
}
