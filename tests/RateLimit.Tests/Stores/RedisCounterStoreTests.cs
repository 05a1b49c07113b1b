using System.Diagnostics;
using Legate.RateLimit.Stores;
using Legate.Testing;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>The contract against the test assembly's Redis, and what only Redis does.</summary>
public sealed class RedisCounterStoreTests(RedisFixture redis) : CounterStoreContractTests, IAsyncLifetime
{
    private static readonly SemaphoreSlim MultiplexerGate = new(1, 1);
    private readonly int _database = redis.DedicatedDatabase();
    private IConnectionMultiplexer? _multiplexer;
    private RedisCounterStore? _store;

    // Generous: the parallel tests share one Redis with every other test class.
    protected override ICounterStore Store => _store ??= new RedisCounterStore(Multiplexer, _database, TimeSpan.FromSeconds(10));

    private IConnectionMultiplexer Multiplexer
    {
        get
        {
            redis.RequireRedis();
            return _multiplexer!;
        }
    }

    private IDatabase Database => Multiplexer.GetDatabase(_database);

    // RedisFixture.Multiplexer connects synchronously on first use, without a lock: every test of this class asking at
    // once would block a pool thread each in a connect (starving the pool for seconds, which the fault tests' timing
    // would feel) and create several multiplexers. So it is asked one test at a time, off the test's thread.
    public async ValueTask InitializeAsync()
    {
        if (redis.Configuration is null)
            return;
        await MultiplexerGate.WaitAsync(Ct);
        try
        {
            _multiplexer = await Task.Run(() => redis.Multiplexer, Ct);
        }
        finally
        {
            MultiplexerGate.Release();
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    protected override async Task AssertExpiresWithinAsync(string key, TimeSpan ttl) =>
        Assert.InRange(await PttlAsync(Database, key), TimeSpan.FromMilliseconds(1), ttl);

    // PTTL itself: KeyTimeToLiveAsync falls back to TTL (whole seconds) until the server version is known.
    internal static async Task<TimeSpan> PttlAsync(IDatabaseAsync database, string key) =>
        TimeSpan.FromMilliseconds((long)await database.ExecuteAsync("PTTL", (RedisKey)key));

    protected override Task PassAsync(TimeSpan duration) => Task.Delay(duration, Ct);

    [Fact]
    public void Name_IsRedis() => Assert.Equal("redis", Store.Name);

    [Fact]
    public async Task Standalone_GetsBatches()
    {
        await UpdateAsync(Add(Key("batched"), 1), Add(Key("batched"), 2), Add(Key("other"), 1));

        var store = (RedisCounterStore)Store;
        Assert.True(store.IsBatching);
        Assert.Equal(1, store.BatchScripts);
        Assert.Equal(3, store.BatchedCounters);
    }

    [Fact]
    public async Task ReadsAndRefusals_CreateNoKey()
    {
        var key = Key("absent");

        await UpdateOneAsync(Add(key, 0));
        await UpdateOneAsync(AddWithin(key, 10, limit: 5));

        Assert.False(await Database.KeyExistsAsync(key));
    }

    [Fact]
    public async Task Expiry_IsInMilliseconds()
    {
        var key = Key("pexpire");

        await UpdateOneAsync(Add(key, 1, TimeSpan.FromMilliseconds(1500)));

        Assert.InRange(await PttlAsync(Database, key), TimeSpan.FromMilliseconds(1000), TimeSpan.FromMilliseconds(1500));
    }

    [Fact]
    public async Task KeyWithoutExpiry_GetsOneOnTheNextIncrement()
    {
        var key = Key("no-expiry");
        await Database.StringSetAsync(key, 5);

        Assert.Equal(new CounterResult(6, 0, true), await UpdateOneAsync(Add(key, 1, TimeSpan.FromSeconds(30))));

        await AssertExpiresWithinAsync(key, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task ScriptFlushBetweenCalls_IsRecovered()
    {
        var key = Key("noscript");
        await UpdateOneAsync(Add(key, 1));

        // As after a Redis restart: the server no longer knows the script's SHA, and answers NOSCRIPT.
        await Database.ExecuteAsync("SCRIPT", "FLUSH");

        Assert.Equal(new CounterResult(2, 0, true), await UpdateOneAsync(Add(key, 1)));
        Assert.Equal(new CounterResult(3, 0, true), await UpdateOneAsync(Add(key, 1)));
    }

    [Fact]
    public async Task ServerError_IsACounterStoreException_ThatDoesNotNameTheKey()
    {
        var key = Key("secret-api-key-4711");
        await Database.ListLeftPushAsync(key, "not a counter");

        var error = await Assert.ThrowsAsync<CounterStoreException>(async () => await UpdateOneAsync(Add(key, 1)));

        Assert.Contains("WRONGTYPE", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-api-key", error.Message + error.InnerException?.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CancelledCall_Throws_OperationCanceled()
    {
        var store = Store;
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            await store.UpdateAsync(new[] { Add(Key("cancelled"), 1) }, new CounterResult[1], cancelled.Token));
    }

    // The shared multiplexer's first connect runs in the background (LegateRedis): a call made before it completed
    // waits for it only within its own deadline, and one made just before it completes goes on to Redis.
    [Fact]
    public async Task BeforeTheFirstConnect_ACallWaitsAtMostItsTimeout_AndGoesOnOnceConnected()
    {
        var multiplexer = Multiplexer;
        var connecting = new TaskCompletionSource<IConnectionMultiplexer>(TaskCreationOptions.RunContinuationsAsynchronously);
        var time = new FakeTimeProvider();
        var store = new RedisCounterStore(connecting.Task, _database, TimeSpan.FromMilliseconds(500), time);
        var key = Key("connecting");

        var first = store.UpdateAsync(new[] { Add(key, 1) }, new CounterResult[1], Ct).AsTask();
        Assert.False(first.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(500));
        var error = await Assert.ThrowsAsync<CounterStoreException>(() => first);
        Assert.True(error.TimedOut);

        var results = new CounterResult[1];
        var second = store.UpdateAsync(new[] { Add(key, 1) }, results, Ct).AsTask();
        connecting.SetResult(multiplexer);
        await second;

        Assert.Equal(1ul, results[0].Count); // the call that gave up never reached Redis
        Assert.Equal(1L, (long)await Database.StringGetAsync(key));
    }

    // The wait for the first connect and the update after it share one deadline: a connect that completes late leaves
    // the update only the rest of it, never a deadline of its own on top.
    [Fact]
    public async Task AConnectThatCompletesLate_LeavesTheUpdateOnlyTheRestOfTheDeadline()
    {
        using var hanging = new SilentServer();
        // Not connected, with StackExchange.Redis's default backlog: the update waits until someone gives up.
        await using var never = await ConnectionMultiplexer.ConnectAsync($"{hanging.Endpoint},abortConnect=false,connectTimeout=100");
        var connecting = new TaskCompletionSource<IConnectionMultiplexer>(TaskCreationOptions.RunContinuationsAsynchronously);
        var time = new FakeTimeProvider();
        var store = new RedisCounterStore(connecting.Task, timeout: TimeSpan.FromMilliseconds(500), timeProvider: time);

        var call = store.UpdateAsync(new[] { Add(Key("late"), 1) }, new CounterResult[1], Ct).AsTask();
        time.Advance(TimeSpan.FromMilliseconds(400));
        connecting.SetResult(never);
        var waited = TimeSpan.FromMilliseconds(400);
        for (var i = 0; i < 100 && !call.IsCompleted; i++)
        {
            await Task.Delay(5, Ct);
            time.Advance(TimeSpan.FromMilliseconds(20));
            waited += TimeSpan.FromMilliseconds(20);
        }

        var error = await Assert.ThrowsAsync<CounterStoreException>(() => call);
        Assert.True(error.TimedOut);
        Assert.InRange(waited, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(700)); // not 400 + 500
    }

    [Fact]
    public async Task UnreachableRedis_FailsWithinTheTimeout()
    {
        // Needs no Redis: nothing listens on this port.
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{FreePort.Next()},abortConnect=false,connectTimeout=200");
        var store = new RedisCounterStore(multiplexer, timeout: TimeSpan.FromMilliseconds(500));
        var clock = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<CounterStoreException>(async () =>
            await store.UpdateAsync(new[] { Add(Key("secret-token-0815"), 1), Add(Key("secret-token-0816"), 1) }, new CounterResult[2], Ct));

        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(3));
        Assert.DoesNotContain("secret-token", error.Message + error.InnerException?.Message, StringComparison.Ordinal);
    }
}
