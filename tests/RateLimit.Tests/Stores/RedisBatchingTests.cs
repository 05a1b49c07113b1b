using System.Diagnostics;
using System.Globalization;
using Legate.RateLimit.Stores;
using Legate.Testing;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>The contract on standalone Redis with group commit off: one script per counter, as on a cluster.</summary>
public sealed class RedisPerCounterStoreTests(RedisFixture redis) : CounterStoreContractTests
{
    private RedisCounterStore? _store;

    protected override ICounterStore Store => _store ??= Create();

    protected override async Task AssertExpiresWithinAsync(string key, TimeSpan ttl) =>
        Assert.InRange(await RedisCounterStoreTests.PttlAsync(redis.Multiplexer.GetDatabase(), key), TimeSpan.FromMilliseconds(1), ttl);

    protected override Task PassAsync(TimeSpan duration) => Task.Delay(duration, Ct);

    private RedisCounterStore Create()
    {
        redis.RequireRedis();
        return new RedisCounterStore(redis.Multiplexer, timeout: TimeSpan.FromSeconds(10), batching: RedisBatchOptions.Off);
    }

    [Fact]
    public async Task SendsNoBatch()
    {
        await UpdateAsync(Add(Key("off"), 1), Add(Key("off"), 1));

        Assert.False(((RedisCounterStore)Store).IsBatching);
        Assert.Equal(0, ((RedisCounterStore)Store).BatchScripts);
    }
}

/// <summary>
/// Group commit: concurrent calls share scripts, each call still gets exactly what applying its updates in turn gives,
/// and a batch's failure or a caller's timeout touches no one else's memory. Most tests run on a Redis of their own,
/// which they freeze (SIGSTOP) to hold a batch in flight while others queue behind it.
/// </summary>
public sealed class RedisBatchingTests(RedisFixture redis)
{
    private static readonly CounterResult Sentinel = new(4711, 4711, false);

    private readonly string _prefix = "legate:rl:batch:" + Guid.NewGuid().ToString("N") + ":";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string Key(string name, long window = 1_767_225_600) =>
        CounterKey.Build(_prefix, "domain", new KeyValuePair<string, string>[] { new("name", name) }, "m", window);

    private static CounterUpdate Add(string key, ulong hits) => new(key, hits, TimeSpan.FromMinutes(2));

    private static CounterUpdate AddWithin(string key, ulong hits, ulong limit) => new(key, hits, TimeSpan.FromMinutes(2), limit, OnlyIfWithinLimit: true);

    private static async Task<CounterResult[]> UpdateAsync(ICounterStore store, params CounterUpdate[] updates)
    {
        var results = new CounterResult[updates.Length];
        await store.UpdateAsync(updates, results, Ct);
        return results;
    }

    /// <summary>Script runs (EVAL and EVALSHA) the server has counted since its start or the last CONFIG RESETSTAT.</summary>
    private static async Task<long> ScriptCallsAsync(IServer server) =>
        await CommandCallsAsync(server, "evalsha") + await CommandCallsAsync(server, "eval");

    /// <summary>Calls of one command (e.g. "incrby") the server has counted since its start or the last CONFIG RESETSTAT.</summary>
    private static async Task<long> CommandCallsAsync(IServer server, string command)
    {
        foreach (var group in await server.InfoAsync("commandstats"))
        {
            foreach (var (name, value) in group)
            {
                if (name == "cmdstat_" + command)
                    return long.Parse(value.Split(',')[0]["calls=".Length..], CultureInfo.InvariantCulture);
            }
        }
        return 0;
    }

