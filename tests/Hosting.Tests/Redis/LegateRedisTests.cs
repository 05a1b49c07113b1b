using Legate.Hosting.Redis;
using Legate.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

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
        var multiplexer = await legate.Connection.WaitAsync(Ct);
        var db = multiplexer.GetDatabase(redis.DedicatedDatabase());
        var key = "legate-test:" + Guid.NewGuid().ToString("N");

        await db.StringIncrementAsync(key);
        var value = await db.StringIncrementAsync(key);
        await db.KeyDeleteAsync(key);

        Assert.Equal(2, value);
        Assert.Same(multiplexer, legate.TryGetMultiplexer());
    }

    [Fact]
    public async Task HealthCheck_IsHealthyWhenRedisAnswers()
    {
        redis.RequireRedis();
        using var legate = new LegateRedis(Options.Create(new RedisOptions { Configuration = redis.Configuration! }), new FakeLogger<LegateRedis>());
        var multiplexer = await legate.Connection.WaitAsync(Ct);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!multiplexer.IsConnected && DateTime.UtcNow < deadline)
            await Task.Delay(50, Ct);

        var result = await new RedisHealthCheck(legate).CheckHealthAsync(new HealthCheckContext(), Ct);

        Assert.Equal(HealthStatus.Healthy, result.Status);
    }

    // A Redis that hangs once connected (frozen by SIGSTOP): StackExchange.Redis would wait 5 s for the PING, past a
    // probe's own timeout (Kubernetes's default is 1 s), which would then see a timed-out probe, not a not-ready answer.
    [Fact]
    public async Task HealthCheck_GivesUpOnAPingThatHangs_WellWithinAProbesTimeout()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(Ct);
        using var legate = new LegateRedis(Options.Create(new RedisOptions { Configuration = server.Endpoint }), new FakeLogger<LegateRedis>());
        var multiplexer = await legate.Connection.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!multiplexer.IsConnected && DateTime.UtcNow < deadline)
            await Task.Delay(50, Ct);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);

        server.Freeze();
        try
        {
            var check = new RedisHealthCheck(legate, time).CheckHealthAsync(new HealthCheckContext(), Ct);
            time.Advance(RedisHealthCheck.PingTimeout);
            // Far below StackExchange.Redis's 5 s: only the check's own timeout can have ended it.
            var result = await check.WaitAsync(TimeSpan.FromSeconds(2), Ct);

            Assert.Equal(HealthStatus.Unhealthy, result.Status);
            Assert.Equal("Redis did not answer PING within 500 ms", result.Description);
            Assert.True(RedisHealthCheck.PingTimeout < TimeSpan.FromSeconds(1));
        }
        finally
        {
            server.Thaw();
        }
    }

    // A Redis that accepts and never answers: StackExchange.Redis's connect waits its whole connectTimeout, a minute
    // here. Nothing may wait for it: not the constructor, not readiness.
    [Fact]
    public async Task TheFirstConnect_RunsInTheBackground_AndReadinessDoesNotWaitForIt()
    {
        using var hanging = new SilentServer();
        using var legate = new LegateRedis(
            Options.Create(new RedisOptions { Configuration = $"{hanging.Endpoint},connectTimeout=60000" }), new FakeLogger<LegateRedis>());

        var result = await new RedisHealthCheck(legate).CheckHealthAsync(new HealthCheckContext(), Ct);

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Equal("Redis is connecting", result.Description);
        Assert.False(legate.Connection.IsCompleted);
        Assert.Null(legate.TryGetMultiplexer());
    }

    [Fact]
    public async Task AFailedFirstConnect_LeavesAMultiplexerThatReconnects_AndSaysSo()
    {
        var logger = new FakeLogger<LegateRedis>();
        using var legate = new LegateRedis(
            Options.Create(new RedisOptions { Configuration = $"127.0.0.1:{FreePort.Next()},connectTimeout=100,connectRetry=1" }), logger);

        var multiplexer = await legate.Connection.WaitAsync(TimeSpan.FromSeconds(30), Ct);

        Assert.False(multiplexer.IsConnected);
        Assert.Contains(logger.Collector.GetSnapshot(), r => r.Id.Name == "RedisNotConnectedYet");
    }

    [Fact]
    public void Options_FailFast_WithoutAbortingTheStart_AndReadRepliesOnTheThreadPoolUnlessAsked()
    {
        var configuration = LegateRedis.Configure(new RedisOptions { Configuration = "127.0.0.1:6379,name=edge" });
        var dedicated = LegateRedis.Configure(new RedisOptions { Configuration = "127.0.0.1:6379", DedicatedSocketThreads = true });

        Assert.False(configuration.AbortOnConnectFail);
        Assert.Same(BacklogPolicy.FailFast, configuration.BacklogPolicy);
        Assert.Equal("edge", configuration.ClientName);
        Assert.Same(SocketManager.ThreadPool, configuration.SocketManager);
        Assert.Same(SocketManager.Shared, dedicated.SocketManager);
        Assert.Equal("legate", dedicated.ClientName);
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
    public async Task Password_IsNeverLogged()
    {
        var logger = new FakeLogger<LegateRedis>();

        using var legate = new LegateRedis(Options.Create(new RedisOptions { Configuration = "127.0.0.1:1,password=hunter2-secret,connectTimeout=100,connectRetry=1" }), logger);
        await legate.Connection.WaitAsync(TimeSpan.FromSeconds(30), Ct); // and the background connect's lines

        var logged = string.Join('\n', logger.Collector.GetSnapshot().Select(r => r.Message));
        Assert.Contains("127.0.0.1:1", logged, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", logged, StringComparison.Ordinal);
    }

    // StackExchange.Redis takes no URLs: it reads one as a host name, which it then logs, password and all, in every
    // line that describes the connection (and never connects).
    [Theory]
    [InlineData("redis://legate:hunter2-secret@127.0.0.1:6379")]
    [InlineData("rediss://:hunter2-secret@127.0.0.1:6379/0")]
    public async Task ARedisUrl_IsAStartRefused_WithoutItsPasswordInAnyLine(string url)
    {
        var logs = new FakeLogCollector();

        var error = await Record.ExceptionAsync(async () =>
        {
            await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Legate:Redis:Configuration"] = url }, builder =>
            {
                builder.Logging.AddProvider(new FakeLoggerProvider(logs));
                builder.Services.AddLegateRedis(builder.Configuration);
            });
        });

        Assert.NotNull(error);
        Assert.True(LegateProgram.IsRefusedInput(error), error.ToString());
        Assert.Contains("Legate:Redis:Configuration", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Message.Contains("hunter2-secret", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("127.0.0.1:6379,connectTimeout=soon", "connectTimeout")]
    [InlineData("127.0.0.1:6379,pasword=hunter2", "pasword")]
    public async Task AConfigurationStackExchangeRedisCannotRead_IsAStartRefusedNamingTheOption(string configuration, string option)
    {
        var error = await Record.ExceptionAsync(async () =>
        {
            await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Legate:Redis:Configuration"] = configuration },
                builder => builder.Services.AddLegateRedis(builder.Configuration));
        });

        Assert.NotNull(error);
        Assert.True(LegateProgram.IsRefusedInput(error), error.ToString());
        Assert.Contains("Legate:Redis:Configuration", error.Message, StringComparison.Ordinal);
        Assert.Contains(option, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task APasswordWithACommaInIt_IsRefused_WithoutQuotingItsTail()
    {
        // StackExchange.Redis reads "cd-secret=x" as an option of its own and would name it in its message.
        var error = await Record.ExceptionAsync(async () =>
        {
            await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Legate:Redis:Configuration"] = "127.0.0.1:6379,password=ab,cd-secret=x" },
                builder => builder.Services.AddLegateRedis(builder.Configuration));
        });

        Assert.NotNull(error);
        Assert.True(LegateProgram.IsRefusedInput(error), error.ToString());
        Assert.Contains("Legate:Redis:Configuration has an option StackExchange.Redis cannot read", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("cd-secret", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnEndpointAfterThePassword_IsRefused_WithoutQuotingIt()
    {
        // StackExchange.Redis would read "cd-secret" as a host and log it with the endpoints.
        var error = await Record.ExceptionAsync(async () =>
        {
            await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Legate:Redis:Configuration"] = "127.0.0.1:6379,password=ab,cd-secret" },
                builder => builder.Services.AddLegateRedis(builder.Configuration));
        });

        Assert.NotNull(error);
        Assert.True(LegateProgram.IsRefusedInput(error), error.ToString());
        Assert.Contains("lists an endpoint after password=", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("cd-secret", error.Message, StringComparison.Ordinal);
    }
}
