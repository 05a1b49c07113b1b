using System.Net;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Grpc.Core;
using Grpc.Health.V1;
using Legate.RateLimit.Stores;
using Legate.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;
using HealthClient = Grpc.Health.V1.Health.HealthClient;
using RateLimitClient = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceClient;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Legate.RateLimit.Tests;

/// <summary>The service on the Redis store, end to end: real gRPC in, real Redis behind.</summary>
public sealed class RedisRateLimitTests : IDisposable
{
    private const string Rules = """
        domain: edge
        descriptors:
          - key: tenant
            rate_limit: { unit: hour, requests_per_unit: 3 }
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("legate-rl-redis-").FullName;
    private readonly List<LegateServiceFactory<Program>> _services = [];

    private readonly RedisFixture _redis;

    public RedisRateLimitTests(RedisFixture redis)
    {
        _redis = redis;
        File.WriteAllText(Path.Combine(_dir, "edge.yaml"), Rules);
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private LegateServiceFactory<Program> Service(string redisConfiguration, bool degraded = false, string? keyPrefix = null, bool batching = true, (string Key, string Value)? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Legate:Rules:ratelimit:Path"] = _dir,
            ["Legate:RateLimit:Store"] = "redis",
            ["Legate:RateLimit:KeyPrefix"] = keyPrefix ?? "test:" + Guid.NewGuid().ToString("N") + ":",
            ["Legate:RateLimit:StoreTimeout"] = "00:00:02",
            ["Legate:RateLimit:DegradedMode"] = degraded ? "true" : "false",
            ["Legate:RateLimit:RedisBatching"] = batching ? "true" : "false",
            ["Legate:Redis:Configuration"] = redisConfiguration,
        };
        if (extra is { } setting)
            settings[setting.Key] = setting.Value;
        var service = new LegateServiceFactory<Program>(settings);
        _services.Add(service);
        return service;
    }

    private static RateLimitRequest Request(string tenant) => new()
    {
        Domain = "edge",
        Descriptors = { new RateLimitDescriptor { Entries = { new RateLimitDescriptor.Types.Entry { Key = "tenant", Value = tenant } } } },
    };

    [Fact]
    public async Task TwoReplicas_ShareOneCounterInRedis()
    {
        _redis.RequireRedis();
        // Two replicas with the same key prefix share their counters through Redis.
        var sharedPrefix = "test:" + Guid.NewGuid().ToString("N") + ":";
        var a = Service(_redis.Configuration!, keyPrefix: sharedPrefix);
        var b = Service(_redis.Configuration!, keyPrefix: sharedPrefix);

        var codes = new List<Code>();
        foreach (var replica in new[] { a, b, a, b })
            codes.Add((await new RateLimitClient(replica.Channel).ShouldRateLimitAsync(Request("acme"), cancellationToken: Ct)).OverallCode);

        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.OverLimit], codes);
        var keys = _redis.Multiplexer.GetServers()[0].Keys(pattern: sharedPrefix + "*").ToList();
        Assert.Single(keys);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ParallelCalls_AdmitExactlyTheLimit_WithAndWithoutGroupCommit(bool batching)
    {
        _redis.RequireRedis();
        var service = Service(_redis.Configuration!, batching: batching);
        var client = new RateLimitClient(service.Channel);
        // The service connects to Redis on first use; the burst is about counting, not a cold start.
        Assert.Equal(Code.Ok, (await client.ShouldRateLimitAsync(Request("warm-up"), cancellationToken: Ct)).OverallCode);
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var calls = Enumerable.Range(0, 40).Select(i => Task.Run(async () =>
        {
            await start.Task;
            return (await client.ShouldRateLimitAsync(Request("parallel-" + (i % 2)), cancellationToken: Ct)).OverallCode;
        }, Ct)).ToArray();
        start.SetResult();
        var codes = await Task.WhenAll(calls);

        // Two tenants with 3 each.
        Assert.Equal(6, codes.Count(c => c == Code.Ok));
        Assert.Equal(34, codes.Count(c => c == Code.OverLimit));
    }

    [Theory]
    [InlineData("Legate:RateLimit:RedisBatchMaxCounters", "0")]
    [InlineData("Legate:RateLimit:RedisBatchMaxCounters", "4097")]
    [InlineData("Legate:RateLimit:RedisBatchesInFlight", "0")]
    [InlineData("Legate:RateLimit:RedisBatchesInFlight", "65")]
    [InlineData("Legate:RateLimit:DegradedRetryInterval", "00:00:00.001")]
    [InlineData("Legate:RateLimit:DegradedRetryInterval", "02:00:00")]
    public void BadRedisSetting_StopsTheStart_NamingTheKey(string key, string value)
    {
        // Validation comes before any connection: nothing listens on this port.
        var service = Service($"127.0.0.1:{FreePort.Next()},connectTimeout=200", extra: (key, value));

        var error = Assert.IsType<OptionsValidationException>(service.StartFailure());
        Assert.Contains(key + " must be", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HotOverLimitKey_IsAnsweredFromTheLocalCacheWithoutRedis()
    {
        _redis.RequireRedis();
        var prefix = "test:" + Guid.NewGuid().ToString("N") + ":";
        var service = Service(_redis.Configuration!, keyPrefix: prefix);
        var client = new RateLimitClient(service.Channel);

        var codes = new List<Code>();
        for (var i = 0; i < 10; i++)
            codes.Add((await client.ShouldRateLimitAsync(Request("hammer"), cancellationToken: Ct)).OverallCode);

        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.OverLimit, Code.OverLimit, Code.OverLimit, Code.OverLimit, Code.OverLimit, Code.OverLimit, Code.OverLimit], codes);
        var key = Assert.Single(_redis.Multiplexer.GetServers()[0].Keys(pattern: prefix + "*"));
        // The call that went over was counted in Redis; the six after it never reached Redis.
        Assert.Equal(4, (long)await _redis.Multiplexer.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task WriteBehind_DecidesKnownCountersLocally_AndSendsTheirHitsToRedisEveryInterval()
    {
        _redis.RequireRedis();
        var prefix = "test:" + Guid.NewGuid().ToString("N") + ":";
        var service = Service(_redis.Configuration!, keyPrefix: prefix, extra: ("Legate:RateLimit:WriteBehind", "true"));
        var client = new RateLimitClient(service.Channel);

        var codes = new List<Code>();
        for (var i = 0; i < 5; i++)
            codes.Add((await client.ShouldRateLimitAsync(Request("local"), cancellationToken: Ct)).OverallCode);

        // The same decisions as without write-behind (one instance alone decides exactly).
        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.OverLimit, Code.OverLimit], codes);
        Assert.IsType<WriteBehindCounterStore>(service.Services.GetRequiredService<ICounterStore>());
        var key = Assert.Single(_redis.Multiplexer.GetServers()[0].Keys(pattern: prefix + "*"));
        // Every hit counts (CountRejectedHits): the first went to Redis, the other four with a sync (every 10 ms).
        var count = 0L;
        for (var i = 0; i < 300 && count != 5; i++)
        {
            await Task.Delay(10, Ct);
            count = (long)await _redis.Multiplexer.GetDatabase().StringGetAsync(key);
        }
        Assert.Equal(5, count);
        var metrics = await service.ScrapeAsync(Ct);
        Assert.Contains("legate_ratelimit_write_behind_syncs_total{result=\"ok\"}", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public void BadWriteBehindInterval_StopsTheStart_NamingTheKey()
    {
        var service = Service($"127.0.0.1:{FreePort.Next()},connectTimeout=200", extra: ("Legate:RateLimit:WriteBehindInterval", "00:00:00"));

        var error = Assert.IsType<OptionsValidationException>(service.StartFailure());
        Assert.Contains("Legate:RateLimit:WriteBehindInterval must be", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RedisDown_AnswersUnavailableSoEnvoyDecides()
    {
        var service = Service($"127.0.0.1:{FreePort.Next()},connectTimeout=200");

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            new RateLimitClient(service.Channel).ShouldRateLimitAsync(Request("acme"), cancellationToken: Ct).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    // A Redis that accepts and never answers: StackExchange.Redis's first connect waits its whole connectTimeout, a
    // minute here. Calls must not wait for it (they used to hold a pool thread each until it ended).
    [Fact]
    public async Task RedisStillConnecting_AnswersUnavailableWithinTheStoreDeadline()
    {
        using var hanging = new SilentServer();
        var service = Service($"{hanging.Endpoint},connectTimeout=60000");

        var error = await Assert.ThrowsAsync<RpcException>(() => new RateLimitClient(service.Channel)
            .ShouldRateLimitAsync(Request("acme"), deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: Ct).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("not connected yet", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RedisDown_InDegradedMode_KeepsLimitingWithLocalCounters()
    {
        var service = Service($"127.0.0.1:{FreePort.Next()},connectTimeout=200", degraded: true);
        var client = new RateLimitClient(service.Channel);

        var codes = new List<Code>();
        for (var i = 0; i < 4; i++)
            codes.Add((await client.ShouldRateLimitAsync(Request("acme"), cancellationToken: Ct)).OverallCode);

        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.OverLimit], codes);
        Assert.Contains("legate_ratelimit_degraded 1", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    // Redis unreachable (nothing listens on the port). Unset, readiness follows Redis only without degraded mode:
    // with it, the pods must stay in rotation, which is what degraded mode is for; an explicit setting wins.
    [Theory]
    [InlineData(false, null, false)]
    [InlineData(true, null, true)]
    [InlineData(true, "true", false)]
    [InlineData(false, "false", true)]
    public async Task RedisDown_Readiness_FollowsRedisUnlessDegradedMode(bool degraded, string? readinessRequiresStore, bool ready)
    {
        var service = Service($"127.0.0.1:{FreePort.Next()},connectTimeout=200", degraded: degraded,
            extra: readinessRequiresStore is null ? null : ("Legate:RateLimit:ReadinessRequiresStore", readinessRequiresStore));
        using var http = service.CreateClient();

        using var readyz = await http.GetAsync(new Uri("/readyz", UriKind.Relative), Ct);
        var health = new HealthClient(service.Channel);
        var overall = await health.CheckAsync(new HealthCheckRequest(), cancellationToken: Ct);
        var rls = await health.CheckAsync(new HealthCheckRequest { Service = Microsoft.Extensions.Hosting.RateLimitExtensions.GrpcServiceName }, cancellationToken: Ct);

        Assert.Equal(ready ? HttpStatusCode.OK : HttpStatusCode.ServiceUnavailable, readyz.StatusCode);
        Assert.Equal(ready ? ServingStatus.Serving : ServingStatus.NotServing, overall.Status);
        Assert.Equal(overall.Status, rls.Status);
        if (degraded)
        {
            // Ready, and answering from local counters.
            var response = await new RateLimitClient(service.Channel).ShouldRateLimitAsync(Request("acme"), cancellationToken: Ct);
            Assert.Equal(Code.Ok, response.OverallCode);
        }
    }

    public void Dispose()
    {
        foreach (var service in _services)
            service.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
