using System.Diagnostics;

namespace Legate.Testing;

/// <summary>The Envoy fidelity checks in <c>../shared/tools/envoy-check</c>, where that folder exists.</summary>
public static class SharedTools
{
    /// <summary>Path of a tool (<c>envoy-check</c>, <c>proto-compat</c>), or null where <c>../shared</c> is absent.</summary>
    public static string? EnvoyCheckTool(string name) =>
        RepoPaths.Shared is { } shared && File.Exists(Path.Combine(shared, "tools", "envoy-check", name))
            ? Path.Combine(shared, "tools", "envoy-check", name)
            : null;

    // The tools copy their scripts into one cache folder on every run (rm -rf, then cp), so two runs at once remove
    // each other's files ("Cannot find module .../lib/check.js"): test projects run side by side, and tests within
    // one in parallel. One run at a time, in this process and across processes (a lock file).
    private static readonly SemaphoreSlim OneAtATime = new(1, 1);

    private static readonly string LockPath = Path.Combine(Path.GetTempPath(), "legate-envoy-check.lock");

    /// <summary>Runs a tool with arguments; returns its exit code and combined output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string tool, params string[] args)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoPaths.Root };
        start.ArgumentList.Add(tool);
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        await OneAtATime.WaitAsync();
        try
        {
            using var otherProcesses = await LockAsync(TimeSpan.FromMinutes(5));
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
            return (process.ExitCode, (await stdout) + (await stderr));
        }
        finally
        {
            OneAtATime.Release();
        }
    }

    // FileShare.None is an exclusive flock on Linux, held until the stream is disposed.
    private static async Task<FileStream> LockAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }
}
