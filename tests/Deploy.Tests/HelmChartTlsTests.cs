namespace Legate.Deploy.Tests;

/// <summary>
/// HTTPS at Envoy in the chart (ci/tls.yaml): the TLS Secrets mounted where the gateway file names them, the TLS port
/// published, and a gateway file naming a Secret the chart does not mount refused.
/// </summary>
public sealed class HelmChartTlsTests
{
    [Fact]
    public async Task TlsSecrets_AreMountedWholeAndReadOnly_WhereTheRenderedSdsSecretsLookForThem()
    {
        var chart = await HelmChart.TemplateAsync("tls.yaml");
        var deployment = chart.Deployment("envoy");
        var envoy = HelmChart.Container(deployment, "envoy");
        var volumes = HelmChart.PodSpec(deployment).Seq("volumes");

        // What Envoy will read, as legate render writes it from the chart's own gateway file (the init container's command).
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("gateway.yaml"), chart.GatewayText());
        var (exitCode, stdout, stderr) = await LegateCli.RenderAsync(dir.File("gateway.yaml"), dir.File("out"), "/etc/legate/envoy");
        Assert.True(exitCode == 0, stdout + stderr);
        var files = Directory.GetFiles(dir.File("out/envoy/sds"), "*.yaml").Order(StringComparer.Ordinal)
            .SelectMany(f => Yaml.Load(f).Seq("resources"))
            .SelectMany(s => new[] { s.Str("tls_certificate", "certificate_chain", "filename"), s.Str("tls_certificate", "private_key", "filename") })
            .ToList();
        Assert.Equal(4, files.Count);

        foreach (var file in files)
        {
            var folder = Path.GetDirectoryName(file)!;
            var mount = Assert.Single(envoy.Seq("volumeMounts"), m => m.Str("mountPath") == folder);
            Assert.Equal("true", mount.Str("readOnly"));
            // A subPath mount would never see a renewed Secret.
            Assert.Null(mount.At("subPath"));
            var volume = Assert.Single(volumes, v => v.Str("name") == mount.Str("name"));
            Assert.Equal(Path.GetFileName(folder), volume.Str("secret", "secretName"));
        }
    }

    [Fact]
    public async Task TheKeysTheGatewayFileNames_AreTheSecretVolumesItems()
    {
        // Listed as items, a key the Secret lacks keeps the pod from starting (an event names it). Mounted whole, the
        // pod would start, Envoy would report ready without the certificate and never notice it arriving later.
        var chart = await HelmChart.TemplateAsync("tls.yaml");
        var volumes = HelmChart.PodSpec(chart.Deployment("envoy")).Seq("volumes");

        foreach (var secret in new[] { "acme-tls", "globex-tls" })
        {
            var volume = Assert.Single(volumes, v => v.Str("secret", "secretName") == secret);
            var items = volume.Seq("secret", "items").Select(i => (i.Str("key"), i.Str("path"))).ToList();
            Assert.Equal([("tls.crt", "tls.crt"), ("tls.key", "tls.key")], items);
        }
    }

    [Fact]
    public async Task AFileInAFolderOfTheSecret_IsRefused()
    {
        // A Secret's keys are files directly in its folder: nothing could ever be at such a path.
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("gateway.yaml"), (await HelmChart.TemplateAsync("tls.yaml")).GatewayText()
            .Replace("/etc/legate-tls/globex-tls/tls.key", "/etc/legate-tls/globex-tls/keys/tls.key", StringComparison.Ordinal));

        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory,
            "-f", Path.Combine(HelmChart.Directory, "ci", "tls.yaml"), "--set-file", "gateway=" + dir.File("gateway.yaml"));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("gateway: listeners[1].tls names /etc/legate-tls/globex-tls/keys/tls.key, but a Secret's keys are files directly in /etc/legate-tls/globex-tls/",
            stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheTlsListener_IsPublishedOnItsServicePort()
    {
        var chart = await HelmChart.TemplateAsync("tls.yaml");

        var envoy = HelmChart.Container(chart.Deployment("envoy"), "envoy");
        var https = chart.GatewayFile().Seq("listeners").Single(l => l.At("tls") is not null);
        var containerPort = Assert.Single(envoy.Seq("ports"), p => p.Str("containerPort") == https.Str("port"));
        var servicePort = Assert.Single(chart.Get("Service", HelmChart.Name("envoy")).Seq("spec", "ports"), p => p.Str("targetPort") == containerPort.Str("name"));
        Assert.Equal("443", servicePort.Str("port"));
        Assert.Contains(chart.Get("Service", HelmChart.Name("envoy")).Seq("spec", "ports"), p => p.Str("port") == "80" && p.Str("targetPort") == "http");
    }

    [Fact]
    public async Task AGatewayFileNamingASecretTheChartDoesNotMount_IsRefused()
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory,
            "-f", Path.Combine(HelmChart.Directory, "ci", "tls.yaml"), "--set", "envoy.tlsSecrets={acme-tls}");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("gateway: listeners[1].tls names /etc/legate-tls/globex-tls/tls.crt, but envoy.tlsSecrets does not mount a Secret named globex-tls",
            stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ACertificateOutsideTheMountedSecrets_IsRefused()
    {
        // Nothing else is mounted into Envoy's pod: Envoy would start, report ready, and fail every TLS handshake.
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("gateway.yaml"), (await HelmChart.TemplateAsync("tls.yaml")).GatewayText()
            .Replace("/etc/legate-tls/globex-tls/tls.key", "/etc/ssl/private/globex.key", StringComparison.Ordinal));

        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory,
            "-f", Path.Combine(HelmChart.Directory, "ci", "tls.yaml"), "--set-file", "gateway=" + dir.File("gateway.yaml"));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("gateway: listeners[1].tls names /etc/ssl/private/globex.key, outside /etc/legate-tls/", stderr, StringComparison.Ordinal);
    }

    [Theory]
    // The TLS listener not published: clients could never reach it.
    [InlineData("envoy.ports[1].port=9443", "gateway: listeners[1] (https) listens on port 8443, but envoy.ports does not publish it")]
    // A Service port in front of no listener.
    [InlineData("envoy.ports[2].name=extra,envoy.ports[2].port=9090", "envoy.ports[2] publishes port 9090, where the gateway file has no listener")]
    public async Task EnvoyPortsOtherThanTheGatewayFilesListenerPorts_AreRefused(string set, string message)
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory,
            "-f", Path.Combine(HelmChart.Directory, "ci", "tls.yaml"), "--set", set);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ALoopbackListener_NeedsNoServicePort()
    {
        // 127.0.0.1 is reachable from inside the pod only: publishing it would be the mistake.
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("gateway.yaml"), "listeners:\n  - { name: http, port: 8080 }\n  - { name: local, address: 127.0.0.1, port: 8081 }\n");
        var chart = await HelmChart.TemplateWithArgsAsync("--set-file", "gateway=" + dir.File("gateway.yaml"));

        Assert.Equal(["8080"], chart.Get("Service", HelmChart.Name("envoy")).Seq("spec", "ports").Select(p => p.Str("port")));
    }

    [Theory]
    [InlineData("envoy.tlsSecrets={Not_A_Name}")]
    [InlineData("envoy.ports[0].servicePort=0")]
    public async Task Schema_RejectsBadTlsValues(string set)
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory,
            "-f", Path.Combine(HelmChart.Directory, "ci", "tls.yaml"), "--set", set);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("schema", stderr, StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>A fresh temporary folder, deleted with it: gateway files and render output of the chart tests.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("legate-chart-tls-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
