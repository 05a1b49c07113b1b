using Legate.Testing;

namespace Legate.Protos.Tests;

/// <summary>Our trimmed protos against Envoy's own API definitions, with the checker in <c>../shared</c>.</summary>
public sealed class EnvoyCompatibilityTests
{
    [Fact]
    public async Task ProtoCompat_FindsProtosWireCompatibleWithEnvoy()
    {
        var tool = SharedTools.EnvoyCheckTool("proto-compat");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");

        var (exitCode, output) = await SharedTools.RunAsync(tool!, Path.Combine(RepoPaths.Root, "protos"));

        Assert.True(exitCode == 0, output);
        Assert.Contains("OK:", output, StringComparison.Ordinal);
        Assert.Contains(" 0 error(s)", output, StringComparison.Ordinal);
    }
}
