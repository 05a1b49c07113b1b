using Legate.RateLimit.Stores;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// What every <see cref="ICounterStore"/> must do, run against each store by a derived class: memory, Redis, Redis Cluster.
/// </summary>
public abstract class CounterStoreContractTests
{
    /// <summary>2026-01-01T00:00:00Z, a window start.</summary>
    protected const long Window = 1_767_225_600;

    protected static readonly TimeSpan Minutes = TimeSpan.FromMinutes(2);

    // Unique per test, so tests sharing a Redis never see each other's counters.
    private readonly string _prefix = "legate:rl:test:" + Guid.NewGuid().ToString("N") + ":";

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// The store under test; a Redis-backed one skips the test here when there is no Redis. One created lazily is resolved
    /// once before concurrent use (see the parallel tests).
    /// </summary>
    protected abstract ICounterStore Store { get; }

    /// <summary>Asserts the counter at <paramref name="key"/> exists and ends no later than <paramref name="ttl"/> from now.</summary>
    protected abstract Task AssertExpiresWithinAsync(string key, TimeSpan ttl);

    /// <summary>Lets <paramref name="duration"/> pass (a fake clock, or real time for Redis).</summary>
    protected abstract Task PassAsync(TimeSpan duration);

    /// <summary>A counter key: <c>{prefix}{domain|name=…}:m:{window}</c>. Every window of one name shares the hash tag.</summary>
    protected string Key(string name, long window = Window) =>
        CounterKey.Build(_prefix, "domain", new KeyValuePair<string, string>[] { new("name", name) }, "m", window);

    protected static CounterUpdate Add(string key, ulong hits, TimeSpan? ttl = null) => new(key, hits, ttl ?? Minutes);

    protected static CounterUpdate AddWithin(string key, ulong hits, ulong limit, string? previousKey = null, double weight = 0, TimeSpan? ttl = null) =>
        new(key, hits, ttl ?? Minutes, limit, OnlyIfWithinLimit: true, previousKey, weight);

    protected async Task<CounterResult[]> UpdateAsync(params CounterUpdate[] updates)
    {
        var results = new CounterResult[updates.Length];
        await Store.UpdateAsync(updates, results, Ct);
        return results;
    }

    protected async Task<CounterResult> UpdateOneAsync(CounterUpdate update) => (await UpdateAsync(update))[0];

    protected async Task<ulong> ReadAsync(string key) => (await UpdateOneAsync(Add(key, 0))).Count;

    /// <summary>Rules of the limiter tests: <c>a</c> 1/min, <c>b</c> 10/min, <c>s</c> 10/min in a sliding window.</summary>
    protected const string LimiterRules = """
        domain: edge
        descriptors:
          - key: a
            rate_limit: { unit: minute, requests_per_unit: 1 }
          - key: b
            rate_limit: { unit: minute, requests_per_unit: 10 }
          - key: s
            rate_limit: { unit: minute, requests_per_unit: 10, algorithm: sliding_window }
          - key: n
            rate_limit: { unit: minute, requests_per_unit: 20 }
          - key: big
            rate_limit: { unit: hour, requests_per_unit: 1000000 }
        """;

    /// <summary>The key of a limiter's one-entry descriptor in a minute window (its clock is at <see cref="Window"/>).</summary>
    protected string LimiterKey(string key, string value) =>
        CounterKey.Build(_prefix, "edge", new KeyValuePair<string, string>[] { new(key, value) }, "m", Window);

    /// <summary>The same in an hour window (the limiter's clock is at the start of a day, so of an hour too).</summary>
    protected string LimiterKeyHour(string key, string value) =>
        CounterKey.Build(_prefix, "edge", new KeyValuePair<string, string>[] { new(key, value) }, "h", Window);

    /// <summary>A <see cref="RateLimiter"/> on <see cref="Store"/>, its counters under this test's prefix.</summary>
    protected StoreLimiter Limiter(bool countRejectedHits = true, string rules = LimiterRules) => new(Store, rules, _prefix, countRejectedHits);

