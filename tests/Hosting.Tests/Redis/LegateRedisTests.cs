using Legate.Hosting.Redis;
using Legate.Testing;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

[assembly: AssemblyFixture(typeof(RedisFixture))]

namespace Legate.Hosting.Tests.Redis;

public sealed class LegateRedisTests(RedisFixture redis)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SharedMultiplexer_TalksToARealRedis()
    {
        redis.RequireRedis();
        using var legate = new LegateRedis(Options.Create(new RedisOptions { Configuration = redis.Configuration! }), new FakeLogger<LegateRedis>());
        var db = legate.Multiplexer.GetDatabase(redis.DedicatedDatabase());
        var key = "legate-test:" + Guid.NewGuid().ToString("N");

        await db.StringIncrementAsync(key);
        var value = await db.StringIncrementAsync(key);
        await db.KeyDeleteAsync(key);

        Assert.Equal(2, value);
        Assert.Same(legate.Multiplexer, legate.Multiplexer);
    }

    [Fact]
    public async Task HealthCheck_IsHealthyWhenRedisAnswers()
    {
        redis.RequireRedis();
        using var legate = new LegateRedis(Options.Create(new RedisOptions { Configuration = redis.Configuration! }), new FakeLogger<LegateRedis>());
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!legate.Multiplexer.IsConnected && DateTime.UtcNow < deadline)
            await Task.Delay(50, Ct);

        var result = await new RedisHealthCheck(legate).CheckHealthAsync(new HealthCheckContext(), Ct);

        Assert.Equal(HealthStatus.Healthy, result.Status);
    }

    [Fact]
    public async Task HealthCheck_IsUnhealthyWhenRedisIsDown()
    {
        using var legate = new LegateRedis(
            Options.Create(new RedisOptions { Configuration = $"127.0.0.1:{FreePort.Next()},connectTimeout=200" }), new FakeLogger<LegateRedis>());

        var result = await new RedisHealthCheck(legate).CheckHealthAsync(new HealthCheckContext(), Ct);

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
    }

    [Fact]
    public void Password_IsNeverLogged()
    {
        var logger = new FakeLogger<LegateRedis>();

        using var legate = new LegateRedis(Options.Create(new RedisOptions { Configuration = "127.0.0.1:1,password=hunter2-secret" }), logger);

        var logged = string.Join('\n', logger.Collector.GetSnapshot().Select(r => r.Message));
        Assert.Contains("127.0.0.1:1", logged, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", logged, StringComparison.Ordinal);
    }
}
