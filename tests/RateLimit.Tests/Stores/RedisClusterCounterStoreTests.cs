using Legate.RateLimit.Stores;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// The contract on a three-node Redis Cluster: a script touches one counter and its previous window, which share a
/// hash tag, so it never crosses slots; a call's updates spread over every shard.
/// </summary>
public sealed class RedisClusterCounterStoreTests(RedisClusterFixture cluster) : CounterStoreContractTests, IClassFixture<RedisClusterFixture>
{
    private RedisCounterStore? _store;

    protected override ICounterStore Store => _store ??= new RedisCounterStore(cluster.Multiplexer, timeout: TimeSpan.FromSeconds(10));

    protected override async Task AssertExpiresWithinAsync(string key, TimeSpan ttl) =>
        Assert.InRange(await RedisCounterStoreTests.PttlAsync(cluster.Multiplexer.GetDatabase(), key), TimeSpan.FromMilliseconds(1), ttl);

    protected override Task PassAsync(TimeSpan duration) => Task.Delay(duration, Ct);

    [Fact]
    public async Task OneCall_ReachesEveryShard()
    {
        var updates = Enumerable.Range(0, 60).Select(i => Add(Key("spread-" + i), 1)).ToArray();
        var shards = updates.Select(u => cluster.Multiplexer.GetServer((RedisKey)u.Key).EndPoint.ToString()).Distinct().Count();

        var results = await UpdateAsync(updates);

        Assert.Equal(3, shards);
        Assert.All(results, r => Assert.Equal(new CounterResult(1, 0, true), r));
    }

    [Fact]
    public async Task ScriptsNeverSpanCounters_NoBatching()
    {
        var results = await UpdateAsync(Enumerable.Range(0, 20).Select(i => Add(Key("unbatched-" + i), 1)).ToArray());

        Assert.All(results, r => Assert.Equal(new CounterResult(1, 0, true), r));
        Assert.False(_store!.IsBatching);
        Assert.Equal(0, _store.BatchScripts);
    }

    [Fact]
    public async Task NoScriptOnEveryNode_IsRecovered()
    {
        var updates = Enumerable.Range(0, 30).Select(i => Add(Key("noscript-" + i), 1)).ToArray();
        await UpdateAsync(updates);

        foreach (var endpoint in cluster.Multiplexer.GetEndPoints())
            await cluster.Multiplexer.GetServer(endpoint).ExecuteAsync("SCRIPT", "FLUSH");

        Assert.All(await UpdateAsync(updates), r => Assert.Equal(new CounterResult(2, 0, true), r));
    }
}
