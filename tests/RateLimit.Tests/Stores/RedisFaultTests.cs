using System.Diagnostics;
using Legate.RateLimit.Stores;
using Legate.Testing;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>A Redis of the test's own that dies, hangs and comes back: the store fails fast and then recovers.</summary>
public sealed class RedisFaultTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(750);

    // The store's timeout, and slack for a loaded test machine.
    private static readonly TimeSpan FailureBound = Timeout + TimeSpan.FromSeconds(2);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static CounterUpdate Add(string name, ulong hits) =>
        new(CounterKey.Build("legate:rl:fault:", "domain", new KeyValuePair<string, string>[] { new("name", name) }, "m", 1_767_225_600), hits, TimeSpan.FromMinutes(2));

    private static async Task<CounterResult> UpdateAsync(ICounterStore store, CounterUpdate update)
    {
        var results = new CounterResult[1];
        await store.UpdateAsync(new[] { update }, results, Ct);
        return results[0];
    }

    private static async Task<CounterResult> EventuallyAsync(ICounterStore store, CounterUpdate update)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                return await UpdateAsync(store, update);
            }
            catch (CounterStoreException) when (DateTime.UtcNow < deadline)
            {
                Assert.InRange(clock.Elapsed, TimeSpan.Zero, FailureBound);
                await Task.Delay(100, Ct);
            }
        }
    }

    [Fact]
    public async Task StoppedRedis_FailsWithinTheTimeout_AndWorksAgainAfterARestart()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: Timeout);
        Assert.Equal(new CounterResult(1, 0, true), await UpdateAsync(store, Add("restart", 1)));

        server.Kill();
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAsync<CounterStoreException>(async () => await UpdateAsync(store, Add("restart", 1)));
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, FailureBound);
        clock.Restart();
        await Assert.ThrowsAsync<CounterStoreException>(async () => await UpdateAsync(store, Add("restart", 1)));
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, FailureBound);

        // The restarted server has lost the counter and the script; the store reconnects and loads it again.
        await server.StartAsync(Ct);
        // A retry that timed out on a slow reconnect may still have been applied, so the first success can read
        // more than 1; from then on counting is exact.
        var first = await EventuallyAsync(store, Add("after-restart", 1));
        Assert.True(first.Applied);
        Assert.InRange(first.Count, 1ul, 1000ul);
        Assert.Equal(new CounterResult(first.Count + 1, 0, true), await UpdateAsync(store, Add("after-restart", 1)));
        // StackExchange.Redis keeps commands issued while disconnected in its backlog and may still send the two
        // failed updates after reconnecting: a failed call is not a guarantee that nothing was counted.
        Assert.InRange((await UpdateAsync(store, Add("restart", 1))).Count, 1ul, 3ul);
    }

    [Fact]
    public async Task HungRedis_FailsWithinTheTimeout_AndWorksAgainWhenItAnswers()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        await using var multiplexer = await server.ConnectAsync();
        var store = new RedisCounterStore(multiplexer, timeout: Timeout);
        Assert.Equal(new CounterResult(1, 0, true), await UpdateAsync(store, Add("hung", 1)));

        server.Freeze();
        try
        {
            var clock = Stopwatch.StartNew();
            var error = await Assert.ThrowsAsync<CounterStoreException>(async () => await UpdateAsync(store, Add("hung", 1)));
            Assert.InRange(clock.Elapsed, Timeout - TimeSpan.FromMilliseconds(50), FailureBound);
            Assert.Contains("did not answer", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            server.Thaw();
        }

        // The timed-out update was sent, so Redis may still apply it when it wakes up (and so may a retry that timed
        // out while it was waking): at least 2 after this one, and counting is exact again from there.
        var after = await EventuallyAsync(store, Add("hung", 1));
        Assert.InRange(after.Count, 2ul, 1000ul);
        Assert.Equal(after.Count + 1, (await UpdateAsync(store, Add("hung", 1))).Count);
    }
}
