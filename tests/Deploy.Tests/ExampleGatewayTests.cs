using System.Globalization;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>
/// deploy/examples/gateway.yaml as compose and the chart use it: rendered by the real `legate render` with compose's
/// arguments, the Envoy config must address compose's services on their ports, and pass envoy-check.
/// </summary>
public sealed class ExampleGatewayTests : IAsyncLifetime
{
    private static readonly string Examples = Path.Combine(RepoPaths.Root, "deploy", "examples");
    private string _output = "";
    private YamlDotNet.RepresentationModel.YamlMappingNode _compose = null!;

    public async ValueTask InitializeAsync()
    {
        _compose = await ComposeTests.ConfigAsync();
        // compose's render command, with its mounts mapped to this machine: /gateway = deploy/examples, /out = a temp folder.
        var command = _compose.Strs("services", "render", "command").ToArray();
        Assert.Equal(["render", "/gateway/gateway.yaml", "-o", "/out", "--envoy-dir"], command[..5]);
        _output = Directory.CreateTempSubdirectory("legate-render-").FullName;
        var (exitCode, stdout, stderr) = await LegateCli.RenderAsync(Path.Combine(Examples, "gateway.yaml"), _output, command[5]);
        Assert.True(exitCode == 0, $"legate render failed ({exitCode}): {stdout}{stderr}");
    }

    public ValueTask DisposeAsync()
    {
        if (_output.Length > 0)
            Directory.Delete(_output, recursive: true);
        return ValueTask.CompletedTask;
    }

    private YamlDotNet.RepresentationModel.YamlMappingNode ComposeService(string name) => _compose.Map("services", name);

    private static IEnumerable<(string Cluster, string Host, string Port)> Endpoints(YamlDotNet.RepresentationModel.YamlNode clusters) =>
        clusters.Seq().SelectMany(c => c.Seq("load_assignment", "endpoints")
            .SelectMany(e => e.Seq("lb_endpoints"))
            .Select(e => (c.Str("name")!, e.Str("endpoint", "address", "socket_address", "address")!, e.Str("endpoint", "address", "socket_address", "port_value")!)));

