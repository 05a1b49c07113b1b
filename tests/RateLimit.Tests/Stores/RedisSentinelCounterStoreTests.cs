using Legate.RateLimit.Stores;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// The contract through Redis Sentinel: the configuration names the sentinel and the service
/// (<c>127.0.0.1:26379,serviceName=…</c>) and the shared multiplexer finds the primary through it.
/// </summary>
public sealed class RedisSentinelCounterStoreTests(RedisSentinelFixture sentinel) : CounterStoreContractTests, IClassFixture<RedisSentinelFixture>
{
    private RedisCounterStore? _store;

    protected override ICounterStore Store => _store ??= new RedisCounterStore(sentinel.Multiplexer, timeout: TimeSpan.FromSeconds(10));

    protected override async Task AssertExpiresWithinAsync(string key, TimeSpan ttl) =>
        Assert.InRange(await RedisCounterStoreTests.PttlAsync(sentinel.Multiplexer.GetDatabase(), key), TimeSpan.FromMilliseconds(1), ttl);

    protected override Task PassAsync(TimeSpan duration) => Task.Delay(duration, Ct);

    [Fact]
    public async Task Counters_AreWrittenOnThePrimaryTheSentinelNames()
    {
        var key = Key("on-primary");

        await UpdateAsync(Add(key, 3));

        await using var primary = await ConnectionMultiplexer.ConnectAsync(sentinel.Primary.Endpoint);
        Assert.Equal(sentinel.Primary.Port, await sentinel.PrimaryPortAsync());
        Assert.Equal(3, (long)await primary.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task ThePrimary_GetsBatches()
    {
        await UpdateAsync(Add(Key("batched"), 1), Add(Key("batched"), 2));

        var store = (RedisCounterStore)Store;
        Assert.True(store.IsBatching);
        Assert.Equal(1, store.BatchScripts);
        Assert.Equal(2, store.BatchedCounters);
    }
}

/// <summary>A Sentinel failover while the store is in use: counting goes on, on the new primary, with the replicated counts.</summary>
public sealed class RedisSentinelFailoverTests(RedisSentinelFixture sentinel) : IClassFixture<RedisSentinelFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AfterAFailover_TheStoreCountsOnTheNewPrimary()
    {
        var store = new RedisCounterStore(sentinel.Multiplexer, timeout: TimeSpan.FromSeconds(2));
        var key = CounterKey.Build("legate:rl:test:", "domain", new KeyValuePair<string, string>[] { new("name", "failover") }, "m", 1_767_225_600);
        var update = new CounterUpdate[] { new(key, 5, TimeSpan.FromMinutes(5)) };
        var results = new CounterResult[1];
        await store.UpdateAsync(update, results, Ct);
        Assert.Equal(5ul, results[0].Count);
        // The replica must hold the count before it is promoted, as it would after Redis's usual replication lag. On a
        // loaded machine the replica may still be in its first sync: WAIT answers how many replicas acknowledged, and a
        // failover before that would promote a replica without the count (seen once in a full test run).
        var acknowledged = 0L;
        for (var attempt = 0; attempt < 30 && acknowledged < 1; attempt++)
            acknowledged = (long)await sentinel.Multiplexer.GetDatabase().ExecuteAsync("WAIT", 1, 1000);
        Assert.Equal(1, acknowledged);

        await sentinel.FailoverAsync();

        // The sentinel promotes the replica, then demotes the old primary and tells its clients; the multiplexer
        // follows. Until the old primary is demoted it still takes writes, which its resync then drops: Redis's
        // replication is asynchronous, so a failover can lose the counts of its own few hundred milliseconds.
        // Calls may fail meanwhile (UNAVAILABLE to Envoy); bounded by count and time, the store must come back.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        // The sentinel closes the old primary's client connections when it demotes it, which can fall in the middle of
        // this connect or a question: the connection is not given up on, and a question it cuts short is asked again.
        await using (var old = await ConnectionMultiplexer.ConnectAsync(sentinel.Primary.Endpoint + ",allowAdmin=true,abortConnect=false"))
        {
            while (!await FailedOverAsync(old))
            {
                Assert.True(DateTime.UtcNow < deadline, "the sentinel did not complete the failover within 30 s");
                await Task.Delay(100, Ct);
            }
        }
        ulong? count = null;
        for (var attempt = 0; attempt < 300 && DateTime.UtcNow < deadline && count is null; attempt++)
        {
            try
            {
                await store.UpdateAsync(update, results, Ct);
                count = results[0].Count;
            }
            catch (CounterStoreException)
            {
                await Task.Delay(100, Ct);
            }
        }

        Assert.Equal(10ul, count);
        await using var promoted = await ConnectionMultiplexer.ConnectAsync(sentinel.Replica.Endpoint);
        Assert.Equal(10, (long)await promoted.GetDatabase().StringGetAsync(key));

        async Task<bool> FailedOverAsync(ConnectionMultiplexer old)
        {
            try
            {
                return await sentinel.PrimaryPortAsync() == sentinel.Replica.Port
                    && (await old.GetServer(sentinel.Primary.Endpoint).RoleAsync()).Value == "slave";
            }
            catch (Exception e) when (e is RedisConnectionException or RedisTimeoutException)
            {
                return false;
            }
        }
    }
}
