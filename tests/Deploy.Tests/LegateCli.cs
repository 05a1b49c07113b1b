using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>The built <c>legate</c> CLI, run as a process the way compose's render service and the chart's init container run it.</summary>
internal static class LegateCli
{
    public static string Assembly => RepoPaths.ServiceAssembly("gateway", "legate");

    public static Task<(int ExitCode, string Stdout, string Stderr)> RenderAsync(string gatewayFile, string output, string envoyDir) =>
        DeployTools.RunAsync("dotnet", [Assembly, "render", gatewayFile, "-o", output, "--envoy-dir", envoyDir]);
}
