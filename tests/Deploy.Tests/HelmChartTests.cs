using System.Globalization;
using System.Text.RegularExpressions;

namespace Legate.Deploy.Tests;

/// <summary>deploy/helm/legate: <c>helm lint --strict</c> and <c>helm template</c> over the ci/ values files, with the manifests checked.</summary>
public sealed partial class HelmChartTests
{
    private static readonly string[] Services = ["authz", "ratelimit", "statsink"];
    private static readonly string[] Rendered = ["envoy", "authz", "ratelimit"];

    // repository:tag with a version-like tag, or repository@sha256:...
    [GeneratedRegex(@"^[a-z0-9._-]+(/[a-z0-9._-]+)*(:v?\d+\.\d+\.\d+(-[a-z0-9.-]+)?|@sha256:[a-f0-9]{64})$")]
    private static partial Regex PinnedImage();

    [Theory]
    [MemberData(nameof(HelmChart.CiValues), MemberType = typeof(HelmChart))]
    public async Task Lint_IsCleanInStrictMode(string values)
    {
        var (exitCode, stdout, stderr) = await HelmChart.HelmAsync("lint", "--strict", HelmChart.Directory, "-f", Path.Combine(HelmChart.Directory, "ci", values));

        Assert.True(exitCode == 0, stdout + stderr);
        Assert.Contains("0 chart(s) failed", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(HelmChart.CiValues), MemberType = typeof(HelmChart))]
    public async Task EveryContainer_RunsAPinnedImage_NonRoot_ReadOnly_WithAMemoryLimitAndNoCpuLimit(string values)
    {
        var chart = await HelmChart.TemplateAsync(values);

        var deployments = chart.OfKind("Deployment").ToList();
        Assert.NotEmpty(deployments);
        foreach (var deployment in deployments)
        {
            var pod = HelmChart.PodSpec(deployment);
            Assert.Equal("true", pod.Str("securityContext", "runAsNonRoot"));
            Assert.Equal("RuntimeDefault", pod.Str("securityContext", "seccompProfile", "type"));
            Assert.Equal("false", pod.Str("automountServiceAccountToken"));
            foreach (var container in HelmChart.Containers(deployment))
            {
                var where = $"{deployment.Str("metadata", "name")}/{container.Str("name")}";
                Assert.Matches(PinnedImage(), container.Str("image"));
                Assert.Equal("true", container.Str("securityContext", "readOnlyRootFilesystem"));
                Assert.Equal("false", container.Str("securityContext", "allowPrivilegeEscalation"));
                Assert.Equal(["ALL"], container.Strs("securityContext", "capabilities", "drop"));
                Assert.True(int.Parse(container.Str("securityContext", "runAsUser")!, CultureInfo.InvariantCulture) > 0, where);
                Assert.NotNull(container.Str("resources", "limits", "memory"));
                Assert.Null(container.At("resources", "limits", "cpu"));
            }
        }
    }

    [Fact]
    public async Task Services_ListenOnTheirAppSettingsPorts_AndAreProbedOverGrpc()
    {
        var chart = await HelmChart.TemplateAsync("inline-gateway.yaml");

        foreach (var name in Services)
        {
            var info = ServiceInfo.Get(name);
            var container = HelmChart.Container(chart.Deployment(name), name);
            Assert.Equal(info.GrpcPort.ToString(CultureInfo.InvariantCulture), HelmChart.Env(container, "Legate__GrpcPort"));
            Assert.Equal(info.HttpPort.ToString(CultureInfo.InvariantCulture), HelmChart.Env(container, "Legate__HttpPort"));
            Assert.Equal([$"{info.GrpcPort}", $"{info.HttpPort}"], container.Seq("ports").Select(p => p.Str("containerPort")!));
            Assert.Equal(info.GrpcPort.ToString(CultureInfo.InvariantCulture), container.Str("readinessProbe", "grpc", "port"));
            foreach (var probe in new[] { "startupProbe", "livenessProbe" })
            {
                Assert.Equal("/healthz", container.Str(probe, "httpGet", "path"));
                Assert.Equal("http", container.Str(probe, "httpGet", "port"));
            }

            var service = chart.ServiceOf(name);
            Assert.Equal("None", service.Str("spec", "clusterIP"));
            Assert.Equal([$"grpc:{info.GrpcPort}", $"http:{info.HttpPort}"], service.Seq("spec", "ports").Select(p => $"{p.Str("name")}:{p.Str("port")}"));
        }
    }

