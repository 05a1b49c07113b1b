using Legate.Gateway.Import;
using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using Legate.Testing;

namespace Legate.Gateway.Tests.Import;

/// <summary>
/// <c>legate import</c> of TLS: Ingress <c>spec.tls</c> and Gateway listeners become TLS listeners whose certificates
/// are the Secrets at their conventional mount path (/etc/legate-tls/&lt;secret&gt;/tls.crt and tls.key); what does not
/// map is reported with file:line:column.
/// </summary>
public sealed class ImportTlsTests : IDisposable
{
    private static readonly string Manifests = Path.Combine(RepoPaths.Root, "tests", "Gateway.Tests", "Import", "manifests");
    private static readonly string GatewayTls = Path.Combine(Manifests, "gateway-tls.yaml");
    private static readonly string Unmappable = Path.Combine(Manifests, "unmappable.yaml");

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static (int ExitCode, string Yaml, string Stderr) Import(params string[] files)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = Cli.Run(["import", .. files], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static TlsCertificateFiles Mounted(string secret) => new($"/etc/legate-tls/{secret}/tls.crt", $"/etc/legate-tls/{secret}/tls.key");

    [Fact]
    public void IngressTls_BecomesAnHttpsListenerBesideThePlainOne()
    {
        var (code, yaml, stderr) = Import(Unmappable);
        Assert.Equal(Cli.Ok, code);

        var config = GatewayLoader.Load(new RulesFile("imported.yaml", yaml));
        Assert.Equal([("http", 8080, false), ("https", 8443, true)], config.Listeners.Select(l => (l.Name, l.Port, l.Tls is not null)));
        Assert.Equal([Mounted("testsecret-tls")], config.Listeners[1].Tls!.Certificates);
        Assert.DoesNotContain("spec.tls", stderr, StringComparison.Ordinal);
        Assert.Contains("# Secret default/testsecret-tls", yaml, StringComparison.Ordinal);
    }

    [Fact]
    public void IngressWithoutTls_KeepsTheDefaultListener()
    {
        var (code, yaml, stderr) = Import(Path.Combine(Manifests, "ingress-fanout.yaml"));
        Assert.True(code == Cli.Ok, stderr);

        Assert.DoesNotContain("listeners:", yaml, StringComparison.Ordinal);
    }

    [Fact]
    public void GatewayListeners_MapPortsAndMergeHttpsCertificatesPerPort_AndReportWhatDoesNotMap()
    {
        var (code, yaml, stderr) = Import(GatewayTls);
        Assert.Equal(Cli.Ok, code);

        var config = GatewayLoader.Load(new RulesFile("imported.yaml", yaml));
        // 80 and 443 move to 8080 and 8443 (Envoy runs unprivileged); both HTTPS listeners on 443 share one TLS
        // listener, where Envoy picks each certificate by SNI.
        Assert.Equal([("http", 8080), ("https", 8443)], config.Listeners.Select(l => (l.Name, l.Port)));
        Assert.Null(config.Listeners[0].Tls);
        Assert.Equal([Mounted("acme-tls"), Mounted("globex-tls")], config.Listeners[1].Tls!.Certificates);
        string[] expected =
        [
            "gateway-tls.yaml:13:17: spec.listeners[1].hostname: has no equivalent: every listener serves every route",
            "gateway-tls.yaml:20:17: spec.listeners[3].protocol: protocol 'TLS' has no equivalent (HTTP and HTTPS only): listener not imported (Gateway shop/eg)",
            "gateway-tls.yaml:38:47: spec.tls[0].secretName: Secret other/acme-tls would be mounted at /etc/legate-tls/acme-tls/, which Secret shop/acme-tls already takes: not imported (Ingress other/web)",
            "gateway-tls.yaml:39:7: spec.tls[1]: has no secretName: not imported (Ingress other/web)",
        ];
        foreach (var line in expected)
            Assert.Contains(Path.Combine(Manifests, line), stderr, StringComparison.Ordinal);
        Assert.Contains("4 thing(s) not imported", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ name: h, protocol: HTTPS, port: 443, tls: { mode: Passthrough, certificateRefs: [{ name: s }] } }", "spec.listeners[0].tls.mode", "mode 'Passthrough' has no equivalent")]
    [InlineData("{ name: h, protocol: HTTPS, port: 443, tls: { certificateRefs: [{ kind: ConfigMap, name: s }] } }", "spec.listeners[0].tls.certificateRefs[0]", "a certificate of kind ConfigMap is not imported")]
    [InlineData("{ name: h, protocol: HTTPS, port: 443 }", "spec.listeners[0].tls.certificateRefs", "names no certificate: listener not imported")]
    [InlineData("{ name: h, protocol: HTTPS, port: 443, tls: { certificateRefs: [{ name: s }], options: { x: y } } }", "spec.listeners[0].tls.options", "has no equivalent: not applied")]
    public void GatewayTlsWithoutAnEquivalent_IsReported(string listener, string field, string problem)
    {
        File.WriteAllText(_dir.File("gw.yaml"), $$"""
            apiVersion: gateway.networking.k8s.io/v1
            kind: Gateway
            metadata: { name: eg }
            spec:
              listeners:
                - {{listener}}
                - { name: web, protocol: HTTP, port: 8080 }
            ---
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: { name: r }
            spec:
              rules: [{ backendRefs: [{ name: api, port: 80 }] }]
            """);

        var (code, _, stderr) = Import(_dir.File("gw.yaml"));

        Assert.Equal(Cli.Ok, code);
        Assert.Contains($"{_dir.File("gw.yaml")}:6:", stderr, StringComparison.Ordinal);
        Assert.Contains($": {field}: {problem}", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ImportedTls_RendersToSdsSecretsThatPassEnvoyCheck()
    {
        var (code, yaml, stderr) = Import(GatewayTls);
        Assert.Equal(Cli.Ok, code);
        File.WriteAllText(_dir.File("gateway.yaml"), yaml);
        using var stdout = new StringWriter();
        using var renderErr = new StringWriter();
        Assert.True(Cli.Run(["render", _dir.File("gateway.yaml"), "-o", _dir.File("out"), "--envoy-dir", _dir.File("out/envoy")], stdout, renderErr) == Cli.Ok, renderErr.ToString());

        var secrets = Directory.GetFiles(_dir.File("out/envoy/sds")).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["https-cert-0.yaml", "https-cert-1.yaml"], secrets.Select(Path.GetFileName));
        Assert.Contains($"path: {ManifestImporter.SecretFolder("acme-tls")}", File.ReadAllText(secrets[0]), StringComparison.Ordinal);

        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        var (checkCode, output) = await SharedTools.RunAsync(tool!, [_dir.File("out/envoy/envoy.yaml"), .. secrets]);
        Assert.True(checkCode == 0, output);
        Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
    }
}
