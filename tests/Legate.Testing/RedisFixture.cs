using System.Diagnostics;
using StackExchange.Redis;
using Testcontainers.Redis;
using Xunit;

namespace Legate.Testing;

/// <summary>
/// One real Redis for a test assembly: a Testcontainers container where a Docker engine is reachable, otherwise a
/// <c>redis-server</c> process started here on a free port, otherwise none and the tests that need it skip. With
/// <c>LEGATE_REQUIRE_REDIS=1</c> (CI sets it) a missing Redis fails those tests instead of skipping them.
/// Register it with <c>[assembly: AssemblyFixture(typeof(RedisFixture))]</c>.
/// </summary>
public sealed class RedisFixture : IAsyncLifetime
{
    private const string RequireVariable = "LEGATE_REQUIRE_REDIS";
    private RedisContainer? _container;
    private Process? _server;
    private IDisposable? _record;
    private ConnectionMultiplexer? _multiplexer;
    private int _nextDatabase;

    /// <summary>Connection string of the Redis, or null when none could be started.</summary>
    public string? Configuration { get; private set; }

    /// <summary>How the Redis was provided: <c>testcontainers</c> or <c>redis-server</c>; or why there is none.</summary>
    public string Source { get; private set; } = "not started";

    /// <summary>Whether a missing Redis must fail the run.</summary>
    public static bool Required => Environment.GetEnvironmentVariable(RequireVariable) == "1";

    public async ValueTask InitializeAsync()
    {
        var reasons = new List<string>();
        if (await TryTestcontainersAsync(reasons) || await TryRedisServerAsync(reasons))
        {
            // Connected once, here: tests asking for it in parallel must not each block a thread connecting.
            _multiplexer = await ConnectionMultiplexer.ConnectAsync(Configuration!);
            return;
        }
        Source = "no Redis: " + string.Join("; ", reasons);
    }

    /// <summary>Skips the calling test when there is no Redis, or fails it when one is required.</summary>
    public void RequireRedis()
    {
        if (Configuration is not null)
            return;
        if (Required)
            Assert.Fail($"{RequireVariable}=1 but {Source}. Install redis-server or start a Docker engine.");
        Assert.Skip($"{Source}. Install redis-server (or start Docker) to run this test.");
    }

    /// <summary>A shared multiplexer to the fixture's Redis.</summary>
    public IConnectionMultiplexer Multiplexer
    {
        get
        {
            RequireRedis();
            return _multiplexer!;
        }
    }

    /// <summary>A database number no other test in this run has been given (Redis has 16), so parallel tests do not see each other's keys.</summary>
    public int DedicatedDatabase() => Interlocked.Increment(ref _nextDatabase) % 16;

    private async Task<bool> TryTestcontainersAsync(List<string> reasons)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            var container = new RedisBuilder("redis:7.4-alpine").Build();
            await container.StartAsync(timeout.Token);
            _container = container;
            Configuration = container.GetConnectionString();
            Source = "testcontainers";
            return true;
        }
#pragma warning disable CA1031 // Any failure to reach Docker means: try the next way.
        catch (Exception e)
#pragma warning restore CA1031
        {
            reasons.Add("Docker engine not reachable (" + e.GetType().Name + ")");
            return false;
        }
    }

    private async Task<bool> TryRedisServerAsync(List<string> reasons)
    {
        var binary = FindOnPath("redis-server");
        if (binary is null)
        {
            reasons.Add("redis-server not on PATH");
            return false;
        }
        var port = FreePort.Next();
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--databases", "16" })
            start.ArgumentList.Add(arg);
        OwnedProcesses.SweepRedisServersOnce();
        _server = Process.Start(start)!;
        _record = OwnedProcesses.Own(_server);
        _server.OutputDataReceived += (_, _) => { };
        _server.ErrorDataReceived += (_, _) => { };
        _server.BeginOutputReadLine();
        _server.BeginErrorReadLine();

        var configuration = $"127.0.0.1:{port},abortConnect=false,connectTimeout=1000";
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (DateTime.UtcNow < deadline && !_server.HasExited)
        {
            try
            {
                using var probe = await ConnectionMultiplexer.ConnectAsync(configuration);
                if (probe.IsConnected)
                {
                    await probe.GetDatabase().PingAsync();
                    Configuration = configuration;
                    Source = "redis-server";
                    return true;
                }
            }
            catch (RedisException)
            {
            }
            await Task.Delay(100);
        }
        reasons.Add($"redis-server did not answer on port {port}");
        StopServer();
        return false;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Append("/usr/bin").Append("/usr/local/bin")
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    private void StopServer()
    {
        if (_server is null)
            return;
        if (!_server.HasExited)
        {
            _server.Kill();
            _server.WaitForExit(5000);
        }
        // A server that has not exited keeps its record: a later run's sweep kills it once this process is gone.
        if (_server.HasExited)
            _record?.Dispose();
        _record = null;
        _server.Dispose();
        _server = null;
    }

    public async ValueTask DisposeAsync()
    {
        if (_multiplexer is not null)
            await _multiplexer.DisposeAsync();
        StopServer();
        if (_container is not null)
            await _container.DisposeAsync();
    }
}