    [Fact]
    public async Task Envoy_IsProbedOnItsReadyListener_AndPublishesTheGatewayListener()
    {
        var chart = await HelmChart.TemplateAsync("inline-gateway.yaml");

        var envoy = HelmChart.Container(chart.Deployment("envoy"), "envoy");
        foreach (var probe in new[] { "startupProbe", "readinessProbe", "livenessProbe" })
        {
            Assert.Equal("/ready", envoy.Str(probe, "httpGet", "path"));
            Assert.Equal("ready", envoy.Str(probe, "httpGet", "port"));
        }
        Assert.Contains(envoy.Seq("ports"), p => p.Str("name") == "ready" && p.Str("containerPort") == "19003");
        Assert.Equal(["-c", "/etc/legate/envoy/envoy.yaml"], envoy.Strs("args").Take(2));
        var listener = chart.GatewayFile().Seq("listeners").Single();
        var service = chart.Get("Service", HelmChart.Name("envoy"));
        Assert.Contains(service.Seq("spec", "ports"), p => p.Str("port") == listener.Str("port"));
    }

    [Theory]
    [InlineData("inline-gateway.yaml")]
    [InlineData("hpa-servicemonitor.yaml")]
    public async Task EnvoysPublicService_PublishesTheGatewayListenersOnly(string values)
    {
        // The Envoy Service is what clients reach (a LoadBalancer in hpa-servicemonitor.yaml): Envoy's own stats
        // (cluster names, backend addresses, traffic) stay inside the cluster, as compose keeps them on 127.0.0.1.
        var chart = await HelmChart.TemplateAsync(values);

        var listenerPorts = chart.GatewayFile().Seq("listeners").Select(l => l.Str("port"));
        Assert.Equal(listenerPorts, chart.Get("Service", HelmChart.Name("envoy")).Seq("spec", "ports").Select(p => p.Str("port")));
    }

    [Fact]
    public async Task EachEnvoyPod_StreamsItsStatsToStatsinkUnderItsOwnNodeId()
    {
        // The rendered bootstrap gives every Envoy node.id `legate`; statsink keeps one stream per node id (a second
        // one is taken for a hot restart and the older one's stats are ignored), so replicas need their own ids.
        var chart = await HelmChart.TemplateAsync("inline-gateway.yaml");

        var envoy = HelmChart.Container(chart.Deployment("envoy"), "envoy");
        var args = envoy.Strs("args").ToList();
        var at = args.IndexOf("--service-node");
        Assert.True(at >= 0 && at + 1 < args.Count, "Envoy's node id is the rendered bootstrap's, the same in every pod: " + string.Join(' ', args));
        var variable = args[at + 1];
        Assert.Matches(@"^\$\([A-Z_]+\)$", variable);
        var env = envoy.Seq("env").Single(e => e.Str("name") == variable[2..^1]);
        Assert.Equal("metadata.name", env.Str("valueFrom", "fieldRef", "fieldPath"));
    }

    [Theory]
    [InlineData("inline-gateway.yaml")]
    [InlineData("hpa-servicemonitor.yaml")]
    public async Task GatewayFile_ReachesRenderVerbatim_AndAddressesTheChartsServices(string values)
    {
        var chart = await HelmChart.TemplateAsync(values);

        var given = Yaml.Load(Path.Combine(HelmChart.Directory, "ci", values)).Str("gateway");
        Assert.Equal(given, chart.GatewayText());
        foreach (var (name, address) in chart.GatewayServiceAddresses())
        {
            var host = address.Split(':')[0];
            var service = chart.ServiceOf(name, host);
            Assert.Equal(name, service.Str("spec", "selector", "app.kubernetes.io/component"));
            var grpcPort = service.Seq("spec", "ports").Single(p => p.Str("name") == "grpc").Str("port");
            Assert.Equal(address, $"{host}:{grpcPort}");
        }
    }

