using System.Diagnostics;
using System.Globalization;
using Legate.Testing;
using StackExchange.Redis;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// A three-master Redis Cluster of local <c>redis-server</c> processes in a temporary directory, created with
/// <c>redis-cli --cluster create</c>. When the binaries are missing or the cluster does not form, the tests that use it
/// skip (or fail under <c>LEGATE_REQUIRE_REDIS=1</c>). Every process is killed on dispose.
/// </summary>
public sealed class RedisClusterFixture : IAsyncLifetime
{
    private const int Nodes = 3;
    private RedisProcessGroup? _nodes;
    private ConnectionMultiplexer? _multiplexer;

    /// <summary>Why there is no cluster, when there is none.</summary>
    public string Problem { get; private set; } = "not started";

    public IConnectionMultiplexer Multiplexer
    {
        get
        {
            RequireCluster();
            return _multiplexer!;
        }
    }

    /// <summary>Skips the calling test when there is no cluster, or fails it when Redis is required.</summary>
    public void RequireCluster()
    {
        if (_multiplexer is not null)
            return;
        if (RedisFixture.Required)
            Assert.Fail("LEGATE_REQUIRE_REDIS=1 but there is no Redis Cluster: " + Problem);
        Assert.Skip("No Redis Cluster: " + Problem);
    }

    public async ValueTask InitializeAsync()
    {
        var cli = RedisBinaries.Find("redis-cli");
        if (RedisBinaries.Find("redis-server") is null || cli is null)
        {
            Problem = "redis-server or redis-cli is not on PATH";
            return;
        }
        try
        {
            await StartAsync(cli);
        }
#pragma warning disable CA1031 // Whatever went wrong, the tests report it (skip or fail) instead of the fixture crashing.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Problem = $"{e.GetType().Name}: {e.Message}";
            await StopAsync();
        }
    }

    private async Task StartAsync(string cli)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var nodes = _nodes = new RedisProcessGroup("redis-cluster");
        for (var i = 0; i < Nodes; i++)
        {
            var port = FreePort.Next();
            var busPort = FreePort.Next();
            await nodes.StartAsync(new RedisServerProcess(port,
                "--cluster-enabled", "yes",
                "--cluster-config-file", Path.Combine(nodes.Directory, $"nodes-{port}.conf"),
                "--cluster-port", busPort.ToString(CultureInfo.InvariantCulture),
                "--cluster-node-timeout", "5000",
                "--dir", nodes.Directory), timeout.Token);
        }

        var create = new List<string> { "--cluster", "create" };
        create.AddRange(nodes.Processes.Select(n => n.Endpoint));
        create.AddRange(["--cluster-replicas", "0", "--cluster-yes"]);
        var (exitCode, output) = await RunAsync(cli, create, timeout.Token);
        if (exitCode != 0)
            throw new InvalidOperationException($"redis-cli --cluster create exited with {exitCode}: {output}");

        foreach (var node in nodes.Processes)
        {
            while (true)
            {
                var (_, info) = await RunAsync(cli, ["-p", node.Port.ToString(CultureInfo.InvariantCulture), "cluster", "info"], timeout.Token);
                if (info.Contains("cluster_state:ok", StringComparison.Ordinal))
                    break;
                await Task.Delay(100, timeout.Token);
            }
        }

        var options = ConfigurationOptions.Parse(string.Join(',', nodes.Processes.Select(n => n.Endpoint)));
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 2000;
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(options);
        // Every node must be known as a primary before a test relies on slot routing.
        while (multiplexer.GetEndPoints().Select(e => multiplexer.GetServer(e)).Count(s => s.IsConnected && !s.IsReplica) < Nodes
               || multiplexer.GetServer(multiplexer.GetEndPoints()[0]).ServerType != ServerType.Cluster)
        {
            await Task.Delay(100, timeout.Token);
        }
        _multiplexer = multiplexer;
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string binary, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        using var process = Process.Start(new ProcessStartInfo(binary, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException(binary + " did not start.");
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, await output + await error);
    }

    private async Task StopAsync()
    {
        if (_multiplexer is not null)
        {
            await _multiplexer.DisposeAsync();
            _multiplexer = null;
        }
        _nodes?.Dispose();
        _nodes = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
