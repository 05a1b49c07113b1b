using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;
using Xunit;

namespace Legate.Testing;

/// <summary>
/// A <c>redis-server</c> this test starts, stops and restarts itself (the shared <see cref="RedisFixture"/> must not
/// be disturbed). Always on 127.0.0.1, without persistence; killed on dispose.
/// </summary>
public sealed class RedisServerProcess : IDisposable
{
    private readonly string _binary;
    private readonly string[] _arguments;
    private Process? _process;
    private IDisposable? _record;

    public enum Mode
    {
        Server,

        /// <summary>A sentinel: <c>redis-server FILE --sentinel</c>, its configuration in a file it may rewrite.</summary>
        Sentinel,
    }

    public RedisServerProcess(int port, params string[] extraArguments)
    {
        _binary = RedisBinaries.Require("redis-server");
        Port = port;
        _arguments = ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", .. extraArguments];
    }

    public RedisServerProcess(int port, Mode mode, string configFile)
    {
        _binary = RedisBinaries.Require("redis-server");
        Port = port;
        _arguments = mode == Mode.Sentinel ? [configFile, "--sentinel"] : [configFile];
    }

    public int Port { get; }

    public string Endpoint => "127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);

    public int ProcessId => _process?.Id ?? throw new InvalidOperationException("The server is not running.");

    /// <summary>Starts the server and waits until it answers PING.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_process is { HasExited: false })
            throw new InvalidOperationException("The server is already running.");
        _record?.Dispose(); // the previous server exited by itself
        _process?.Dispose();
        var start = new ProcessStartInfo(_binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in _arguments)
            start.ArgumentList.Add(argument);
        OwnedProcesses.SweepRedisServersOnce();
        _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        _record = OwnedProcesses.Own(_process);
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"redis-server on port {Port} exited with code {_process.ExitCode}.");
            if (await RespondsToPingAsync(cancellationToken))
                return;
            await Task.Delay(50, cancellationToken);
        }
        throw new TimeoutException($"redis-server on port {Port} did not answer PING.");
    }

    /// <summary>Kills the server, as a crash would.</summary>
    public void Kill()
    {
        if (_process is null)
            return;
        if (!_process.HasExited)
        {
            Signal(UnixSignals.Cont); // a stopped process cannot die until it runs again
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        // A server that has not exited keeps its record: a later run's sweep kills it once this process is gone.
        if (_process.HasExited)
            _record?.Dispose();
        _record = null;
        _process.Dispose();
        _process = null;
    }

    /// <summary>Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a hung Redis.</summary>
    public void Freeze() => Signal(UnixSignals.Stop);

    /// <summary>Lets a frozen server run again (SIGCONT).</summary>
    public void Thaw() => Signal(UnixSignals.Cont);

    public void Dispose() => Kill();

    /// <summary>
    /// A multiplexer of the test's own for this server: admin commands on, quick to connect, and reconnecting every
    /// 250 ms, so that tests which freeze, kill or restart the server see it come back soon.
    /// </summary>
    public async Task<ConnectionMultiplexer> ConnectAsync()
    {
        var options = ConfigurationOptions.Parse(Endpoint);
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 500;
        options.AllowAdmin = true;
        options.ReconnectRetryPolicy = new LinearRetry(250);
        return await ConnectionMultiplexer.ConnectAsync(options);
    }

    private void Signal(int signal)
    {
        if (_process is { HasExited: false })
            UnixSignals.Send(_process.Id, signal);
    }

    private async Task<bool> RespondsToPingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            await client.ConnectAsync("127.0.0.1", Port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), timeout.Token);
            var buffer = new byte[64];
            var read = await stream.ReadAsync(buffer, timeout.Token);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}

/// <summary>Finds the Redis binaries; skips the test when they are missing, or fails it when Redis is required.</summary>
public static class RedisBinaries
{
    public static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/bin").Append("/usr/local/bin")
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);

    /// <summary>The binary's path; otherwise skips the calling test, or fails it under <c>LEGATE_REQUIRE_REDIS=1</c>.</summary>
    public static string Require(string name)
    {
        if (Find(name) is { } path)
            return path;
        if (RedisFixture.Required)
            Assert.Fail($"LEGATE_REQUIRE_REDIS=1 but {name} is not on PATH.");
        Assert.Skip($"{name} is not on PATH. Install Redis to run this test.");
        return "";
    }
}