    [Fact]
    public async Task Increment_AddsHitsAndReturnsTheCount()
    {
        var key = Key("increment");

        Assert.Equal(new CounterResult(1, 0, true), await UpdateOneAsync(Add(key, 1)));
        Assert.Equal(new CounterResult(3, 0, true), await UpdateOneAsync(Add(key, 2)));
        Assert.Equal(new CounterResult(10, 0, true), await UpdateOneAsync(Add(key, 7)));
    }

    [Fact]
    public async Task ZeroHits_ReadsWithoutChanging()
    {
        var key = Key("read");

        Assert.Equal(new CounterResult(0, 0, true), await UpdateOneAsync(Add(key, 0)));
        await UpdateOneAsync(Add(key, 4));
        Assert.Equal(4ul, await ReadAsync(key));
        Assert.Equal(4ul, await ReadAsync(key));
    }

    [Fact]
    public async Task Expiry_IsSetOnCreation_AndNotExtendedByLaterIncrements()
    {
        var key = Key("ttl");

        await UpdateOneAsync(Add(key, 1, TimeSpan.FromSeconds(30)));
        await UpdateOneAsync(Add(key, 1, TimeSpan.FromHours(1)));
        await UpdateOneAsync(AddWithin(key, 1, 100, ttl: TimeSpan.FromHours(1)));

        await AssertExpiresWithinAsync(key, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task ExpiredCounter_StartsAgainFromZero()
    {
        var key = Key("expired");
        await UpdateOneAsync(Add(key, 5, TimeSpan.FromMilliseconds(300)));

        await PassAsync(TimeSpan.FromMilliseconds(600));

        Assert.Equal(0ul, await ReadAsync(key));
        Assert.Equal(new CounterResult(1, 0, true), await UpdateOneAsync(Add(key, 1)));
        await AssertExpiresWithinAsync(key, Minutes);
    }

    [Fact]
    public async Task OnlyIfWithinLimit_RefusesWithoutCounting()
    {
        var key = Key("conditional");

        Assert.Equal(new CounterResult(3, 0, true), await UpdateOneAsync(AddWithin(key, 3, limit: 5)));
        Assert.Equal(new CounterResult(6, 0, false), await UpdateOneAsync(AddWithin(key, 3, limit: 5)));
        Assert.Equal(3ul, await ReadAsync(key));
        Assert.Equal(new CounterResult(5, 0, true), await UpdateOneAsync(AddWithin(key, 2, limit: 5)));
        Assert.Equal(new CounterResult(6, 0, false), await UpdateOneAsync(AddWithin(key, 1, limit: 5)));
        Assert.Equal(new CounterResult(5, 0, true), await UpdateOneAsync(AddWithin(key, 0, limit: 5)));
        Assert.Equal(5ul, await ReadAsync(key));
    }

    [Fact]
    public async Task OnlyIfWithinLimit_RefusedFirstUpdate_CreatesNoCounter()
    {
        var key = Key("refused-first");

        Assert.Equal(new CounterResult(10, 0, false), await UpdateOneAsync(AddWithin(key, 10, limit: 5)));
        Assert.Equal(0ul, await ReadAsync(key));
        Assert.Equal(new CounterResult(5, 0, true), await UpdateOneAsync(AddWithin(key, 5, limit: 5)));
    }

    [Fact]
    public async Task Unconditional_CountsPastTheLimit()
    {
        var key = Key("unconditional");

        await UpdateOneAsync(Add(key, 5));
        var result = await UpdateOneAsync(new CounterUpdate(key, 3, Minutes, Limit: 5));

        Assert.Equal(new CounterResult(8, 0, true), result);
    }

    [Fact]
    public async Task SlidingWindow_ReadsThePreviousWindow_AndWeighsIt()
    {
        var previous = Key("sliding", Window);
        var current = Key("sliding", Window + 60);
        await UpdateOneAsync(Add(previous, 10));

        // 0 + 5 + floor(10 × 0.5) = 10 ≤ 10
        Assert.Equal(new CounterResult(5, 10, true), await UpdateOneAsync(AddWithin(current, 5, 10, previous, 0.5)));
        // 5 + 1 + 5 = 11 > 10
        Assert.Equal(new CounterResult(6, 10, false), await UpdateOneAsync(AddWithin(current, 1, 10, previous, 0.5)));
        // floor(10 × 0.35) = 3: 5 + 2 + 3 = 10 ≤ 10 — the weighted share is floored, not rounded
        Assert.Equal(new CounterResult(7, 10, true), await UpdateOneAsync(AddWithin(current, 2, 10, previous, 0.35)));
        // The previous window is only read.
        Assert.Equal(10ul, await ReadAsync(previous));
        // A plain read reports the previous count too.
        Assert.Equal(new CounterResult(7, 10, true), await UpdateOneAsync(new CounterUpdate(current, 0, Minutes, PreviousWindowKey: previous, PreviousWeight: 0.5)));
    }

    [Fact]
    public async Task SlidingWindow_InOneCall_SeesAddsToThePreviousWindowMadeBeforeIt()
    {
        // A call that spans a window boundary (or a batch of calls from both sides of one): the previous window is
        // another update's counter in the same call, and each update sees the ones before it.
        var previous = Key("sliding-one-call", Window);
        var current = Key("sliding-one-call", Window + 60);

        var results = await UpdateAsync(Add(previous, 4), AddWithin(current, 5, 10, previous, 0.5), Add(previous, 6), AddWithin(current, 1, 10, previous, 0.5));

        // 0 + 5 + floor(4 × 0.5) = 7 ≤ 10; then 5 + 1 + floor(10 × 0.5) = 11 > 10.
        Assert.Equal([new(4, 0, true), new(5, 4, true), new(10, 0, true), new(6, 10, false)], results);
        Assert.Equal(10ul, await ReadAsync(previous));
        Assert.Equal(5ul, await ReadAsync(current));
    }

    [Fact]
    public async Task SlidingWindow_MissingPreviousWindow_ReadsZero()
    {
        var previous = Key("sliding-missing", Window);
        var current = Key("sliding-missing", Window + 60);

        Assert.Equal(new CounterResult(10, 0, true), await UpdateOneAsync(AddWithin(current, 10, 10, previous, 1)));
        Assert.Equal(new CounterResult(11, 0, false), await UpdateOneAsync(AddWithin(current, 1, 10, previous, 1)));
    }

    [Fact]
    public async Task SlidingWindow_ExpiredPreviousWindow_ReadsZero()
    {
        var previous = Key("sliding-expired", Window);
        var current = Key("sliding-expired", Window + 60);
        await UpdateOneAsync(Add(previous, 10, TimeSpan.FromMilliseconds(300)));

        await PassAsync(TimeSpan.FromMilliseconds(600));

        Assert.Equal(new CounterResult(10, 0, true), await UpdateOneAsync(AddWithin(current, 10, 10, previous, 1)));
    }

    [Fact]
    public async Task ManyUpdatesInOneCall_KeepTheirOrder()
    {
        var updates = new List<CounterUpdate>();
        for (var i = 0; i < 40; i++)
            updates.Add(Add(Key("batch-" + i), (ulong)i + 1));
        // The same counter twice in one call: applied in order.
        updates.Add(Add(Key("batch-3"), 100));
        updates.Add(AddWithin(Key("batch-4"), 1, limit: 5));
        updates.Add(AddWithin(Key("batch-5"), 1, limit: 5));

        var results = await UpdateAsync([.. updates]);

        for (var i = 0; i < 40; i++)
            Assert.Equal(new CounterResult((ulong)i + 1, 0, true), results[i]);
        Assert.Equal(new CounterResult(104, 0, true), results[40]);
        Assert.Equal(new CounterResult(6, 0, false), results[41]);
        Assert.Equal(new CounterResult(7, 0, false), results[42]);
    }

    [Fact]
    public async Task HugeHits_AreOverAnyLimit_AndTheCounterKeepsAnswering()
    {
        // A descriptor's hits_addend is a uint64: every store answers such an addition, and each one after it, as over
        // any limit (limits are uint32), whatever its own arithmetic stops at (Redis counts in signed 64 bits).
        var key = Key("huge");

        var first = await UpdateOneAsync(Add(key, ulong.MaxValue));
        var next = await UpdateOneAsync(Add(key, 1));
        var conditional = await UpdateOneAsync(AddWithin(key, 1, uint.MaxValue));

        Assert.True(first.Applied && first.Count > uint.MaxValue, first.ToString());
        Assert.True(next.Applied && next.Count > uint.MaxValue, next.ToString());
        Assert.True(!conditional.Applied && conditional.Count > uint.MaxValue, conditional.ToString());
        Assert.True(await ReadAsync(key) > uint.MaxValue);

        // Refused, they count nothing.
        var refused = Key("huge-refused");
        Assert.Equal(new CounterResult(ulong.MaxValue, 0, false), await UpdateOneAsync(AddWithin(refused, ulong.MaxValue, uint.MaxValue)));
        Assert.Equal(0ul, await ReadAsync(refused));
    }

    [Theory]
    [InlineData("b")]
    [InlineData("s")]
    public async Task Limiter_HugeHitsAddend_IsOverLimit_AndSoIsTheNextCall(string descriptor)
    {
        using var limiter = Limiter();

        var huge = await limiter.CallAsync(Ct, (descriptor, "x", ulong.MaxValue));
        var next = await limiter.CallAsync(Ct, (descriptor, "x", null));
        var check = await limiter.CallAsync(Ct, (descriptor, "x", 0));

        Assert.Equal(Code.OverLimit, huge.OverallCode);
        Assert.Equal(Code.OverLimit, next.OverallCode);
        Assert.Equal(Code.OverLimit, check.OverallCode);
        Assert.All([huge, next, check], r => Assert.Equal(0u, r.Statuses[0].LimitRemaining));
        Assert.All([huge, next, check], r => Assert.Equal(60u, r.Statuses[0].DurationUntilReset.Seconds));
        // The call counted 2^32 hits, more than any limit, and far from where a counter overflows.
        Assert.Equal(RateLimiter.MaxHitsPerDescriptor + 1, await ReadAsync(LimiterKey(descriptor, "x")));
    }

    [Fact]
    public async Task Limiter_HugeHitsAddend_NotCountingRejectedHits_LeavesTheCounterAsItWas()
    {
        using var limiter = Limiter(countRejectedHits: false);

        var huge = await limiter.CallAsync(Ct, ("b", "x", ulong.MaxValue));
        var next = await limiter.CallAsync(Ct, ("b", "x", null));

        Assert.Equal(Code.OverLimit, huge.OverallCode);
        Assert.Equal(Code.Ok, next.OverallCode);
        Assert.Equal(9u, next.Statuses[0].LimitRemaining);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Limiter_NotCountingRejectedHits_ARejectedRequestCountsAgainstNoneOfItsCounters(bool overLimitFirst)
    {
        // a: 1 a minute, b: 10. Five calls with both: the first is admitted; the four rejected by a count nowhere,
        // in either descriptor order (as envoyproxy/ratelimit's STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT).
        using var limiter = Limiter(countRejectedHits: false);
        (string, string, ulong?)[] request = overLimitFirst ? [("a", "p", null), ("b", "p", null)] : [("b", "p", null), ("a", "p", null)];
        var codes = new List<Code>();
        Envoy.Service.Ratelimit.V3.RateLimitResponse last = null!;
        for (var i = 0; i < 5; i++)
        {
            last = await limiter.CallAsync(Ct, request);
            codes.Add(last.OverallCode);
        }

        Assert.Equal([Code.Ok, Code.OverLimit, Code.OverLimit, Code.OverLimit, Code.OverLimit], codes);
        Assert.Equal(9u, last.Statuses[overLimitFirst ? 1 : 0].LimitRemaining);
        Assert.Equal(1ul, await ReadAsync(LimiterKey("a", "p")));
        Assert.Equal(1ul, await ReadAsync(LimiterKey("b", "p")));
    }

    [Fact]
    public async Task Limiter_CountingRejectedHits_ByDefault_CountsEveryDescriptor()
    {
        using var limiter = Limiter();
        for (var i = 0; i < 5; i++)
            await limiter.CallAsync(Ct, ("a", "q", null), ("b", "q", null));

        Assert.Equal(5ul, await ReadAsync(LimiterKey("a", "q")));
        Assert.Equal(5ul, await ReadAsync(LimiterKey("b", "q")));
    }

    [Fact]
    public async Task Limiter_NotCountingRejectedHits_ParallelCallers_AdmitExactlyTheLimit_AndCountOnlyWhatTheyAdmit()
    {
        // n: 20 a minute; big: effectively unlimited, 2 hits a call. Only admitted calls may count on big (the race
        // between the reading and the counting pass can only over-count a refused call's other counters).
        using var limiter = Limiter(countRejectedHits: false);
        var admitted = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, 32), new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = Ct }, async (_, ct) =>
        {
            for (var i = 0; i < 5; i++)
            {
                if ((await limiter.CallAsync(ct, ("n", "r", null), ("big", "r", 2))).OverallCode == Code.Ok)
                    Interlocked.Increment(ref admitted);
            }
        });

        Assert.Equal(20, admitted);
        Assert.Equal(20ul, await ReadAsync(LimiterKey("n", "r")));
        var big = await ReadAsync(LimiterKeyHour("big", "r"));
        Assert.InRange(big, 40ul, 2ul * 160);
    }