    [Fact]
    public async Task GatewayGivenAsAMapping_IsRefused_SinceHelmWouldRewriteIt()
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory, "--set", "gateway.listeners=x");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("gateway", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RenderInitContainer_WritesWhereTheContainersRead()
    {
        var chart = await HelmChart.TemplateAsync("inline-gateway.yaml");

        foreach (var component in Rendered)
        {
            var deployment = chart.Deployment(component);
            var render = HelmChart.Container(deployment, "render");
            Assert.Equal(["render", "/etc/legate-gateway/gateway.yaml", "-o", "/etc/legate", "--envoy-dir", "/etc/legate/envoy"], render.Strs("args"));
            Assert.Contains(render.Seq("volumeMounts"), m => m.Str("name") == "config" && m.Str("mountPath") == "/etc/legate");
            var main = HelmChart.Container(deployment, component);
            Assert.Contains(main.Seq("volumeMounts"), m => m.Str("name") == "config" && m.Str("mountPath") == "/etc/legate" && m.Str("readOnly") == "true");
            Assert.Equal($"{HelmChart.Name("gateway")}", HelmChart.PodSpec(deployment).Seq("volumes").Single(v => v.Str("name") == "gateway").Str("configMap", "name"));
        }
        Assert.Equal("/etc/legate/authz/policies.yaml", HelmChart.Env(HelmChart.Container(chart.Deployment("authz"), "authz"), "Legate__Rules__authz__Path"));
        Assert.Equal("/etc/legate/ratelimit", HelmChart.Env(HelmChart.Container(chart.Deployment("ratelimit"), "ratelimit"), "Legate__Rules__ratelimit__Path"));
    }

    [Fact]
    public async Task ConfigChecksum_ChangesWithTheGatewayFileOnly_AndRollsTheRenderingPods()
    {
        static Dictionary<string, string?> Checksums(HelmChart chart) =>
            chart.OfKind("Deployment").ToDictionary(d => d.Str("metadata", "name")!, d => d.Str("spec", "template", "metadata", "annotations", "checksum/config"));

        var before = Checksums(await HelmChart.TemplateAsync("inline-gateway.yaml"));
        var gatewayChanged = Checksums(await HelmChart.TemplateAsync("inline-gateway.yaml", "gateway=listeners: []"));
        var otherChanged = Checksums(await HelmChart.TemplateAsync("inline-gateway.yaml", "statsink.replicas=5"));

        foreach (var component in Rendered)
        {
            var name = HelmChart.Name(component);
            Assert.Matches("^[a-f0-9]{64}$", before[name]);
            Assert.NotEqual(before[name], gatewayChanged[name]);
            Assert.Equal(before[name], otherChanged[name]);
        }
        Assert.Single(Rendered.Select(c => before[HelmChart.Name(c)]).Distinct());
        Assert.Null(before[HelmChart.Name("statsink")]);
    }

    [Fact]
    public async Task Autoscaling_ReplacesFixedReplicas_AndDisruptionBudgetsCoverEveryScaledComponent()
    {
        var chart = await HelmChart.TemplateAsync("hpa-servicemonitor.yaml");

        foreach (var component in Services.Append("envoy"))
        {
            Assert.Null(chart.Deployment(component).At("spec", "replicas"));
            var hpa = chart.Get("HorizontalPodAutoscaler", HelmChart.Name(component));
            Assert.Equal(HelmChart.Name(component), hpa.Str("spec", "scaleTargetRef", "name"));
            var pdb = chart.Get("PodDisruptionBudget", HelmChart.Name(component));
            Assert.Equal(component, pdb.Str("spec", "selector", "matchLabels", "app.kubernetes.io/component"));
        }
        Assert.Equal("3", chart.Get("HorizontalPodAutoscaler", HelmChart.Name("envoy")).Str("spec", "minReplicas"));
    }

    [Fact]
    public async Task InChartRedis_IsWhereRatelimitCounts()
    {
        var chart = await HelmChart.TemplateAsync("inline-gateway.yaml");

        var ratelimit = HelmChart.Container(chart.Deployment("ratelimit"), "ratelimit");
        var redis = chart.Get("Service", HelmChart.Name("redis"));
        Assert.Equal("redis", HelmChart.Env(ratelimit, "Legate__RateLimit__Store"));
        Assert.Equal($"{HelmChart.Name("redis")}:{redis.Seq("spec", "ports").Single().Str("port")}", HelmChart.Env(ratelimit, "Legate__Redis__Configuration"));
        Assert.StartsWith("redis:", HelmChart.Container(chart.Deployment("redis"), "redis").Str("image"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExternalRedis_ComesFromASecret()
    {
        var chart = await HelmChart.TemplateAsync("external-redis.yaml");

        var env = HelmChart.Container(chart.Deployment("ratelimit"), "ratelimit").Seq("env").Single(e => e.Str("name") == "Legate__Redis__Configuration");
        Assert.Equal("legate-redis", env.Str("valueFrom", "secretKeyRef", "name"));
        Assert.Equal("configuration", env.Str("valueFrom", "secretKeyRef", "key"));
        Assert.DoesNotContain(chart.OfKind("Deployment"), d => d.Str("metadata", "name") == HelmChart.Name("redis"));
        Assert.EndsWith("@sha256:" + new string('0', 64), HelmChart.Container(chart.Deployment("authz"), "authz").Str("image"), StringComparison.Ordinal);
    }

    // A gateway file whose API keys live in Redis (docs/gateway-file.md: "needs no render at all"): authz refuses to
    // start on it without Legate:Redis:Configuration.
    private static readonly Lazy<string> RedisKeysGateway = new(() =>
    {
        var path = Path.Combine(Path.GetTempPath(), $"legate-redis-keys-gateway-{Environment.ProcessId}.yaml");
        File.WriteAllText(path, """
            listeners: [{ name: http, address: 0.0.0.0, port: 8080 }]
            api_keys: { redis: true, header: x-api-key }
            """);
        return path;
    });

    [Theory]
    [InlineData(null, "rel-legate-redis:6379", null)]
    [InlineData("external-redis.yaml", null, "legate-redis")]
    public async Task RedisKeyStore_GivesAuthzTheChartsRedis(string? values, string? address, string? secret)
    {
        var chart = await HelmChart.TemplateWithArgsAsync(
            [.. values is null ? [] : new[] { "-f", Path.Combine(HelmChart.Directory, "ci", values) }, "--set-file", "gateway=" + RedisKeysGateway.Value]);

        var authz = HelmChart.Container(chart.Deployment("authz"), "authz");
        var env = authz.Seq("env").SingleOrDefault(e => e.Str("name") == "Legate__Redis__Configuration");
        Assert.True(env is not null, "authz gets no Redis connection, so it stops at start on api_keys.redis");
        Assert.Equal(address, env.Str("value"));
        Assert.Equal(secret, env.Str("valueFrom", "secretKeyRef", "name"));
    }

    [Fact]
    public async Task FileKeyStore_LeavesAuthzWithoutRedis_SoARedisOutageDoesNotUnreadyIt()
    {
        var chart = await HelmChart.TemplateAsync("inline-gateway.yaml");

        Assert.Null(HelmChart.Container(chart.Deployment("authz"), "authz").Seq("env").SingleOrDefault(e => e.Str("name") == "Legate__Redis__Configuration"));
    }

    [Fact]
    public async Task QuotedRedisFalse_IsAFileKeyStore_AsForTheGatewayLoader()
    {
        // The loaders read the scalar "false", quoted or not, as false; to Helm a non-empty string is true.
        var path = Path.Combine(Path.GetTempPath(), $"legate-quoted-false-gateway-{Environment.ProcessId}.yaml");
        File.WriteAllText(path, """
            listeners: [{ name: http, address: 0.0.0.0, port: 8080 }]
            api_keys: { file: keys.yaml, redis: "false" }
            """);
        try
        {
            var chart = await HelmChart.TemplateWithArgsAsync("-f", Path.Combine(HelmChart.Directory, "ci", "memory-store.yaml"), "--set-file", "gateway=" + path);

            Assert.Null(HelmChart.Container(chart.Deployment("authz"), "authz").Seq("env").SingleOrDefault(e => e.Str("name") == "Legate__Redis__Configuration"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task RedisKeyStore_WithoutAnyRedis_IsRefused()
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory,
            "-f", Path.Combine(HelmChart.Directory, "ci", "memory-store.yaml"), "--set-file", "gateway=" + RedisKeysGateway.Value);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("api_keys", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutRedis_RatelimitCountsInMemory_OnOneReplicaWithoutABudget()
    {
        var chart = await HelmChart.TemplateAsync("memory-store.yaml");

        Assert.Equal("memory", HelmChart.Env(HelmChart.Container(chart.Deployment("ratelimit"), "ratelimit"), "Legate__RateLimit__Store"));
        Assert.Equal("1", chart.Deployment("ratelimit").Str("spec", "replicas"));
        Assert.DoesNotContain(chart.OfKind("PodDisruptionBudget"), p => p.Str("metadata", "name") == HelmChart.Name("ratelimit"));
        Assert.DoesNotContain(chart.OfKind("Service"), s => s.Str("metadata", "name") == HelmChart.Name("redis"));
    }

    [Fact]
    public async Task ServiceMonitors_ScrapeTheServicesMetricsPorts()
    {
        var chart = await HelmChart.TemplateAsync("hpa-servicemonitor.yaml");
        var none = await HelmChart.TemplateAsync("inline-gateway.yaml");

        Assert.Empty(none.OfKind("ServiceMonitor"));
        foreach (var name in Services)
        {
            var endpoint = chart.Get("ServiceMonitor", HelmChart.Name(name)).Seq("spec", "endpoints").Single();
            Assert.Equal("http", endpoint.Str("port"));
            Assert.Equal("/metrics", endpoint.Str("path"));
            Assert.Equal("15s", endpoint.Str("interval"));
        }
        var envoy = chart.Get("ServiceMonitor", HelmChart.Name("envoy")).Seq("spec", "endpoints").Single();
        Assert.Equal(("stats", "/stats/prometheus"), (envoy.Str("port"), envoy.Str("path")));
        var stats = chart.Get("Service", HelmChart.Name("envoy") + "-stats");
        Assert.Equal("ClusterIP", stats.Str("spec", "type"));
        Assert.Equal(["stats"], stats.Seq("spec", "ports").Select(p => p.Str("name")!));
        Assert.Equal(envoy.Str("port"), stats.Seq("spec", "ports").Single().Str("targetPort"));
        Assert.DoesNotContain(none.OfKind("Service"), s => s.Str("metadata", "name") == HelmChart.Name("envoy") + "-stats");
    }

    [Theory]
    [InlineData("authz.resources.limits.cpu=1")]
    [InlineData("envoy.logLevel=loud")]
    [InlineData("ratelimit.grpcPort=0")]
    [InlineData("authz.unknownSetting=true")]
    [InlineData("envoy.readyPort=8081")]   // fixed by legate render: the probes would point at nothing
    [InlineData("envoy.statsPort=9901")]
    public async Task Schema_RejectsBadValues(string set)
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory,
            "-f", Path.Combine(HelmChart.Directory, "ci", "inline-gateway.yaml"), "--set", set);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("schema", stderr, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task WithoutAGatewayFile_TheChartSaysWhatIsMissing()
    {
        var (exitCode, _, stderr) = await HelmChart.HelmAsync("template", HelmChart.Release, HelmChart.Directory);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("gateway: set the gateway file (--set-file gateway=FILE)", stderr, StringComparison.Ordinal);
    }
}
