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

    /// <summary>Runs a tool with arguments; returns its exit code and combined output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string tool, params string[] args)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoPaths.Root };
        start.ArgumentList.Add(tool);
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        return (process.ExitCode, (await stdout) + (await stderr));
    }
}
