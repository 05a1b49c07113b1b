using YamlDotNet.RepresentationModel;

namespace Legate.Deploy.Tests;

/// <summary>
/// Mutual TLS between Envoy and the services in the chart (ci/service-tls.yaml): each service serves its certificate
/// from its Secret and asks for Envoy's, Envoy reads its client certificate and the services' CA where the gateway
/// file's services.tls names them, the readiness probes leave the gRPC port, and values and gateway file that disagree
/// are refused.
/// </summary>
public sealed class HelmChartServiceTlsTests
{
    private static readonly string[] Services = ["authz", "ratelimit", "statsink"];
    private static readonly string[] TlsSettings = ["Legate__GrpcTls__CertificatePath", "Legate__GrpcTls__KeyPath", "Legate__GrpcTls__ClientCaPath"];

    /// <summary>Envoy's client certificate in ci/service-tls.yaml's gateway file.</summary>
    private const string ClientCertificate = "    cert_file: /etc/legate-tls/legate-envoy/tls.crt\n    key_file: /etc/legate-tls/legate-envoy/tls.key\n";

    private static string CiFile => Path.Combine(HelmChart.Directory, "ci", "service-tls.yaml");

    /// <summary>The folder a container mounts <paramref name="file"/> from: (its Secret volume, the key).</summary>
    private static (YamlNode Volume, string Key) SecretFile(YamlMappingNode deployment, YamlNode container, string file)
    {
        var folder = Path.GetDirectoryName(file)!;
        var mount = Assert.Single(container.Seq("volumeMounts"), m => m.Str("mountPath") == folder);
        Assert.Equal("true", mount.Str("readOnly"));
        // A subPath mount would never see a renewed Secret.
        Assert.Null(mount.At("subPath"));
        var volume = Assert.Single(HelmChart.PodSpec(deployment).Seq("volumes"), v => v.Str("name") == mount.Str("name"));
        var key = Path.GetFileName(file);
        // Listed as an item: a Secret without the key keeps the pod from starting instead of the service failing.
        Assert.Contains(volume.Seq("secret", "items"), i => i.Str("key") == key && i.Str("path") == key);
        return (volume, key);
    }

    [Fact]
    public async Task EachService_ServesItsSecretsCertificate_AndAsksForEnvoysIssuedByItsCa()
    {
        var chart = await HelmChart.TemplateAsync("service-tls.yaml");

        foreach (var name in Services)
        {
            var deployment = chart.Deployment(name);
            var container = HelmChart.Container(deployment, name);
            var secret = $"legate-{name}-tls";
            var files = TlsSettings.Select(env => HelmChart.Env(container, env)!).ToArray();
            Assert.Equal([$"/etc/legate-tls/{secret}/tls.crt", $"/etc/legate-tls/{secret}/tls.key", $"/etc/legate-tls/{secret}/ca.crt"], files);
            foreach (var file in files)
                Assert.Equal(secret, SecretFile(deployment, container, file).Volume.Str("secret", "secretName"));
        }
    }

    [Fact]
    public async Task WithTls_ReadinessIsReadyzOverHttp_AndTheGrpcPortIsNoLongerCalledH2c()
    {
        // The kubelet's gRPC probe speaks h2c only: against a TLS port every probe would fail and no pod get ready.
        var chart = await HelmChart.TemplateAsync("service-tls.yaml");

        foreach (var name in Services)
        {
            var container = HelmChart.Container(chart.Deployment(name), name);
            Assert.Null(container.At("readinessProbe", "grpc"));
            Assert.Equal("/readyz", container.Str("readinessProbe", "httpGet", "path"));
            Assert.Equal("http", container.Str("readinessProbe", "httpGet", "port"));
            Assert.Equal("/healthz", container.Str("livenessProbe", "httpGet", "path"));
            var grpc = Assert.Single(chart.ServiceOf(name).Seq("spec", "ports"), p => p.Str("name") == "grpc");
            Assert.Null(grpc.At("appProtocol"));
        }
    }

    [Fact]
    public async Task WithoutTls_NothingChanges()
    {
        var chart = await HelmChart.TemplateAsync("inline-gateway.yaml");

        foreach (var name in Services)
        {
            var container = HelmChart.Container(chart.Deployment(name), name);
            Assert.DoesNotContain(container.Seq("env"), e => e.Str("name")!.StartsWith("Legate__GrpcTls__", StringComparison.Ordinal));
            Assert.NotNull(container.At("readinessProbe", "grpc"));
            Assert.DoesNotContain(container.Seq("volumeMounts"), m => m.Str("mountPath")!.StartsWith("/etc/legate-tls/", StringComparison.Ordinal));
            Assert.Equal("kubernetes.io/h2c", chart.ServiceOf(name).Seq("spec", "ports").Single(p => p.Str("name") == "grpc").Str("appProtocol"));
        }
    }

    [Fact]
    public async Task Envoy_ReadsItsClientCertificateAndTheServicesCa_WhereTheRenderedSecretsLookForThem()
    {
        var chart = await HelmChart.TemplateAsync("service-tls.yaml");
        var deployment = chart.Deployment("envoy");
        var envoy = HelmChart.Container(deployment, "envoy");

        // What Envoy will read, as legate render writes it from the chart's own gateway file (the init container's command).
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("gateway.yaml"), chart.GatewayText());
        var (exitCode, stdout, stderr) = await LegateCli.RenderAsync(dir.File("gateway.yaml"), dir.File("out"), "/etc/legate/envoy");
        Assert.True(exitCode == 0, stdout + stderr);
        var files = Directory.GetFiles(dir.File("out/envoy/sds"), "*.yaml").Order(StringComparer.Ordinal)
            .SelectMany(f => Yaml.Load(f).Seq("resources"))
            .SelectMany(s => new[] { s.Str("tls_certificate", "certificate_chain", "filename"), s.Str("tls_certificate", "private_key", "filename"), s.Str("validation_context", "trusted_ca", "filename") })
            .OfType<string>().ToList();
        Assert.Equal(3, files.Count);
        foreach (var file in files)
            Assert.Equal("legate-envoy", SecretFile(deployment, envoy, file).Volume.Str("secret", "secretName"));

