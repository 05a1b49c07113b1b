using System.Text;

namespace Legate.Gateway.Tests;

/// <summary>
/// Gateway files rendered with the contract's defaults, byte for byte against tests/Gateway.Tests/golden/: the example,
/// a TLS gateway (HTTPS listener, redirect listener, SDS secrets), route features (header and query conditions,
/// header edits, host rewrites) and one calling the services over mutual TLS. A deliberate change to the output: run with
/// LEGATE_UPDATE_GOLDEN=1 once, review the diff, commit it.
/// </summary>
public sealed class GoldenTests
{
    private static readonly string GoldenRoot = Path.Combine(Legate.Testing.RepoPaths.Root, "tests", "Gateway.Tests", "golden");

    // The generated files only: keys.yaml and the JWKS are copies of the example's own files.
    private static readonly string[] Generated =
        ["envoy/envoy.yaml", "envoy/dynamic/cds.yaml", "envoy/dynamic/lds.yaml", "authz/policies.yaml", "ratelimit/edge.yaml", "summary.txt"];

    [Fact]
    public void Example_RendersToTheGoldenFiles() => RendersToGolden(GatewayFiles.Example, "example", Generated);

    [Fact]
    public void TlsGateway_RendersToTheGoldenFiles()
    {
        using var dir = GatewayFiles.Write(ListenerTlsTests.Tls);
        RendersToGolden(dir.File("gateway.yaml"), "tls",
            [.. Generated, "envoy/sds/https-cert-0.yaml", "envoy/sds/https-cert-1.yaml", "envoy/sds/https-client-ca.yaml"]);
    }

    [Fact]
    public void RouteFeatures_RenderToTheGoldenFiles()
    {
        using var dir = GatewayFiles.Write(RouteHeadersTests.Routes);
        RendersToGolden(dir.File("gateway.yaml"), "routes", Generated);
    }

    [Fact]
    public void ServicesTlsGateway_RendersToTheGoldenFiles()
    {
        using var dir = GatewayFiles.Write(ServiceTlsTests.ServicesTls);
        RendersToGolden(dir.File("gateway.yaml"), "services-tls",
            [.. Generated, "envoy/sds/legate_services-ca.yaml", "envoy/sds/legate_services-client.yaml"]);
    }

    private static void RendersToGolden(string gatewayFile, string name, string[] generated)
    {
        using var output = new TempDir();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.True(Cli.Run(["render", gatewayFile, "-o", output.Path], stdout, stderr) == Cli.Ok, stderr.ToString());

        var goldenDir = Path.Combine(GoldenRoot, name);
        var update = Environment.GetEnvironmentVariable("LEGATE_UPDATE_GOLDEN") == "1";
        var mismatches = new StringBuilder();
        foreach (var file in generated)
        {
            var actual = File.ReadAllText(Path.Combine(output.Path, file));
            var golden = Path.Combine(goldenDir, file);
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
        // Every file render wrote under envoy/ is covered: a new kind of output cannot slip past review.
        var written = Directory.EnumerateFiles(Path.Combine(output.Path, "envoy"), "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(output.Path, f)).Order(StringComparer.Ordinal);
        Assert.Equal(generated.Where(f => f.StartsWith("envoy/", StringComparison.Ordinal)).Order(StringComparer.Ordinal), written);
    }
}
