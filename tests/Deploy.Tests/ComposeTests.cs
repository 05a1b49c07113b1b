using System.Text.RegularExpressions;
using Legate.Testing;
using YamlDotNet.RepresentationModel;

namespace Legate.Deploy.Tests;

/// <summary>docker-compose.yml, checked offline: <c>docker-compose config</c> validates and normalises it; the checks read that.</summary>
public sealed partial class ComposeTests
{
    private static readonly string[] Expected = ["render", "envoy", "authz", "ratelimit", "statsink", "redis", "prometheus", "grafana", "upstream"];

    // One `docker-compose config` run (about a second) serves every test.
    private static readonly Lazy<Task<(int ExitCode, string Stdout, string Stderr)>> Normalised = new(() =>
        DeployTools.RunAsync(DeployTools.DockerCompose(), ["-f", Path.Combine(RepoPaths.Root, "docker-compose.yml"), "config"]));

    internal static async Task<YamlMappingNode> ConfigAsync()
    {
        DeployTools.DockerCompose();
        var (exitCode, stdout, stderr) = await Normalised.Value;
        Assert.True(exitCode == 0, "docker-compose config failed: " + stderr);
        return Yaml.Parse(stdout);
    }

    private static YamlMappingNode Service(YamlMappingNode config, string name) => config.Map("services", name);

    // A release tag (x.y.z, optionally with a variant), or a plain number for images released that way.
    [GeneratedRegex(@"^([a-z0-9./-]+:v?\d+\.\d+\.\d+(-[a-z0-9.-]+)?|mendhak/http-https-echo:\d+)$")]
    private static partial Regex PinnedImage();

    [Fact]
    public async Task Config_IsValidAndHasTheWholeStack()
    {
        var config = await ConfigAsync();

        Assert.Equal(Expected.Order(), config.Entries("services").Select(e => e.Key).Order());
    }

    [Fact]
    public async Task Images_ArePinnedReleases_OrBuiltFromThisRepository()
    {
        var config = await ConfigAsync();

        foreach (var (name, service) in config.Entries("services"))
        {
            var image = service.Str("image");
            if (service.At("build") is not null)
            {
                var dockerfile = service.Str("build", "dockerfile")!;
                Assert.True(File.Exists(Path.Combine(RepoPaths.Root, dockerfile)), $"{name}: {dockerfile} does not exist");
                Assert.Equal($"legate/{(name == "render" ? "legate" : name)}:dev", image);
            }
            else
            {
                Assert.Matches(PinnedImage(), image);
            }
        }
    }

    [Fact]
    public async Task EveryServer_HasAHealthcheck_AndEnvoyWaitsForWhatItCalls()
    {
        var config = await ConfigAsync();

        foreach (var (name, service) in config.Entries("services").Where(e => e.Key != "render"))
            Assert.True(service.Seq("healthcheck", "test").Count > 1, $"{name} has no healthcheck");
        var envoy = Service(config, "envoy");
        Assert.Equal("service_completed_successfully", envoy.Str("depends_on", "render", "condition"));
        foreach (var dependency in new[] { "authz", "ratelimit", "statsink", "upstream" })
            Assert.Equal("service_healthy", envoy.Str("depends_on", dependency, "condition"));
        Assert.Equal("service_healthy", Service(config, "ratelimit").Str("depends_on", "redis", "condition"));
        Assert.Equal("service_healthy", Service(config, "grafana").Str("depends_on", "prometheus", "condition"));
    }

