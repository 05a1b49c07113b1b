using System.Text;

namespace Legate.Gateway.Tests;

/// <summary>
/// The example gateway file rendered with the contract's defaults, byte for byte against tests/Gateway.Tests/golden/.
/// A deliberate change to the output: run with LEGATE_UPDATE_GOLDEN=1 once, review the diff, commit it.
/// </summary>
public sealed class GoldenTests
{
    private static readonly string GoldenDir = Path.Combine(Legate.Testing.RepoPaths.Root, "tests", "Gateway.Tests", "golden", "example");

    // The generated files only: keys.yaml and the JWKS are copies of the example's own files.
    private static readonly string[] Generated =
        ["envoy/envoy.yaml", "envoy/dynamic/cds.yaml", "envoy/dynamic/lds.yaml", "authz/policies.yaml", "ratelimit/edge.yaml", "summary.txt"];

    [Fact]
    public void Example_RendersToTheGoldenFiles()
    {
        using var output = new TempDir();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.Equal(Cli.Ok, Cli.Run(["render", GatewayFiles.Example, "-o", output.Path], stdout, stderr));

        var update = Environment.GetEnvironmentVariable("LEGATE_UPDATE_GOLDEN") == "1";
        var mismatches = new StringBuilder();
        foreach (var file in Generated)
        {
            var actual = File.ReadAllText(Path.Combine(output.Path, file));
            var golden = Path.Combine(GoldenDir, file);
            if (update)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(golden)!);
                File.WriteAllText(golden, actual);
                continue;
            }
            Assert.True(File.Exists(golden), $"{golden} is missing: run the tests once with LEGATE_UPDATE_GOLDEN=1");
            if (File.ReadAllText(golden) != actual)
                mismatches.Append(file).Append(" differs from ").Append(golden).Append('\n');
        }
        Assert.True(mismatches.Length == 0, mismatches + "(a deliberate change: LEGATE_UPDATE_GOLDEN=1, then review and commit the golden files)");
    }
}
