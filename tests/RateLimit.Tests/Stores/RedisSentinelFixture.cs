using System.Globalization;
using System.Net;
using Legate.Hosting.Redis;
using Legate.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// A Sentinel-managed Redis of local processes: a primary, one replica and one sentinel (quorum 1) watching the
/// service <see cref="ServiceName"/>. The store reaches it the way an operator configures it, through the shared
/// <see cref="LegateRedis"/> with <c>sentinel-host:port,serviceName=…</c>. Without the binaries the tests skip (or
/// fail under <c>LEGATE_REQUIRE_REDIS=1</c>); every process is killed on dispose.
/// </summary>
public sealed class RedisSentinelFixture : IAsyncLifetime
{
    public const string ServiceName = "legate-primary";

    private RedisProcessGroup? _group;
    private LegateRedis? _redis;

    /// <summary>Why there is no Sentinel set-up, when there is none.</summary>
    public string Problem { get; private set; } = "not started";

    /// <summary>The connection string an operator would write: the sentinel, and the service it watches.</summary>
    public string Configuration { get; private set; } = "";

    internal RedisServerProcess Primary => _group!.Processes[0];

    internal RedisServerProcess Replica => _group!.Processes[1];

    internal RedisServerProcess Sentinel => _group!.Processes[2];

    /// <summary>The shared multiplexer, connected through the sentinel (its first connect completed in <see cref="InitializeAsync"/>).</summary>
    public IConnectionMultiplexer Multiplexer
    {
        get
        {
            RequireSentinel();
            return _redis!.TryGetMultiplexer()!;
        }
    }

    public void RequireSentinel()
    {
        if (_redis is not null)
            return;
        if (RedisFixture.Required)
            Assert.Fail("LEGATE_REQUIRE_REDIS=1 but there is no Redis Sentinel set-up: " + Problem);
        Assert.Skip("No Redis Sentinel set-up: " + Problem);
    }

    public async ValueTask InitializeAsync()
    {
        if (RedisBinaries.Find("redis-server") is null)
        {
            Problem = "redis-server is not on PATH";
            return;
        }
        try
        {
            await StartAsync();
        }
#pragma warning disable CA1031 // Whatever went wrong, the tests report it (skip or fail) instead of the fixture crashing.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Problem = $"{e.GetType().Name}: {e.Message}";
            await DisposeAsync();
        }
    }

    private async Task StartAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var group = _group = new RedisProcessGroup("redis-sentinel");
        var primary = await group.StartAsync(new RedisServerProcess(FreePort.Next(), "--dir", group.Directory), timeout.Token);
        await group.StartAsync(new RedisServerProcess(FreePort.Next(), "--dir", group.Directory, "--replicaof", "127.0.0.1", Port(primary)), timeout.Token);

        // A sentinel rewrites its configuration file, so it gets one of its own.
        var sentinelPort = FreePort.Next();
        var configFile = Path.Combine(group.Directory, "sentinel.conf");
        await File.WriteAllTextAsync(configFile, $"""
            port {sentinelPort}
            bind 127.0.0.1
            protected-mode no
            dir {group.Directory}
            sentinel monitor {ServiceName} 127.0.0.1 {Port(primary)} 1
            sentinel down-after-milliseconds {ServiceName} 1000
            sentinel failover-timeout {ServiceName} 10000
            """, timeout.Token);
        var sentinel = await group.StartAsync(new RedisServerProcess(sentinelPort, RedisServerProcess.Mode.Sentinel, configFile), timeout.Token);

        Configuration = $"{sentinel.Endpoint},serviceName={ServiceName},connectTimeout=2000";
        _redis = new LegateRedis(Options.Create(new RedisOptions { Configuration = Configuration }), NullLogger<LegateRedis>.Instance);
        var multiplexer = await _redis.Connection.WaitAsync(timeout.Token);
        while (!multiplexer.IsConnected)
            await Task.Delay(50, timeout.Token);
    }

    /// <summary>The port of the primary the sentinel names now.</summary>
    public async Task<int> PrimaryPortAsync()
    {
        await using var sentinel = await ConnectToSentinelAsync();
        var endpoint = await sentinel.GetServer(Sentinel.Endpoint).SentinelGetMasterAddressByNameAsync(ServiceName);
        return ((IPEndPoint)endpoint!).Port;
    }

    /// <summary>Asks the sentinel to fail over now: the replica becomes the primary.</summary>
    public async Task FailoverAsync()
    {
        await using var sentinel = await ConnectToSentinelAsync();
        await sentinel.GetServer(Sentinel.Endpoint).SentinelFailoverAsync(ServiceName);
    }

    // A plain connection to the sentinel itself (not through it to the primary), for SENTINEL commands.
    private async Task<ConnectionMultiplexer> ConnectToSentinelAsync()
    {
        var options = new ConfigurationOptions { CommandMap = CommandMap.Sentinel, TieBreaker = "", AllowAdmin = true, AbortOnConnectFail = true };
        options.EndPoints.Add(Sentinel.Endpoint);
        return await ConnectionMultiplexer.ConnectAsync(options);
    }

    private static string Port(RedisServerProcess process) => process.Port.ToString(CultureInfo.InvariantCulture);

    public ValueTask DisposeAsync()
    {
        _redis?.Dispose();
        _redis = null;
        _group?.Dispose();
        _group = null;
        return ValueTask.CompletedTask;
    }
}
