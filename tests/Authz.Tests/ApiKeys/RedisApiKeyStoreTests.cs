using Legate.Authz.ApiKeys;
using Legate.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Legate.Authz.Tests.ApiKeys;

/// <summary>The Redis store on the test assembly's real Redis.</summary>
public sealed class RedisApiKeyStoreTests(RedisFixture redis)
{
    private readonly int _database = redis.DedicatedDatabase();
    private readonly string _prefix = "test:{apikeys-" + Guid.NewGuid().ToString("N") + "}:";

    private static CancellationToken Ct => TestKeys.Ct;

    private RedisApiKeyStore Store(TimeProvider? time = null, TimeSpan? ttl = null) =>
        new(redis.Multiplexer, new RedisApiKeyStoreOptions { KeyPrefix = _prefix, Database = _database, CacheTtl = ttl ?? TimeSpan.FromSeconds(2), Timeout = TimeSpan.FromSeconds(10) }, time);

    [Fact]
    public async Task Add_Find_RoundTripsEveryField()
    {
        var store = Store();
        var key = TestKeys.New(expires: TestKeys.Now.AddDays(1));

        Assert.True(await store.AddAsync(key.Record, Ct));
        Assert.False(await store.AddAsync(key.Record with { Plan = "other" }, Ct));

        Assert.Equal(key.Record, await store.FindAsync(key.Record.KeyId, Ct));
        Assert.Null(await store.FindAsync("ZZZZZZZZZZZZ", Ct));
        var stored = await redis.Multiplexer.GetDatabase(_database).HashGetAllAsync(_prefix + "key:" + key.Record.KeyId);
        Assert.DoesNotContain(stored, e => e.Value.ToString().Contains(key.Key[^20..], StringComparison.Ordinal));
    }

    [Fact]
    public async Task List_ByClient_ShowsRotatedKeys()
    {
        var store = Store();
        var old = TestKeys.New(client: "billing");
        var @new = TestKeys.New(client: "billing");
        var other = TestKeys.New(tenant: "globex", client: "billing");
        foreach (var k in new[] { old, @new, other })
            await store.AddAsync(k.Record, Ct);

        var billing = await store.ListAsync("acme", "billing", Ct);
        var all = await store.ListAsync(cancellationToken: Ct);
        var globex = await store.ListAsync("globex", cancellationToken: Ct);

        Assert.Equal(2, billing.Count);
        Assert.Contains(old.Record, billing);
        Assert.Contains(@new.Record, billing);
        Assert.Equal(3, all.Count);
        Assert.Equal([other.Record], globex);
    }

    [Fact]
    public async Task K5_Revocation_IsImmediateHere_AndWithinTheCacheTtlOnOtherReplicas()
    {
        var time = new FakeTimeProvider(TestKeys.Now);
        var replicaA = Store(time);
        var replicaB = Store(time);
        var key = TestKeys.New();
        await replicaA.AddAsync(key.Record, Ct);
        var validatorA = new ApiKeyValidator(replicaA, time);
        var validatorB = new ApiKeyValidator(replicaB, time);
        Assert.True((await validatorB.ValidateAsync(key.Key, Ct)).Succeeded);

        Assert.True(await replicaA.RevokeAsync(key.Record.KeyId, Ct));
        Assert.False(await replicaA.RevokeAsync("ZZZZZZZZZZZZ", Ct));

        Assert.Equal(ApiKeyFailure.Revoked, (await validatorA.ValidateAsync(key.Key, Ct)).Failure);
        // B still has its cached answer, at most for the TTL.
        Assert.True((await validatorB.ValidateAsync(key.Key, Ct)).Succeeded);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(ApiKeyFailure.Revoked, (await validatorB.ValidateAsync(key.Key, Ct)).Failure);
    }

    [Fact]
    public async Task Lookups_AndTheLocalCache_AreCounted()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var time = new FakeTimeProvider(TestKeys.Now);
        var store = new RedisApiKeyStore(Task.FromResult(redis.Multiplexer), new RedisApiKeyStoreOptions { KeyPrefix = _prefix, Database = _database, CacheTtl = TimeSpan.FromSeconds(2) },
            time, metrics: new ApiKeyMetrics(Prometheus.Metrics.WithCustomRegistry(registry)));
        var key = TestKeys.New();
        await store.AddAsync(key.Record, Ct);

        await store.FindAsync(key.Record.KeyId, Ct);
        await store.FindAsync(key.Record.KeyId, Ct);
        await store.FindAsync("ZZZZZZZZZZZZ", Ct);
        time.Advance(TimeSpan.FromSeconds(3));
        await store.FindAsync(key.Record.KeyId, Ct);