        // Each service's certificate must carry the name Envoy checks: the chart's Service name, as the gateway file addresses it.
        var clusters = Yaml.Load(dir.File("out/envoy/envoy.yaml")).Seq("static_resources", "clusters");
        foreach (var name in Services)
        {
            var tls = clusters.Single(c => c.Str("name") == "legate_" + name).At("transport_socket", "typed_config")!;
            Assert.Equal(chart.ServiceOf(name).Str("metadata", "name"), tls.Str("sni"));
        }
    }

    [Fact]
    public async Task AClientCaSecret_IsMountedBesideEachServicesOwn()
    {
        var chart = await HelmChart.TemplateAsync("service-tls.yaml", "serviceTls.clientCaSecret=legate-envoy-ca");

        foreach (var name in Services)
        {
            var deployment = chart.Deployment(name);
            var container = HelmChart.Container(deployment, name);
            var (volume, _) = SecretFile(deployment, container, HelmChart.Env(container, "Legate__GrpcTls__ClientCaPath")!);
            Assert.Equal("legate-envoy-ca", volume.Str("secret", "secretName"));
            Assert.Equal(["ca.crt"], volume.Seq("secret", "items").Select(i => i.Str("key")));
            // The service's own Secret is then asked for its certificate and key only.
            var (own, _) = SecretFile(deployment, container, HelmChart.Env(container, "Legate__GrpcTls__CertificatePath")!);
            Assert.Equal(["tls.crt", "tls.key"], own.Seq("secret", "items").Select(i => i.Str("key")));
        }
    }

    [Fact]
    public async Task WithoutClientCertificates_TheServicesAskForNone_AndEnvoyNeedsNone()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("gateway.yaml"), (await HelmChart.TemplateAsync("service-tls.yaml")).GatewayText()
            .Replace(ClientCertificate, "", StringComparison.Ordinal));

        var chart = await HelmChart.TemplateWithArgsAsync("-f", CiFile, "--set-file", "gateway=" + dir.File("gateway.yaml"),
            "--set", "serviceTls.requireClientCertificate=false");

        foreach (var name in Services)
        {
            var container = HelmChart.Container(chart.Deployment(name), name);
            Assert.NotNull(HelmChart.Env(container, "Legate__GrpcTls__CertificatePath"));
            Assert.Null(HelmChart.Env(container, "Legate__GrpcTls__ClientCaPath"));
        }
        var envoyVolume = Assert.Single(HelmChart.PodSpec(chart.Deployment("envoy")).Seq("volumes"), v => v.Str("secret", "secretName") == "legate-envoy");
        Assert.Equal(["ca.crt"], envoyVolume.Seq("secret", "items").Select(i => i.Str("key")));
    }

    [Theory]
    // Envoy would call TLS ports in h2c, or h2c ports over TLS: every call fails, and authz fails closed.
    [InlineData("serviceTls.enabled=false", null, "gateway: services.tls has Envoy call the services over TLS, but serviceTls.enabled is false")]
    [InlineData(null, "services.tls", "serviceTls.enabled: the services serve TLS, but the gateway file has no services.tls")]
    [InlineData("serviceTls.secrets.ratelimit=", null, "serviceTls.secrets.ratelimit: set the Secret (kubernetes.io/tls: tls.crt, tls.key) holding ratelimit's certificate")]
    // The services would refuse Envoy's handshake.
    [InlineData(null, "client certificate", "serviceTls.requireClientCertificate: the services require a client certificate, but the gateway file's services.tls gives Envoy none")]
    // Envoy's client certificate must come from a Secret the chart mounts.
    [InlineData("envoy.tlsSecrets=null", null, "gateway: services.tls names /etc/legate-tls/legate-envoy/tls.crt, but envoy.tlsSecrets does not mount a Secret named legate-envoy")]
    public async Task ValuesAndGatewayFileThatDisagree_AreRefused(string? set, string? leftOut, string message)
    {
        using var dir = new TempFolder();
        var gateway = (await HelmChart.TemplateAsync("service-tls.yaml")).GatewayText();
        Assert.Contains(ClientCertificate, gateway, StringComparison.Ordinal);
        gateway = leftOut switch
        {
            "services.tls" => gateway[gateway.IndexOf("backends:", StringComparison.Ordinal)..],
            "client certificate" => gateway.Replace(ClientCertificate, "", StringComparison.Ordinal),
            _ => gateway,
        };
        File.WriteAllText(dir.File("gateway.yaml"), gateway);
        List<string> args = ["template", HelmChart.Release, HelmChart.Directory, "-f", CiFile, "--set-file", "gateway=" + dir.File("gateway.yaml")];
        if (set is not null)
            args.AddRange(["--set", set]);

        var (exitCode, _, stderr) = await HelmChart.HelmAsync([.. args]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("serviceTls.secrets.authz=Not_A_Name")]
    [InlineData("serviceTls.secrets.envoy=legate-envoy")]
    [InlineData("serviceTls.requireClientCertificate=maybe")]
    public async Task Schema_RejectsBadServiceTlsValues(string set)
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory, "-f", CiFile, "--set", set);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("schema", stderr, StringComparison.OrdinalIgnoreCase);
    }
}
