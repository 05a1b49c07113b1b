using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Grpc.Net.Client;

namespace Legate.Testing;

/// <summary>
/// A Legate service run as its own process, exactly as an operator starts it, on free ports of 127.0.0.1.
/// For what only a real process shows: SIGTERM handling, exit codes, <c>--healthcheck</c>, start-up failures.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private GrpcChannel? _channel;

    private ServiceProcess(Process process, int grpcPort, int httpPort)
    {
        _process = process;
        GrpcPort = grpcPort;
        HttpPort = httpPort;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) _output.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _output.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int GrpcPort { get; }

    public int HttpPort { get; }

    public Uri GrpcAddress => new($"http://127.0.0.1:{GrpcPort}");

    public Uri HttpAddress => new($"http://127.0.0.1:{HttpPort}");

    /// <summary>Everything the process wrote so far, stdout and stderr interleaved.</summary>
    public string Output => string.Join('\n', _output);

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>A channel to the service's gRPC port.</summary>
    public GrpcChannel Channel => _channel ??= GrpcChannel.ForAddress(GrpcAddress);

    /// <summary>Starts a service's built assembly with free ports, a drain delay of <paramref name="drainDelay"/>, and extra <c>--key=value</c> settings.</summary>
    public static ServiceProcess Start(string assemblyPath, IEnumerable<string>? settings = null, TimeSpan? drainDelay = null)
    {
        if (!File.Exists(assemblyPath))
            throw new FileNotFoundException($"Service not built: {assemblyPath}. Build Services.sln first.", assemblyPath);
        var grpcPort = FreePort.Next();
        var httpPort = FreePort.Next();
        var start = Dotnet(assemblyPath, Settings(grpcPort, httpPort, drainDelay ?? TimeSpan.Zero).Concat(settings ?? []));
        return new ServiceProcess(Process.Start(start)!, grpcPort, httpPort);
    }

    /// <summary>Runs the service's <c>--healthcheck</c> mode against this process's HTTP port and returns its exit code.</summary>
    public async Task<int> RunHealthCheckAsync(string assemblyPath)
    {
        using var probe = Process.Start(Dotnet(assemblyPath, ["--healthcheck", $"--Legate:HttpPort={HttpPort}"]))!;
        await probe.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return probe.ExitCode;
    }

    /// <summary>Waits until <c>/readyz</c> answers 200, or fails with the process output.</summary>
    public async Task WaitUntilReadyAsync(TimeSpan? timeout = null)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"The service exited with code {_process.ExitCode} before it was ready:\n{Output}");
            try
            {
                using var response = await client.GetAsync(new Uri(HttpAddress, "/readyz"));
                if (response.IsSuccessStatusCode)
                    return;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"The service was not ready within the timeout:\n{Output}");
    }

    /// <summary>Sends SIGTERM, as Kubernetes and Docker do to stop a container.</summary>
    public void Terminate()
    {
        if (!UnixSignals.Send(_process.Id, UnixSignals.Term))
            throw new InvalidOperationException($"kill({_process.Id}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        _channel?.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    // Run from the service's own folder, as its container does: appsettings.json is found there.
    private static ProcessStartInfo Dotnet(string assemblyPath, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(assemblyPath)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(assemblyPath);
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        return start;
    }

    private static IEnumerable<string> Settings(int grpcPort, int httpPort, TimeSpan drainDelay) =>
    [
        $"--Legate:GrpcPort={grpcPort}",
        $"--Legate:HttpPort={httpPort}",
        "--Legate:BindAddress=127.0.0.1",
        $"--Legate:DrainDelay={drainDelay.ToString("c", CultureInfo.InvariantCulture)}",
        "--Legate:LogFormat=text",
    ];
}