    /// <summary>Waits until the store has sent <paramref name="scripts"/> batch scripts (bounded by count and time).</summary>
    private static async Task SentAsync(RedisCounterStore store, long scripts)
    {
        for (var i = 0; i < 500 && store.BatchScripts < scripts; i++)
            await Task.Delay(10, Ct);
        Assert.Equal(scripts, store.BatchScripts);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ConcurrentCallers_ShareScripts_OnlyWhenBatching(bool batching)
    {
        const int Callers = 64;
        const int CallsEach = 25;
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: TimeSpan.FromSeconds(10), batching: batching ? RedisBatchOptions.Default : RedisBatchOptions.Off);
        var admin = multiplexer.GetServer(server.Endpoint);
        await UpdateAsync(store, Add(Key("warm-up"), 1));
        await admin.ConfigResetStatisticsAsync();
        var key = Key("shared");
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var counts = new System.Collections.Concurrent.ConcurrentBag<ulong>();
        var callers = Enumerable.Range(0, Callers).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            for (var i = 0; i < CallsEach; i++)
                counts.Add((await UpdateAsync(store, Add(key, 1)))[0].Count);
        }, Ct)).ToArray();
        start.SetResult();
        await Task.WhenAll(callers);

        var scripts = await ScriptCallsAsync(admin);
        Assert.Equal(Callers * CallsEach, (long)await multiplexer.GetDatabase().StringGetAsync(key));
        // Each call saw the count its own hit made: every count from 1 to the total, once.
        Assert.Equal(Enumerable.Range(1, Callers * CallsEach).Select(c => (ulong)c), counts.Order());
        if (batching)
        {
            Assert.True(store.IsBatching);
            // 64 callers and at most two batches out: most calls wait in the queue and share a script.
            Assert.InRange(scripts, 1, Callers * CallsEach / 4);
            Assert.Equal(scripts, store.BatchScripts - 1);
            Assert.Equal(Callers * CallsEach + 1, store.BatchedCounters);
            // Their additions to the one counter went as one entry per script.
            Assert.Equal(store.BatchScripts, store.BatchedEntries);
        }
        else
        {
            Assert.Equal(Callers * CallsEach, scripts);
            Assert.Equal(0, store.BatchScripts);
        }
    }

    [Fact]
    public async Task ConcurrentCallers_MixedKeys_GetWhatApplyingTheirUpdatesInTurnGives()
    {
        redis.RequireRedis();
        const int Callers = 48;
        const int CallsEach = 20;
        const ulong Limit = 300;
        var store = new RedisCounterStore(redis.Multiplexer, timeout: TimeSpan.FromSeconds(10));
        string[] plain = [Key("mixed-a"), Key("mixed-b"), Key("mixed-c")];
        var limited = Key("mixed-limited");
        var seen = new System.Collections.Concurrent.ConcurrentBag<(string Key, CounterUpdate Update, CounterResult Result)>();
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var callers = Enumerable.Range(0, Callers).Select(c => Task.Run(async () =>
        {
            await start.Task;
            for (var i = 0; i < CallsEach; i++)
            {
                // Mixed keys and hits; the same counter twice in one call; a conditional one that runs out.
                var a = plain[(c + i) % 3];
                var b = plain[(c + 2 * i + 1) % 3];
                CounterUpdate[] updates = [Add(a, (ulong)(1 + (i % 3))), Add(b, 1), Add(a, 2), AddWithin(limited, (ulong)(1 + (c % 2)), Limit)];
                var results = await UpdateAsync(store, updates);
                for (var u = 0; u < updates.Length; u++)
                    seen.Add((updates[u].Key, updates[u], results[u]));
            }
        }, Ct)).ToArray();
        start.SetResult();
        await Task.WhenAll(callers);

        Assert.True(store.IsBatching);
        Assert.True(store.BatchScripts < Callers * CallsEach, $"{store.BatchScripts} scripts for {Callers * CallsEach} calls");
        var database = redis.Multiplexer.GetDatabase();
        foreach (var group in seen.GroupBy(s => s.Key))
        {
            // Applied in turn: sorted by the count each update saw, every applied update starts where the one
            // before it ended, from zero up to what Redis holds now. Refused ones saw a count + hits over the limit.
            var applied = group.Where(s => s.Result.Applied).OrderBy(s => s.Result.Count).ToList();
            var count = 0ul;
            foreach (var (_, update, result) in applied)
            {
                Assert.Equal(count + update.Hits, result.Count);
                count = result.Count;
            }
            Assert.Equal((long)count, (long)await database.StringGetAsync(group.Key));
            foreach (var (_, update, result) in group.Where(s => !s.Result.Applied))
            {
                Assert.True(update.OnlyIfWithinLimit);
                Assert.True(result.Count > Limit);
            }
        }
        var limitedTotal = (ulong)(long)await database.StringGetAsync(limited);
        // Hits of 1 and 2 against 300: it fills up to the limit, or one short when only 2-hit calls were left.
        Assert.InRange(limitedTotal, Limit - 1, Limit);
        Assert.Contains(seen, s => s.Key == limited && !s.Result.Applied);
    }

    [Fact]
    public async Task HotCounterInOneBatch_IsWrittenOnce_AndEachUpdateSeesTheOnesBeforeIt()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: TimeSpan.FromSeconds(10));
        var admin = multiplexer.GetServer(server.Endpoint);
        await UpdateAsync(store, Add(Key("warm-up"), 1));
        await admin.ConfigResetStatisticsAsync();
        var hot = Key("hot");
        var limited = Key("hot-limited");
        var updates = new List<CounterUpdate>();
        for (var i = 0; i < 40; i++)
        {
            updates.Add(Add(hot, (ulong)(1 + (i % 3))));
            updates.Add(AddWithin(limited, 2, limit: 25));
        }

        var results = await UpdateAsync(store, [.. updates]);

        var count = 0ul;
        var limitedCount = 0ul;
        for (var i = 0; i < 40; i++)
        {
            count += (ulong)(1 + (i % 3));
            Assert.Equal(new CounterResult(count, 0, true), results[2 * i]);
            var admitted = limitedCount + 2 <= 25;
            if (admitted)
                limitedCount += 2;
            Assert.Equal(new CounterResult(admitted ? limitedCount : limitedCount + 2, 0, admitted), results[2 * i + 1]);
        }
        // The hot counter's 40 additions, with only other counters' updates in between, went as one entry: one INCRBY of
        // their sum. The limited one is read once and its admitted additions written in one INCRBY. Both got their expiry
        // from the adds that created them.
        Assert.Equal(1 + 80, store.BatchedCounters); // with the warm-up's
        Assert.Equal(1 + 41, store.BatchedEntries);
        Assert.Equal(2, await CommandCallsAsync(admin, "incrby"));
        Assert.Equal(1, await CommandCallsAsync(admin, "get"));
        Assert.Equal(2, await CommandCallsAsync(admin, "pexpire"));
        var database = multiplexer.GetDatabase();
        Assert.Equal((long)count, (long)await database.StringGetAsync(hot));
        Assert.Equal(24, (long)await database.StringGetAsync(limited));
        Assert.InRange(await RedisCounterStoreTests.PttlAsync(database, hot), TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(2));
        Assert.InRange(await RedisCounterStoreTests.PttlAsync(database, limited), TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(2));
    }

    [Fact]
    public async Task CountsNearRedisLimits_InOneBatch_StayExact_AndAnOverflowSaturates()
    {
        redis.RequireRedis();
        var store = new RedisCounterStore(redis.Multiplexer, timeout: TimeSpan.FromSeconds(10));
        var key = Key("large");
        const ulong Large = 1ul << 52;

        // Past 2^50 the script no longer counts in Lua's doubles but lets Redis add each update exactly.
        var results = await UpdateAsync(store, Add(key, 3), Add(key, Large), Add(key, 5), Add(key, 1));

        Assert.Equal([new(3, 0, true), new(Large + 3, 0, true), new(Large + 8, 0, true), new(Large + 9, 0, true)], results);
        Assert.Equal((long)(Large + 9), (long)await redis.Multiplexer.GetDatabase().StringGetAsync(key));

        // An addition that would overflow Redis's signed 64 bits leaves the counter as it is and answers the saturated
        // count, over any limit, instead of failing its call (which would make the counter unusable until it expires).
        const ulong Saturated = RedisCounterStore.Saturated;
        var overflow = Key("overflow");
        Assert.Equal([new(Saturated, 0, true)], await UpdateAsync(store, Add(overflow, long.MaxValue - 2)));
        Assert.Equal([new(Saturated, 0, true)], await UpdateAsync(store, Add(overflow, 1)));
        // Those two go as one addition of 2 (see RedisBatcher.MergedHitsBound), left out whole; each answers where its
        // own part of the sum ends below the saturated count.
        Assert.Equal([new(Saturated - 1, 0, true), new(Saturated, 0, true)], await UpdateAsync(store, Add(overflow, 1), Add(overflow, 1)));
        Assert.Equal(long.MaxValue - 1, (long)await redis.Multiplexer.GetDatabase().StringGetAsync(overflow));
        await UpdateAsync(store, Add(overflow, 1));
        Assert.Equal([new(Saturated, 0, true)], await UpdateAsync(store, Add(overflow, 1)));
        Assert.Equal(long.MaxValue, (long)await redis.Multiplexer.GetDatabase().StringGetAsync(overflow));
        // A conditional update on it is refused, as over its limit.
        Assert.Equal([new(Saturated + 1, 0, false)], await UpdateAsync(store, AddWithin(overflow, 1, uint.MaxValue)));
    }

    [Fact]
    public async Task AdditionsMerge_OnlyWhileNothingElseTouchesTheirCounter()
    {
        redis.RequireRedis();
        var store = new RedisCounterStore(redis.Multiplexer, timeout: TimeSpan.FromSeconds(10));
        var key = Key("merge");
        var other = Key("merge-other");
        var next = Key("merge-next-window", window: 1_767_225_660);
        CounterUpdate ReadingAsPrevious(ulong hits) => new(next, hits, TimeSpan.FromMinutes(2), PreviousWindowKey: key, PreviousWeight: 0.5);

        var results = await UpdateAsync(
            store,
            Add(key, 1), Add(other, 7), Add(key, 2), // one entry for key: another counter in between does not split it
            AddWithin(key, 1, limit: 3), // a condition on key: its own entry
            Add(key, 1), Add(key, 0), // a read: its own entry, after the addition before it
            Add(key, 5), ReadingAsPrevious(1), // the next window reads key: the addition before it stays before it
            Add(key, 10), Add(key, 20));

        Assert.Equal(
            [
                new(1, 0, true), new(7, 0, true), new(3, 0, true),
                new(4, 0, false),
                new(4, 0, true), new(4, 0, true),
                new(9, 0, true), new(1, 9, true),
                new(19, 0, true), new(39, 0, true),
            ],
            results);
        Assert.Equal(10, store.BatchedCounters);
        Assert.Equal(8, store.BatchedEntries);
        Assert.Equal(39, (long)await redis.Multiplexer.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task RandomBatches_AnswerAsTheMemoryStoreAppliesTheSameUpdatesInTurn()
    {
        redis.RequireRedis();
        var store = new RedisCounterStore(redis.Multiplexer, timeout: TimeSpan.FromSeconds(10));
        var random = new Random(20261127);
        for (var round = 0; round < 150; round++)
        {
            // A few counters, one of them also read as the previous window of another, so that additions merge, are
            // split by conditions, reads and previous-window reads, and sliding windows see merged counts.
            string[] counters = [Key($"r{round}-a"), Key($"r{round}-b"), Key($"r{round}-c")];
            var updates = new CounterUpdate[random.Next(1, 40)];
            for (var u = 0; u < updates.Length; u++)
            {
                var key = counters[random.Next(counters.Length)];
                var hits = (ulong)random.Next(0, 4);
                updates[u] = random.Next(6) switch
                {
                    0 => AddWithin(key, hits, limit: (ulong)random.Next(0, 30)),
                    1 => new CounterUpdate(counters[2], hits, TimeSpan.FromMinutes(2), (ulong)random.Next(0, 30), random.Next(2) == 0,
                        PreviousWindowKey: counters[0], PreviousWeight: random.NextDouble()),
                    _ => Add(key, hits),
                };
            }
            using var memory = new MemoryCounterStore(TimeProvider.System);

            var expected = await UpdateAsync(memory, updates);
            var actual = await UpdateAsync(store, updates);

            Assert.Equal(expected, actual);
        }
        Assert.True(store.BatchedEntries < store.BatchedCounters, $"{store.BatchedEntries} entries for {store.BatchedCounters} updates");
    }

    [Fact]
    public async Task OneBatch_WithRefusedAndAcceptedUpdates()
    {
        redis.RequireRedis();
        var store = new RedisCounterStore(redis.Multiplexer, timeout: TimeSpan.FromSeconds(10));
        var key = Key("refused");
        var other = Key("accepted");

        var results = await UpdateAsync(store, AddWithin(key, 10, limit: 5), Add(other, 2), AddWithin(key, 3, limit: 5), AddWithin(key, 3, limit: 5), Add(other, 1), AddWithin(key, 0, limit: 5));

        Assert.Equal(1, store.BatchScripts);
        Assert.Equal(
            [new(10, 0, false), new(2, 0, true), new(3, 0, true), new(6, 0, false), new(3, 0, true), new(3, 0, true)],
            results);
        Assert.Equal(3, (long)await redis.Multiplexer.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task CallsQueuedBehindAFrozenBatch_GoTogether_AndAWrongTypeKeyFailsOnlyItsCall()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: TimeSpan.FromSeconds(20), batching: new RedisBatchOptions(MaxInFlight: 1));
        var poisoned = Key("secret-api-key-4711");
        await multiplexer.GetDatabase().ListLeftPushAsync(poisoned, "not a counter");
        await UpdateAsync(store, Add(Key("warm-up"), 1));

        Task<CounterResult[]> first, bad, good, refused;
        server.Freeze();
        try
        {
            first = UpdateAsync(store, Add(Key("first"), 1));
            await SentAsync(store, 2);
            bad = UpdateAsync(store, Add(Key("bad-neighbour"), 1), Add(poisoned, 1));
            good = UpdateAsync(store, Add(Key("good"), 1), Add(Key("good"), 4));
            refused = UpdateAsync(store, AddWithin(Key("good"), 100, limit: 10));
            Assert.Equal(2, store.BatchScripts);
        }
        finally
        {
            server.Thaw();
        }

        Assert.Equal([new CounterResult(1, 0, true)], await first);
        var error = await Assert.ThrowsAsync<CounterStoreException>(() => bad);
        Assert.Contains("WRONGTYPE", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-api-key", error.Message + error.InnerException?.Message, StringComparison.Ordinal);
        Assert.Equal([new CounterResult(1, 0, true), new CounterResult(5, 0, true)], await good);
        Assert.Equal([new CounterResult(105, 0, false)], await refused);
        // The three queued calls went in one script; the failed call's other update was applied, as it would alone.
        Assert.Equal(3, store.BatchScripts);
        Assert.Equal(1, (long)await multiplexer.GetDatabase().StringGetAsync(Key("bad-neighbour")));
    }

    [Fact]
    public async Task CallerThatGivesUp_NeverHasItsBuffersWrittenLater()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var timeout = TimeSpan.FromMilliseconds(500);
        var store = new RedisCounterStore(multiplexer, timeout: timeout, batching: new RedisBatchOptions(MaxInFlight: 1));
        await UpdateAsync(store, Add(Key("warm-up"), 1));

        // One call in flight and one queued behind it, both timing out; one queued call cancelled by its caller.
        var inFlight = new CounterResult[1];
        var queued = new CounterResult[1];
        var cancelled = new CounterResult[2];
        Array.Fill(inFlight, Sentinel);
        Array.Fill(queued, Sentinel);
        Array.Fill(cancelled, Sentinel);
        using var cancel = new CancellationTokenSource();
        server.Freeze();
        try
        {
            var first = store.UpdateAsync(new[] { Add(Key("in-flight"), 1) }, inFlight, Ct).AsTask();
            await SentAsync(store, 2);
            var second = store.UpdateAsync(new[] { Add(Key("queued"), 1) }, queued, Ct).AsTask();
            var third = store.UpdateAsync(new[] { Add(Key("cancelled"), 1), Add(Key("cancelled"), 1) }, cancelled, cancel.Token).AsTask();
            await cancel.CancelAsync();

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
            var clock = Stopwatch.StartNew();
            await Assert.ThrowsAsync<CounterStoreException>(() => first);
            await Assert.ThrowsAsync<CounterStoreException>(() => second);
            Assert.InRange(clock.Elapsed, TimeSpan.Zero, timeout + TimeSpan.FromSeconds(2));
            // As a pooled buffer would be: the next user fills it.
            Array.Fill(inFlight, Sentinel);
            Array.Fill(queued, Sentinel);
        }
        finally
        {
            server.Thaw();
        }

        // Replies come in order on the connection: once a later call is answered, so are the scripts sent before it.
        var after = await EventuallyAsync(store, Add(Key("after"), 1));
        Assert.True(after.Applied);
        Assert.Equal([new CounterResult(after.Count + 1, 0, true)], await UpdateAsync(store, Add(Key("after"), 1)));

        Assert.Equal(Sentinel, inFlight[0]);
        Assert.Equal(Sentinel, queued[0]);
        Assert.All(cancelled, r => Assert.Equal(Sentinel, r));
        // The call cancelled while queued was never sent; the timed-out ones may have been (Redis cannot withdraw them).
        var database = multiplexer.GetDatabase();
        Assert.False(await database.KeyExistsAsync(Key("cancelled")));
        Assert.Equal(1, (long)await database.StringGetAsync(Key("in-flight")));
        Assert.InRange((long)await database.StringGetAsync(Key("queued")), 0, 1);
    }

    [Fact]
    public async Task EachCallerOfABatch_LeavesAtItsOwnDeadline_AndAQueuedCallAtItsOwnToo()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        var timeout = TimeSpan.FromMilliseconds(500);
        var store = new RedisCounterStore(multiplexer, timeout: timeout, timeProvider: time, batching: new RedisBatchOptions(MaxInFlight: 1));
        await UpdateAsync(store, Add(Key("warm-up"), 1));

        var hung = new CounterResult[1];
        var early = new CounterResult[1];
        var late = new CounterResult[1];
        var last = new CounterResult[1];
        Array.Fill(hung, Sentinel);
        Array.Fill(early, Sentinel);
        Array.Fill(late, Sentinel);
        Array.Fill(last, Sentinel);
        server.Freeze();
        try
        {
            // t=0 a batch goes out and hangs; t=100 and t=300 two calls queue behind it; t=450 one more.
            var first = store.UpdateAsync(new[] { Add(Key("hung"), 1) }, hung, Ct).AsTask();
            await SentAsync(store, 2);
            time.Advance(TimeSpan.FromMilliseconds(100));
            var second = store.UpdateAsync(new[] { Add(Key("early"), 1) }, early, Ct).AsTask();
            time.Advance(TimeSpan.FromMilliseconds(200));
            var third = store.UpdateAsync(new[] { Add(Key("late"), 1) }, late, Ct).AsTask();
            time.Advance(TimeSpan.FromMilliseconds(150));
            var fourth = store.UpdateAsync(new[] { Add(Key("last"), 1) }, last, Ct).AsTask();

            time.Advance(TimeSpan.FromMilliseconds(49));
            Assert.False(first.IsCompleted);
            // t=500: the hung batch's caller leaves, which frees its slot: the three queued calls go as one batch.
            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.True((await Assert.ThrowsAsync<CounterStoreException>(() => first)).TimedOut);
            await SentAsync(store, 3);
            Assert.False(second.IsCompleted);

            // Then each leaves at its own deadline, 500 ms after it was called, not at the batch's first.
            time.Advance(TimeSpan.FromMilliseconds(99));
            Assert.False(second.IsCompleted);
            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.True((await Assert.ThrowsAsync<CounterStoreException>(() => second)).TimedOut);
            time.Advance(TimeSpan.FromMilliseconds(199));
            Assert.False(third.IsCompleted);
            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.True((await Assert.ThrowsAsync<CounterStoreException>(() => third)).TimedOut);
            time.Advance(TimeSpan.FromMilliseconds(149));
            Assert.False(fourth.IsCompleted);
            time.Advance(TimeSpan.FromMilliseconds(1));
            Assert.True((await Assert.ThrowsAsync<CounterStoreException>(() => fourth)).TimedOut);
            Assert.Equal(3, store.BatchScripts);
        }
        finally
        {
            server.Thaw();
        }

        // Redis answers the two scripts after all: nobody waits for them, and no caller's buffer is written.
        Assert.True((await EventuallyAsync(store, Add(Key("after"), 1))).Applied);
        Assert.Equal(Sentinel, hung[0]);
        Assert.Equal(Sentinel, early[0]);
        Assert.Equal(Sentinel, late[0]);
        Assert.Equal(Sentinel, last[0]);
    }

    [Fact]
    public async Task ABatchNobodyWaitsForAnyMore_NoLongerHoldsItsSlot()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: TimeSpan.FromMilliseconds(300), batching: new RedisBatchOptions(MaxInFlight: 1));
        await UpdateAsync(store, Add(Key("warm-up"), 1));

        server.Freeze();
        try
        {
            await Assert.ThrowsAsync<CounterStoreException>(() => UpdateAsync(store, Add(Key("hung"), 1)));
            Assert.Equal(2, store.BatchScripts);

            // The hung batch's only caller gave up, so the next call goes out at once instead of queueing behind it
            // until Redis answers (it then times out too: Redis is still frozen).
            await Assert.ThrowsAsync<CounterStoreException>(() => UpdateAsync(store, Add(Key("next"), 1)));
            Assert.Equal(3, store.BatchScripts);
        }
        finally
        {
            server.Thaw();
        }
        Assert.True((await EventuallyAsync(store, Add(Key("next"), 1))).Applied);
    }

    [Fact]
    public async Task RedisKilledUnderLoad_CallersFailWithinTheTimeout_AndTheStoreRecovers()
    {
        var timeout = TimeSpan.FromMilliseconds(750);
        var failureBound = timeout + TimeSpan.FromSeconds(2);
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: timeout);
        await UpdateAsync(store, Add(Key("warm-up"), 1));
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var failures = 0;
        var successes = 0;

        var callers = Enumerable.Range(0, 16).Select(c => Task.Run(async () =>
        {
            // Bounded by count: calls before, during and after the kill.
            for (var i = 0; i < 400 && !(killed.Task.IsCompleted && Volatile.Read(ref failures) > 32); i++)
            {
                var clock = Stopwatch.StartNew();
                try
                {
                    await UpdateAsync(store, Add(Key("load-" + (c % 4)), 1), Add(Key("load-shared"), 1));
                    Interlocked.Increment(ref successes);
                }
                catch (CounterStoreException)
                {
                    Interlocked.Increment(ref failures);
                    Assert.InRange(clock.Elapsed, TimeSpan.Zero, failureBound);
                }
            }
        }, Ct)).ToArray();
        for (var i = 0; i < 500 && Volatile.Read(ref successes) < 200; i++)
            await Task.Delay(5, Ct);
        server.Kill();
        killed.SetResult();
        await Task.WhenAll(callers);

        Assert.InRange(failures, 1, int.MaxValue);
        // Two counters a call: fewer scripts than calls means calls shared scripts.
        Assert.True(store.BatchScripts < store.BatchedCounters / 2, $"{store.BatchScripts} scripts for {store.BatchedCounters / 2} calls");
        await server.StartAsync(Ct);
        var first = await EventuallyAsync(store, Add(Key("after-restart"), 1));
        Assert.True(first.Applied);
        var again = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => UpdateAsync(store, Add(Key("after-restart"), 1))));
        Assert.Equal(Enumerable.Range(1, 32).Select(i => first.Count + (ulong)i), again.Select(r => r[0].Count).Order());
    }

    [Fact]
    public async Task RedisDownAtStart_UsesTheScriptPerCounterPath_ThenBatchesOnceAServerIsConnected()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: TimeSpan.FromMilliseconds(500));

        await Assert.ThrowsAsync<CounterStoreException>(() => UpdateAsync(store, Add(Key("cold"), 1)));
        Assert.False(store.IsBatching);
        Assert.Equal(0, store.BatchScripts);

        await server.StartAsync(Ct);
        await EventuallyAsync(store, Add(Key("cold"), 1));
        Assert.True(store.IsBatching);
        Assert.Equal([new CounterResult(1, 0, true)], await UpdateAsync(store, Add(Key("warm"), 1)));
        Assert.InRange(store.BatchScripts, 1, long.MaxValue);
    }

    private static async Task<CounterResult> EventuallyAsync(ICounterStore store, CounterUpdate update)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                return (await UpdateAsync(store, update))[0];
            }
            catch (CounterStoreException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, Ct);
            }
        }
    }
}