        var scrape = registry.Scrape();
        Assert.Contains("legate_authz_api_key_cache_total{result=\"hit\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_authz_api_key_cache_total{result=\"miss\"} 3", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_authz_api_key_lookups_total{store=\"redis\",result=\"found\"} 3", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_authz_api_key_lookups_total{store=\"redis\",result=\"unknown\"} 1", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NotFound_IsCachedNoLongerThanTheTtl()
    {
        var time = new FakeTimeProvider(TestKeys.Now);
        var reader = Store(time);
        var key = TestKeys.New();
        Assert.Null(await reader.FindAsync(key.Record.KeyId, Ct));

        await Store().AddAsync(key.Record, Ct);
        Assert.Null(await reader.FindAsync(key.Record.KeyId, Ct));
        time.Advance(TimeSpan.FromSeconds(2));

        Assert.Equal(key.Record, await reader.FindAsync(key.Record.KeyId, Ct));
    }

    [Fact]
    public async Task RedisDown_IsStoreUnavailable_WithoutKeyMaterial()
    {
        var options = ConfigurationOptions.Parse("127.0.0.1:" + FreePort.Next());
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 200;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        await using var down = await ConnectionMultiplexer.ConnectAsync(options);
        var store = new RedisApiKeyStore(down, new RedisApiKeyStoreOptions { Timeout = TimeSpan.FromSeconds(1) });
        var key = TestKeys.New();

        var error = await Assert.ThrowsAsync<ApiKeyStoreUnavailableException>(() => store.FindAsync(key.Record.KeyId, Ct).AsTask());
        var result = await new ApiKeyValidator(store, TimeProvider.System).ValidateAsync(key.Key, Ct);

        Assert.Equal(ApiKeyFailure.StoreUnavailable, result.Failure);
        Assert.DoesNotContain(key.Key, error.ToString(), StringComparison.Ordinal);
        await Assert.ThrowsAsync<ApiKeyStoreUnavailableException>(() => store.AddAsync(key.Record, Ct));
    }

    // Before the shared connection's first connect completed, the wait for it and the read share the lookup's timeout.
    [Fact]
    public async Task AConnectThatCompletesLate_LeavesTheLookupOnlyTheRestOfItsTimeout()
    {
        using var hanging = new SilentServer();
        // Not connected, with StackExchange.Redis's default backlog: the read waits until someone gives up.
        await using var never = await ConnectionMultiplexer.ConnectAsync($"{hanging.Endpoint},abortConnect=false,connectTimeout=100");
        var connecting = new TaskCompletionSource<IConnectionMultiplexer>(TaskCreationOptions.RunContinuationsAsynchronously);
        var time = new FakeTimeProvider(TestKeys.Now);
        var store = new RedisApiKeyStore(connecting.Task, new RedisApiKeyStoreOptions { Timeout = TimeSpan.FromMilliseconds(500) }, time);

        var lookup = store.FindAsync(TestKeys.New().Record.KeyId, Ct).AsTask();
        time.Advance(TimeSpan.FromMilliseconds(400));
        connecting.SetResult(never);
        var waited = TimeSpan.FromMilliseconds(400);
        for (var i = 0; i < 100 && !lookup.IsCompleted; i++)
        {
            await Task.Delay(5, Ct);
            time.Advance(TimeSpan.FromMilliseconds(20));
            waited += TimeSpan.FromMilliseconds(20);
        }

        await Assert.ThrowsAsync<ApiKeyStoreUnavailableException>(() => lookup);
        Assert.InRange(waited, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(700)); // not 400 + 500
    }

    [Fact]
    public async Task DamagedRecord_FailsClosed()
    {
        var store = Store();
        var key = TestKeys.New();
        await store.AddAsync(key.Record, Ct);
        await redis.Multiplexer.GetDatabase(_database).HashSetAsync(_prefix + "key:" + key.Record.KeyId, "sha256", "zz");

        Assert.Equal(ApiKeyFailure.StoreUnavailable, (await new ApiKeyValidator(store, TimeProvider.System).ValidateAsync(key.Key, Ct)).Failure);
    }

    // What the keys file refuses (ApiKeyRecordRules), a record written to Redis by hand does not get through either.
    [Theory]
    [InlineData("client", "billing service")]
    [InlineData("client", "billing\n")]
    [InlineData("tenant", "Acme")]
    [InlineData("scopes", "read,write")]
    public async Task ARecordHoldingWhatTheKeysFileRefuses_FailsClosed(string field, string value)
    {
        var store = Store();
        var key = TestKeys.New();
        await store.AddAsync(key.Record, Ct);
        await redis.Multiplexer.GetDatabase(_database).HashSetAsync(_prefix + "key:" + key.Record.KeyId, field, value);

        Assert.Equal(ApiKeyFailure.StoreUnavailable, (await new ApiKeyValidator(store, TimeProvider.System).ValidateAsync(key.Key, Ct)).Failure);
    }

    // Anyone may send a request with that key id; the Error line it writes is at most one per 10 s, with a count.
    [Fact]
    public async Task DamagedRecord_IsLoggedAtMostOncePerTenSeconds_WithTheLookupsSinceTheLastLine()
    {
        var time = new FakeTimeProvider(TestKeys.Now);
        var logger = new FakeLogger();
        var store = new RedisApiKeyStore(redis.Multiplexer,
            new RedisApiKeyStoreOptions { KeyPrefix = _prefix, Database = _database, Timeout = TimeSpan.FromSeconds(10) }, time, logger);
        var key = TestKeys.New();
        await store.AddAsync(key.Record, Ct);
        await redis.Multiplexer.GetDatabase(_database).HashSetAsync(_prefix + "key:" + key.Record.KeyId, "sha256", "zz");
        async Task LookUpAsync(int lookups)
        {
            for (var i = 0; i < lookups; i++)
                await Assert.ThrowsAsync<ApiKeyStoreUnavailableException>(() => store.FindAsync(key.Record.KeyId, Ct).AsTask());
        }
        List<FakeLogRecord> Lines() => [.. logger.Collector.GetSnapshot().Where(r => r.Id.Name == "ApiKeyRecordInvalid")];

        await ThrottledLogAssert.OncePerTenSecondsAsync(LookUpAsync, time.Advance, () => [.. Lines().Select(r => r.Message)], n => $"{n} lookup(s) found an invalid record");
        Assert.All(Lines(), line => Assert.DoesNotContain(key.Key, line.Message, StringComparison.Ordinal));
    }
}