    [Fact]
    public async Task EmptyCall_DoesNothing()
    {
        await Store.UpdateAsync(ReadOnlyMemory<CounterUpdate>.Empty, Memory<CounterResult>.Empty, Ct);
    }

    [Fact]
    public async Task TooFewResultSlots_IsRejected()
    {
        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await Store.UpdateAsync(new[] { Add(Key("slots"), 1), Add(Key("slots"), 1) }, new CounterResult[1], Ct));
    }

    [Fact]
    public async Task SameHashTag_DifferentWindows_AreSeparateCounters()
    {
        var first = Key("windows", Window);
        var second = Key("windows", Window + 60);
        Assert.Equal(first[..first.IndexOf('}', StringComparison.Ordinal)], second[..second.IndexOf('}', StringComparison.Ordinal)]);

        var results = await UpdateAsync(Add(first, 3), Add(second, 5), Add(first, 1));

        Assert.Equal([new(3, 0, true), new(5, 0, true), new(4, 0, true)], results);
        Assert.Equal(4ul, await ReadAsync(first));
        Assert.Equal(5ul, await ReadAsync(second));
    }

    [Fact]
    public async Task ParallelCallers_WithOnlyIfWithinLimit_AdmitExactlyTheLimit()
    {
        const int Callers = 64;
        const int HitsEach = 25;
        const ulong Limit = 1000;
        var key = Key("race-conditional");
        // Resolved once, before the callers start: a store that subclasses create lazily must not be created twice
        // (two write-behind stores are two replicas, which may count apart until they sync).
        var store = Store;
        var admitted = 0;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var callers = Enumerable.Range(0, Callers).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            var results = new CounterResult[1];
            var update = new[] { AddWithin(key, 1, Limit) };
            for (var i = 0; i < HitsEach; i++)
            {
                await store.UpdateAsync(update, results, Ct);
                if (results[0].Applied)
                    Interlocked.Increment(ref admitted);
            }
        }, Ct)).ToArray();
        start.SetResult();
        await Task.WhenAll(callers);

        Assert.Equal((int)Limit, admitted);
        Assert.Equal(Limit, await ReadAsync(key));
    }

    [Fact]
    public async Task ParallelCallers_Unconditional_CountEveryHit()
    {
        const int Callers = 64;
        const int HitsEach = 25;
        var key = Key("race-unconditional");
        // Resolved once, before the callers start: a store that subclasses create lazily must not be created twice
        // (two write-behind stores are two replicas, which may count apart until they sync).
        var store = Store;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var callers = Enumerable.Range(0, Callers).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            var results = new CounterResult[1];
            var update = new[] { Add(key, 1) };
            for (var i = 0; i < HitsEach; i++)
                await store.UpdateAsync(update, results, Ct);
        }, Ct)).ToArray();
        start.SetResult();
        await Task.WhenAll(callers);

        Assert.Equal((ulong)(Callers * HitsEach), await ReadAsync(key));
    }
}