    [Theory]
    [InlineData("authz")]
    [InlineData("ratelimit")]
    [InlineData("statsink")]
    public async Task LegateService_ProbesItselfAndRunsReadOnlyAsNonRoot(string name)
    {
        var info = ServiceInfo.Get(name);
        var service = Service(await ConfigAsync(), name);

        Assert.Equal(["CMD", "dotnet", $"/app/{info.Assembly}.dll", "--healthcheck"], service.Strs("healthcheck", "test"));
        Assert.Equal($"deploy/docker/{name}.Dockerfile", service.Str("build", "dockerfile"));
        Assert.Equal("true", service.Str("read_only"));
        Assert.Equal(["ALL"], service.Strs("cap_drop"));
        // The ports stay the image's defaults (appsettings.json), which the Envoy clusters and Prometheus use.
        Assert.DoesNotContain(service.Entries("environment"), e => e.Key.EndsWith("Port", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RenderedConfig_IsSharedAsTheContractSays()
    {
        var config = await ConfigAsync();

        var render = Service(config, "render");
        Assert.Equal(["render", "/gateway/gateway.yaml", "-o", "/out", "--envoy-dir", "/etc/legate/envoy"], render.Strs("command"));
        Assert.Contains($"{Path.Combine(RepoPaths.Root, "deploy", "examples")}:/gateway:ro", render.Strs("volumes"));
        Assert.Contains("legate-config:/out:rw", render.Strs("volumes"));
        foreach (var name in new[] { "envoy", "authz", "ratelimit" })
            Assert.Contains("legate-config:/etc/legate:ro", Service(config, name).Strs("volumes"));
        Assert.Equal(["-c", "/etc/legate/envoy/envoy.yaml", "--log-level", "info"], Service(config, "envoy").Strs("command"));
        Assert.Equal("/etc/legate/authz/policies.yaml", Service(config, "authz").Str("environment", "Legate__Rules__authz__Path"));
        Assert.Equal("/etc/legate/ratelimit", Service(config, "ratelimit").Str("environment", "Legate__Rules__ratelimit__Path"));
    }

    [Fact]
    public async Task Ratelimit_SharesCountersInTheStacksRedis()
    {
        var config = await ConfigAsync();

        var environment = Service(config, "ratelimit").Map("environment");
        Assert.Equal("redis", environment.Str("Legate__RateLimit__Store"));
        Assert.Equal("redis:6379", environment.Str("Legate__Redis__Configuration"));
        Assert.NotNull(config.At("services", "redis"));
    }

    [Fact]
    public async Task PublishedPorts_AreBoundToLoopback()
    {
        var config = await ConfigAsync();

        var published = config.Entries("services").SelectMany(e => e.Value.Strs("ports")).ToList();
        Assert.Contains("127.0.0.1:8080:8080/tcp", published);
        Assert.All(published, p => Assert.StartsWith("127.0.0.1:", p, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Prometheus_ScrapesEveryServiceOnItsHttpPort()
    {
        var config = await ConfigAsync();
        var prometheus = Yaml.Load(Path.Combine(RepoPaths.Root, "deploy", "prometheus", "prometheus.yml"));

        var targets = prometheus.Seq("scrape_configs")
            .SelectMany(job => job.Seq("static_configs"))
            .SelectMany(c => c.Strs("targets"))
            .Order();

        Assert.Equal(ServiceInfo.All.Select(s => $"{s.Name}:{s.HttpPort}").Order(), targets);
        // One job per service, named after it, as the dashboards' job selector expects.
        foreach (var job in prometheus.Seq("scrape_configs"))
            Assert.StartsWith(job.Str("job_name") + ":", job.Seq("static_configs").Single().Strs("targets").Single(), StringComparison.Ordinal);
        Assert.Contains($"{Path.Combine(RepoPaths.Root, "deploy", "prometheus", "prometheus.yml")}:/etc/prometheus/prometheus.yml:ro", Service(config, "prometheus").Strs("volumes"));
    }

    [Fact]
    public async Task PrometheusConfig_PassesPromtool()
    {
        var (exitCode, stdout, stderr) = await DeployTools.RunAsync(DeployTools.Promtool(), ["check", "config", Path.Combine(RepoPaths.Root, "deploy", "prometheus", "prometheus.yml")]);

        Assert.True(exitCode == 0, stdout + stderr);
    }

    [Fact]
    public async Task Grafana_ProvisionsTheStacksPrometheusAndTheDashboards()
    {
        var config = await ConfigAsync();
        var grafana = Path.Combine(RepoPaths.Root, "deploy", "grafana");

        var datasource = Yaml.Load(Path.Combine(grafana, "provisioning", "datasources", "prometheus.yaml")).Seq("datasources").Single();
        Assert.Equal("http://prometheus:9090", datasource.Str("url"));
        Assert.Contains("127.0.0.1:9090:9090/tcp", Service(config, "prometheus").Strs("ports"));
        var provider = Yaml.Load(Path.Combine(grafana, "provisioning", "dashboards", "legate.yaml")).Seq("providers").Single();
        Assert.Contains($"{Path.Combine(grafana, "dashboards")}:{provider.Str("options", "path")}:ro", Service(config, "grafana").Strs("volumes"));
        var home = Service(config, "grafana").Str("environment", "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")!;
        Assert.True(File.Exists(Path.Combine(grafana, "dashboards", Path.GetRelativePath(provider.Str("options", "path")!, home))), home);
    }
}