    [Fact]
    public void RenderedFiles_AreWhereComposeMountsThem()
    {
        // Envoy, authz and ratelimit mount the volume at /etc/legate; render writes it at /out.
        var envoyConfig = ComposeService("envoy").Strs("command")[1];
        Assert.True(File.Exists(Path.Combine(_output, Path.GetRelativePath("/etc/legate", envoyConfig))), envoyConfig);
        var policies = ComposeService("authz").Str("environment", "Legate__Rules__authz__Path")!;
        Assert.True(File.Exists(Path.Combine(_output, Path.GetRelativePath("/etc/legate", policies))), policies);
        var rules = ComposeService("ratelimit").Str("environment", "Legate__Rules__ratelimit__Path")!;
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(_output, Path.GetRelativePath("/etc/legate", rules)), "*.yaml"));

        var bootstrap = Yaml.Load(Path.Combine(_output, "envoy", "envoy.yaml"));
        foreach (var source in new[] { "cds_config", "lds_config" })
        {
            var path = bootstrap.Str("dynamic_resources", source, "path_config_source", "path")!;
            Assert.StartsWith("/etc/legate/", path, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(_output, Path.GetRelativePath("/etc/legate", path))), path);
        }
    }

    [Fact]
    public void EnvoyClusters_AddressComposesServicesOnTheirGrpcPorts()
    {
        var bootstrap = Yaml.Load(Path.Combine(_output, "envoy", "envoy.yaml"));

        var endpoints = Endpoints(bootstrap.At("static_resources", "clusters")!).ToDictionary(e => e.Cluster);
        foreach (var service in ServiceInfo.All)
        {
            var (_, host, port) = endpoints[$"legate_{service.Name}"];
            Assert.Equal(service.Name, host);
            Assert.Equal(service.GrpcPort.ToString(CultureInfo.InvariantCulture), port);
            Assert.NotNull(_compose.At("services", host));
        }
    }

    [Fact]
    public void Backends_AreComposeServices_AndTheListenerIsPublished()
    {
        var clusters = Yaml.Load(Path.Combine(_output, "envoy", "dynamic", "cds.yaml")).Seq("resources");
        foreach (var (cluster, host, port) in Endpoints(new YamlDotNet.RepresentationModel.YamlSequenceNode(clusters)))
        {
            Assert.True(_compose.At("services", host) is not null, $"backend {cluster} names {host}, which is not a compose service");
            Assert.Equal(ComposeService(host).Str("environment", "HTTP_PORT"), port);
        }
        var listeners = Yaml.Load(Path.Combine(_output, "envoy", "dynamic", "lds.yaml")).Seq("resources");
        var published = ComposeService("envoy").Strs("ports");
        foreach (var listener in listeners)
        {
            var port = listener.Str("address", "socket_address", "port_value");
            Assert.Contains($"127.0.0.1:{port}:{port}/tcp", published);
        }
    }

    [Fact]
    public void ComposeHealthchecks_AndStatsink_MatchTheRenderedBootstrap()
    {
        var bootstrap = Yaml.Load(Path.Combine(_output, "envoy", "envoy.yaml"));
        var staticListeners = bootstrap.Seq("static_resources", "listeners").ToDictionary(l => l.Str("name")!, l => l.Str("address", "socket_address", "port_value"));

        Assert.Contains($"/dev/tcp/127.0.0.1/{staticListeners["ready"]}", string.Join(' ', ComposeService("envoy").Strs("healthcheck", "test")), StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{staticListeners["stats"]}:{staticListeners["stats"]}/tcp", ComposeService("envoy").Strs("ports"));
        var sink = bootstrap.Seq("stats_sinks").Single(s => s.Str("name") == "envoy.stat_sinks.metrics_service");
        var deltas = sink.Str("typed_config", "report_counters_as_deltas") == "true";
        Assert.Equal(deltas ? "delta" : "cumulative", ComposeService("statsink").Str("environment", "Legate__StatSink__CounterMode"));
    }

    [Fact]
    public async Task RenderedEnvoyConfig_PassesEnvoyCheck()
    {
        if (SharedTools.EnvoyCheckTool("envoy-check") is not { } tool)
        {
            Assert.Skip("../shared/tools/envoy-check is not beside the repository.");
            return;
        }
        var envoy = Path.Combine(_output, "envoy");

        var (exitCode, output) = await SharedTools.RunAsync(tool, Path.Combine(envoy, "envoy.yaml"), Path.Combine(envoy, "dynamic", "cds.yaml"), Path.Combine(envoy, "dynamic", "lds.yaml"));

        Assert.True(exitCode == 0, output);
        Assert.Contains("0 error(s)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExampleGatewayFile_InstallsAsTheReadmeSays_WithItsServicesResolvingToTheChartsServices()
    {
        var examples = Examples;
        var chart = await HelmChart.TemplateWithArgsAsync(
            "--set-file", $"gateway={Path.Combine(examples, "gateway.yaml")}",
            "--set-file", $"gatewayFiles.keys\\.yaml={Path.Combine(examples, "keys.yaml")}");

        Assert.Equal(File.ReadAllText(Path.Combine(examples, "gateway.yaml")), chart.GatewayText());
        Assert.Equal(File.ReadAllText(Path.Combine(examples, "keys.yaml")), chart.Get("ConfigMap", HelmChart.Name("gateway")).Str("data", "keys.yaml"));
        foreach (var (name, address) in chart.GatewayServiceAddresses())
        {
            var info = ServiceInfo.Get(name);
            Assert.Equal($"{name}:{info.GrpcPort}", address);
            Assert.Contains(chart.ServiceOf(name).Seq("spec", "ports"), p => p.Str("port") == info.GrpcPort.ToString(CultureInfo.InvariantCulture));
        }
        var listenerPorts = chart.GatewayFile().Seq("listeners").Select(l => l.Str("port")).ToList();
        Assert.Equal(listenerPorts, chart.Get("Service", HelmChart.Name("envoy")).Seq("spec", "ports").Select(p => p.Str("port")));
    }

    [Fact]
    public async Task Chart_RendersTheExampleFromItsConfigMapAsTheInitContainerDoes_AndProbesTheRenderedListeners()
    {
        // As the README installs it: the gateway file and the files it names.
        var chart = await HelmChart.TemplateWithArgsAsync(
            "--set-file", $"gateway={Path.Combine(Examples, "gateway.yaml")}",
            "--set-file", $"gatewayFiles.keys\\.yaml={Path.Combine(Examples, "keys.yaml")}",
            "--set-file", $"gatewayFiles.idp\\.jwks\\.json={Path.Combine(Examples, "idp.jwks.json")}");
        var deployment = chart.Deployment("envoy");
        var render = HelmChart.Container(deployment, "render");
        var args = render.Strs("args");
        var mount = render.Seq("volumeMounts").Single(m => m.Str("name") == "gateway").Str("mountPath")!;
        Assert.Equal(["render", $"{mount}/gateway.yaml", "-o"], args.Take(3));
        // The ConfigMap's files as Kubernetes mounts them, and render run on them as the init container runs it.
        var mounted = Directory.CreateTempSubdirectory("legate-chart-gateway-").FullName;
        var output = Directory.CreateTempSubdirectory("legate-chart-").FullName;
        try
        {
            foreach (var (name, content) in chart.Get("ConfigMap", HelmChart.Name("gateway")).Entries("data"))
                await File.WriteAllTextAsync(Path.Combine(mounted, name), ((YamlDotNet.RepresentationModel.YamlScalarNode)content).Value, TestContext.Current.CancellationToken);
            var (exitCode, stdout, stderr) = await LegateCli.RenderAsync(Path.Combine(mounted, Path.GetFileName(args[1])), output, args[5]);
            Assert.True(exitCode == 0, stdout + stderr);

            var envoy = HelmChart.Container(deployment, "envoy");
            var config = envoy.Strs("args")[1];
            var bootstrapPath = Path.Combine(output, Path.GetRelativePath(args[3], config));
            Assert.True(File.Exists(bootstrapPath), config);
            var bootstrap = Yaml.Load(bootstrapPath);
            Assert.StartsWith(args[5] + "/", bootstrap.Str("dynamic_resources", "lds_config", "path_config_source", "path"), StringComparison.Ordinal);
            var listeners = bootstrap.Seq("static_resources", "listeners").ToDictionary(l => l.Str("name")!, l => l.Str("address", "socket_address", "port_value"));
            var ports = envoy.Seq("ports").ToDictionary(p => p.Str("name")!, p => p.Str("containerPort"));
            Assert.Equal(listeners["ready"], ports["ready"]);
            Assert.Equal(listeners["stats"], ports["stats"]);
            var sink = bootstrap.Seq("stats_sinks").Single().Str("typed_config", "report_counters_as_deltas") == "true";
            Assert.Equal(sink ? "delta" : "cumulative", HelmChart.Env(HelmChart.Container(chart.Deployment("statsink"), "statsink"), "Legate__StatSink__CounterMode"));
        }
        finally
        {
            Directory.Delete(output, recursive: true);
            Directory.Delete(mounted, recursive: true);
        }
    }
}
