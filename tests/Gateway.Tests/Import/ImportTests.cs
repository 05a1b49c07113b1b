using Legate.Gateway.Import;
using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using Legate.Testing;

namespace Legate.Gateway.Tests.Import;

/// <summary>
/// <c>legate import</c>: Ingress and HTTPRoute manifests shaped like the Kubernetes and Gateway API docs' examples to a
/// gateway file; each mapping, each reported unmappable field (file:line:column and field), the output loading with the
/// gateway loader, determinism, and the rendered output passing envoy-check.
/// </summary>
public sealed class ImportTests : IDisposable
{
    private static readonly string Manifests = Path.Combine(RepoPaths.Root, "tests", "Gateway.Tests", "Import", "manifests");
    private static readonly string Fanout = Path.Combine(Manifests, "ingress-fanout.yaml");
    private static readonly string Canary = Path.Combine(Manifests, "httproute-canary.yaml");
    private static readonly string Unmappable = Path.Combine(Manifests, "unmappable.yaml");

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = Cli.Run(["import", .. args], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static GatewayConfig Imported(params string[] files)
    {
        var (code, yaml, stderr) = Run(files);
        Assert.True(code == Cli.Ok, stderr);
        return GatewayLoader.Load(new RulesFile("imported.yaml", yaml));
    }

    private static RouteConfig Route(GatewayConfig config, string name) => config.Routes.Single(r => r.Name == name);

    private static string Url(GatewayConfig config, string backend)
    {
        var b = config.Backends.Single(x => x.Name == backend);
        return $"{b.Endpoints.Single()}";
    }

    [Fact]
    public void Ingress_SimpleFanout_VirtualHosts_AndDefaultBackend()
    {
        var config = Imported(Fanout);

        var foo = Route(config, "default.simple-fanout-example.0.0");
        Assert.Equal((PathMatchKind.Prefix, "/foo"), (foo.Match.Kind, foo.Match.Path));
        Assert.Equal(["foo.bar.com"], foo.Match.Hosts);
        Assert.Equal("default.service1.4200", foo.Backends.Single().Name);
        Assert.Equal("service1.default.svc.cluster.local:4200", Url(config, "default.service1.4200"));
        Assert.Equal(config.DefaultPolicy, foo.Auth);   // secure by default
        Assert.Equal(["foo.bar.com"], Route(config, "default.simple-fanout-example.0.1").Match.Hosts);

        // Name based virtual hosting: one route per host, in namespace web; the host-less rule serves every host.
        Assert.Equal(["first.bar.com"], Route(config, "web.name-virtual-host-ingress-no-third-host.0.0").Match.Hosts);
        Assert.Equal("web.service2.80", Route(config, "web.name-virtual-host-ingress-no-third-host.1.0").Backends.Single().Name);
        var health = Route(config, "web.name-virtual-host-ingress-no-third-host.2.0");
        Assert.Equal((PathMatchKind.Exact, "/healthz"), (health.Match.Kind, health.Match.Path));
        Assert.Empty(health.Match.Hosts);
        Assert.Equal(ManifestImporter.TenantName, health.Tenant);

        // ImplementationSpecific reads as a prefix; the default backend is a catch-all after everything else; the
        // annotation legate.dev/auth: none turns authz off for the manifest's routes.
        var icons = Route(config, "web.ingress-resource-backend.0.0");
        Assert.Equal((PathMatchKind.Prefix, "/icons"), (icons.Match.Kind, icons.Match.Path));
        Assert.True(icons.AuthDisabled);
        var fallback = config.Routes[^1];
        Assert.Equal("web.ingress-resource-backend.default", fallback.Name);
        Assert.Equal((PathMatchKind.Prefix, "/"), (fallback.Match.Kind, fallback.Match.Path));
        Assert.True(fallback.AuthDisabled);
        Assert.Equal("static-site.web.svc.cluster.local:8080", Url(config, "web.static-site.8080"));

        // Host routes come before host-less ones, exact before prefix, longer prefixes first.
        Assert.True(config.Routes.ToList().FindIndex(r => r.Match.Hosts.Count == 0) > config.Routes.ToList().FindLastIndex(r => r.Match.Hosts.Count > 0));
    }

    [Fact]
    public void HttpRoute_HeaderCanary_WeightedSplit_ExactWithMethodAndQuery_Regex_Rewrite_Timeout()
    {
        var config = Imported(Canary);

        var forced = Route(config, "shop.foo-route.0.0");
        Assert.Equal([ValueCondition.Exactly("traffic", "test")], forced.Match.Headers);
        Assert.Equal("shop.foo-v2.8080", forced.Backends.Single().Name);
        var split = Route(config, "shop.foo-route.1.0");
        Assert.Equal([new WeightedBackend("shop.foo-v1.8080", 90), new WeightedBackend("shop.foo-v2.8080", 10)], split.Backends);
        Assert.Equal(["foo.example.com"], split.Match.Hosts);
        Assert.True(config.Routes.ToList().IndexOf(forced) < config.Routes.ToList().IndexOf(split));   // the header route first

        var status = Route(config, "shop.api.0.0");
        Assert.Equal((PathMatchKind.Exact, "/v1/status"), (status.Match.Kind, status.Match.Path));
        Assert.Equal(["GET"], status.Match.Methods);
        Assert.Equal([ValueCondition.Exactly("verbose", "1")], status.Match.Query);

        var store = Route(config, "shop.api.1.0");
        Assert.Equal("/v2/store", store.Rewrite);
        Assert.Equal(TimeSpan.FromSeconds(90), store.Timeout);

        var cors = Route(config, "shop.cors.0.0").Cors!;
        Assert.Equal(["https://app.example.com"], cors.Origins);
        Assert.Equal(["GET", "POST"], cors.Methods);
        Assert.Equal(["content-type"], cors.Headers);
        Assert.Equal(["x-ratelimit-remaining"], cors.ExposeHeaders);
        Assert.Equal((TimeSpan.FromMinutes(10), true), (cors.MaxAge, cors.Credentials));
        var (_, _, stderr) = Run(Canary);
        Assert.Contains($"{Canary}:92:51: spec.rules[0].filters[0].cors.allowOrigins[1]: origin 'https://*.example.com' has no equivalent", stderr, StringComparison.Ordinal);

        var orders = Route(config, "shop.api.2.0");
        Assert.Equal((PathMatchKind.Regex, "^/v[0-9]+/orders$"), (orders.Match.Kind, orders.Match.Path));
        Assert.Equal("orders.orders.svc.cluster.local:8080", Url(config, orders.Backends.Single().Name));   // backendRef namespace
    }

    [Fact]
    public void Unmappable_IsReportedWithFileLineAndField_AndTheRestIsImported()
    {
        var (code, yaml, stderr) = Run(Unmappable);
        Assert.Equal(Cli.Ok, code);
        string[] expected =
        [
            "unmappable.yaml:7:5: metadata.annotations.nginx.ingress.kubernetes.io/rewrite-target: has no equivalent in a gateway file: not applied (Ingress default/tls-example-ingress)",
            "unmappable.yaml:25:11: spec.rules[1].host: wildcard host '*.foo.com' has no equivalent: not imported",
            "unmappable.yaml:44:21: spec.rules[2].http.paths[0].backend.service.port.name: port 'http' is named",
            "unmappable.yaml:61:11: spec.rules[0].filters[0].requestHeaderModifier.add[0]: 'x-legate-tenant' is an identity header: only authz sets it: not applied (HTTPRoute default/header-filters)",
            "unmappable.yaml:70:16: spec.rules[1].matches[0].headers[0].value: 'v(?=[0-9])' is not a regular expression Envoy accepts: match not imported",
            "unmappable.yaml:79:7: spec.rules[2].filters[0]: RequestRedirect has no equivalent in a gateway file: rule not imported",
            "unmappable.yaml:87:7: kind: Service default/echo is not imported",
        ];
        foreach (var line in expected)
            Assert.Contains(Path.Combine(Manifests, line), stderr, StringComparison.Ordinal);
        Assert.Contains("7 thing(s) not imported", stderr, StringComparison.Ordinal);

        var config = GatewayLoader.Load(new RulesFile("imported.yaml", yaml));
        Assert.Equal(["default.header-filters.0.0", "default.tls-example-ingress.0.0"], config.Routes.Select(r => r.Name).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(config.Routes, r => r.Match.Hosts.Contains("named.foo.com"));
    }

    [Fact]
    public void HttpRoute_RegexHeaderAndQueryMatches_HeaderModifiers_AndHostname_AreImported()
    {
        File.WriteAllText(_dir.File("mods.yaml"), """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: { name: mods, namespace: ns }
            spec:
              hostnames: [mods.example.com]
              rules:
                - matches:
                    - path: { type: PathPrefix, value: /v }
                      headers: [{ type: RegularExpression, name: X-Version, value: "v[0-9]+" }]
                      queryParams: [{ type: RegularExpression, name: id, value: "[0-9]+" }, { name: lang, value: en }]
                  filters:
                    - type: RequestHeaderModifier
                      requestHeaderModifier:
                        set: [{ name: X-Api, value: "2" }]
                        add: [{ name: x-via, value: "10%" }]
                        remove: [x-debug]
                    - type: ResponseHeaderModifier
                      responseHeaderModifier: { remove: [server], set: [{ name: cache-control, value: no-store }] }
                    - type: URLRewrite
                      urlRewrite: { hostname: backend.internal }
                  backendRefs: [{ name: svc, port: 8080 }]
            """);

        var (code, yaml, stderr) = Run(_dir.File("mods.yaml"));

        Assert.Equal(Cli.Ok, code);
        Assert.DoesNotContain("not applied", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("not imported", stderr, StringComparison.Ordinal);
        var route = GatewayLoader.Load(new RulesFile("imported.yaml", yaml)).Routes.Single();
        Assert.Equal([new ValueCondition("x-version", ValueMatchKind.Regex, "v[0-9]+")], route.Match.Headers);
        Assert.Equal([new ValueCondition("id", ValueMatchKind.Regex, "[0-9]+"), ValueCondition.Exactly("lang", "en")], route.Match.Query);
        Assert.Equal([new("x-api", "2")], route.RequestHeaders!.Set);
        Assert.Equal([new("x-via", "10%")], route.RequestHeaders.Add);
        Assert.Equal(["x-debug"], route.RequestHeaders.Remove);
        Assert.Equal([new("cache-control", "no-store")], route.ResponseHeaders!.Set);
        Assert.Equal(["server"], route.ResponseHeaders.Remove);
        Assert.Equal("backend.internal", route.HostRewrite);
    }

    [Fact]
    public void Rewrites_Timeouts_AndConflicts_WithoutAnEquivalent_AreReported()
    {
        File.WriteAllText(_dir.File("routes.yaml"), """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: gateway.networking.k8s.io/v1
              kind: HTTPRoute
              metadata: { name: a, namespace: ns }
              spec:
                rules:
                - matches: [{ path: { type: PathPrefix, value: /full } }]
                  filters: [{ type: URLRewrite, urlRewrite: { hostname: x.example, path: { type: ReplaceFullPath, replaceFullPath: /y } } }]
                  timeouts: { request: 0s, backendRequest: 2s }
                  backendRefs: [{ name: svc, port: 80, weight: 0 }, { name: svc2, port: 80 }]
                - matches: [{ path: { type: PathPrefix, value: /web } }]
                  backendRefs: [{ name: www, port: 80 }]
                - matches: [{ path: { type: PathPrefix, value: /web/ } }]
                  backendRefs: [{ name: other, port: 80 }]
                - matches: [{ path: { type: PathPrefix, value: /zero } }]
                  backendRefs: [{ name: svc, port: 80, weight: 0 }]
            - apiVersion: extensions/v1beta1
              kind: Ingress
              metadata: { name: old }
              spec: {}
            """);
        var (code, yaml, stderr) = Run(_dir.File("routes.yaml"));
        Assert.True(code == Cli.Ok, stderr);
        var file = _dir.File("routes.yaml");
        Assert.Contains($"{file}:10:78: spec.rules[0].filters[0].urlRewrite.path: ReplaceFullPath on a prefix match has no equivalent", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("urlRewrite.hostname", stderr, StringComparison.Ordinal);   // it maps: rewrite_host
        Assert.Contains("    rewrite_host: x.example\n", yaml, StringComparison.Ordinal);
        Assert.Contains($"{file}:11:28: spec.rules[0].timeouts.request: '0s' cannot be carried over", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:11:48: spec.rules[0].timeouts.backendRequest: has no equivalent", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:15:17: spec.rules[2].matches[0]: matches only requests that HTTPRoute ns/a ({file}:13) already matches: not imported", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:18:20: spec.rules[3].backendRefs: every weight is 0: rule not imported", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:19:15: apiVersion: Ingress of apiVersion 'extensions/v1beta1' is not imported", stderr, StringComparison.Ordinal);

        var config = GatewayLoader.Load(new RulesFile("imported.yaml", yaml));
        Assert.Equal(["ns.a.0.0", "ns.a.1.0"], config.Routes.Select(r => r.Name));
        var full = config.Routes[0];
        Assert.Null(full.Rewrite);
        Assert.Null(full.Timeout);
        Assert.Equal([new WeightedBackend("ns.svc.80", 0), new WeightedBackend("ns.svc2.80", 1)], full.Backends);
    }

    [Fact]
    public void AnEmptyPrefixReplacement_DropsThePrefix_AndPathsWithAQuery_AreReported()
    {
        File.WriteAllText(_dir.File("routes.yaml"), """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: { name: a, namespace: ns }
            spec:
              rules:
              - matches: [{ path: { type: PathPrefix, value: /foo } }]
                filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: "" } } }]
                backendRefs: [{ name: svc, port: 80 }]
              - matches: [{ path: { type: Exact, value: "/bar?x=1" } }]
                backendRefs: [{ name: svc, port: 80 }]
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: { name: i, namespace: ns }
            spec:
              rules:
              - http:
                  paths:
                  - { path: "/docs#top", pathType: Prefix, backend: { service: { name: svc, port: { number: 80 } } } }
            """);

        var (code, yaml, stderr) = Run(_dir.File("routes.yaml"));

        Assert.True(code == Cli.Ok, stderr);
        var file = _dir.File("routes.yaml");
        Assert.Contains($"{file}:9:15: spec.rules[1].matches[0]: path '/bar?x=1' contains '?' or '#': not imported", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:19:9: spec.rules[0].http.paths[0]: path '/docs#top' contains '?' or '#': not imported", stderr, StringComparison.Ordinal);
        // Gateway API: /foo/bar with the prefix /foo replaced by "" is /bar, which rewrite: / does.
        var route = Assert.Single(GatewayLoader.Load(new RulesFile("imported.yaml", yaml)).Routes);
        Assert.Equal(("/foo", "/"), (route.Match.Path, route.Rewrite));
    }

    [Fact]
    public void AHostWithATrailingNewline_IsReported_AndTheRestIsImported()
    {
        File.WriteAllText(_dir.File("ingress.yaml"), """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: { name: i, namespace: ns }
            spec:
              rules:
              - host: "api.example.com\n"
                http:
                  paths:
                  - { path: /a, pathType: Prefix, backend: { service: { name: svc, port: { number: 80 } } } }
              - host: api.example.com
                http:
                  paths:
                  - { path: /b, pathType: Prefix, backend: { service: { name: svc, port: { number: 80 } } } }
            """);

        var (code, yaml, stderr) = Run(_dir.File("ingress.yaml"));

        Assert.True(code == Cli.Ok, stderr);
        Assert.Contains($"{_dir.File("ingress.yaml")}:6:11: spec.rules[0].host: 'api.example.com\n' is not a host name: not imported", stderr, StringComparison.Ordinal);
        var route = Assert.Single(GatewayLoader.Load(new RulesFile("imported.yaml", yaml)).Routes);
        Assert.Equal(["api.example.com"], route.Match.Hosts);
    }

    [Fact]
    public void GrpcRoute_ServiceAndMethodMatches_ToHttp2Backends()
    {
        var config = Imported(Path.Combine(Manifests, "grpcroute.yaml"));
        Assert.Equal(["grpc.grpc-app-1.0.0", "grpc.grpc-app-1.1.0", "grpc.grpc-app-1.2.0"], config.Routes.Select(r => r.Name));
        var login = config.Routes[0];
        Assert.Equal((PathMatchKind.Exact, "/com.example.User/Login"), (login.Match.Kind, login.Match.Path));
        Assert.Equal([ValueCondition.Exactly("version", "2")], login.Match.Headers);
        Assert.Equal(["my.example.com"], login.Match.Hosts);
        Assert.Equal((PathMatchKind.Prefix, "/com.example.User"), (config.Routes[1].Match.Kind, config.Routes[1].Match.Path));
        // A method of any service ranks below a matching service, as GRPCRoute's precedence says.
        Assert.Equal((PathMatchKind.Regex, "^/[^/]+/Check$"), (config.Routes[2].Match.Kind, config.Routes[2].Match.Path));
        var backend = config.Backends.Single(b => b.Name == "grpc.user-v2.50051.grpc");
        Assert.True(backend.Http2);
        Assert.Equal("user-v2.grpc.svc.cluster.local:50051", backend.Endpoints.Single().ToString());
    }

    [Fact]
    public void RequestHeaderModifier_OfAnIdentityHeaderSpelledWithUnderscores_IsReported_NotApplied()
    {
        // A backend that reads '_' as '-' (CGI-style HTTP_X_LEGATE_CLIENT) would take it for authz's x-legate-client.
        File.WriteAllText(_dir.File("underscore.yaml"), """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: { name: u, namespace: ns }
            spec:
              rules:
                - filters:
                    - type: RequestHeaderModifier
                      requestHeaderModifier: { set: [{ name: X_Legate_Client, value: admin }, { name: x-api, value: "2" }] }
                  backendRefs: [{ name: svc, port: 8080 }]
            """);

        var (code, yaml, stderr) = Run(_dir.File("underscore.yaml"));

        Assert.True(code == Cli.Ok, stderr);
        Assert.Contains("requestHeaderModifier.set[0]: 'x_legate_client' is an identity header", stderr, StringComparison.Ordinal);
        var route = GatewayLoader.Load(new RulesFile("imported.yaml", yaml)).Routes.Single();
        Assert.Equal([new("x-api", "2")], route.RequestHeaders!.Set);
    }

    [Fact]
    public void GrpcRoute_HeaderModifiers_AreImported_NotDroppedSilently()
    {
        // GRPCRoute has RequestHeaderModifier and ResponseHeaderModifier filters too: they map as HTTPRoute's do.
        File.WriteAllText(_dir.File("grpc-mods.yaml"), """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GRPCRoute
            metadata: { name: g, namespace: ns }
            spec:
              rules:
              - matches: [{ method: { service: pkg.Users, method: Get } }]
                filters:
                  - type: RequestHeaderModifier
                    requestHeaderModifier: { set: [{ name: X-Api, value: "2" }], remove: [x-debug] }
                  - type: ResponseHeaderModifier
                    responseHeaderModifier: { remove: [server] }
                backendRefs: [{ name: svc, port: 50051 }]
            """);

        var (code, yaml, stderr) = Run(_dir.File("grpc-mods.yaml"));

        Assert.True(code == Cli.Ok, stderr);
        Assert.DoesNotContain("not applied", stderr, StringComparison.Ordinal);
        var route = GatewayLoader.Load(new RulesFile("imported.yaml", yaml)).Routes.Single();
        Assert.Equal([new("x-api", "2")], route.RequestHeaders!.Set);
        Assert.Equal(["x-debug"], route.RequestHeaders.Remove);
        Assert.Equal(["server"], route.ResponseHeaders!.Remove);
    }

    [Theory]
    [InlineData("/pkg.Users/Get", true)]
    [InlineData("/pkg.Orders/List", true)]
    [InlineData("/pkg.Users/Delete", false)]
    [InlineData("/other.Users/Get", false)]
    public void GrpcRoute_RegexMethodMatch_MatchesServiceAndMethodEachAsAWhole(string path, bool matches)
    {
        File.WriteAllText(_dir.File("grpc.yaml"), """
            apiVersion: gateway.networking.k8s.io/v1
            kind: GRPCRoute
            metadata: { name: g, namespace: ns }
            spec:
              rules:
              - matches: [{ method: { type: RegularExpression, service: "pkg\\.(Users|Orders)", method: "Get|List" } }]
                backendRefs: [{ name: svc, port: 50051 }]
            """);

        var regex = Imported(_dir.File("grpc.yaml")).Routes.Single().Match.Path;

        // Envoy matches a route regex against the whole path.
        Assert.Equal(matches, System.Text.RegularExpressions.Regex.IsMatch(path, $"^(?:{regex})$"));
    }

    [Fact]
    public void MatchesTheGatewayFileCannotExpress_AreLeftOut_NotBroadened()
    {
        File.WriteAllText(_dir.File("odd.yaml"), """
            apiVersion: gateway.networking.k8s.io/v1
            kind: HTTPRoute
            metadata: { name: odd }
            spec:
              hostnames: ["*.example.com", "api.example.com"]
              rules:
              - matches:
                - path: { type: RegularExpression, value: "^/(?<=x)[" }
                - headers: [{ name: ":authority", value: x }]
                - headers: [{ name: Host, value: api.example.com }]
                - path: { type: PathPrefix, value: /ok }
                backendRefs: [{ name: api, port: 80 }]
            """);
        var (code, yaml, stderr) = Run(_dir.File("odd.yaml"));
        Assert.True(code == Cli.Ok, stderr);
        var file = _dir.File("odd.yaml");
        Assert.Contains($"{file}:5:15: spec.hostnames[0]: wildcard host '*.example.com' has no equivalent: not imported (HTTPRoute default/odd)", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:8:47: spec.rules[0].matches[0].path.value: '^/(?<=x)[' is not a regular expression", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:9:25: spec.rules[0].matches[1].headers[0].name: ':authority' cannot be matched as a header", stderr, StringComparison.Ordinal);
        Assert.Contains($"{file}:10:25: spec.rules[0].matches[2].headers[0].name: 'Host' cannot be matched as a header", stderr, StringComparison.Ordinal);
        var route = GatewayLoader.Load(new RulesFile("imported.yaml", yaml)).Routes.Single();
        Assert.Equal("/ok", route.Match.Path);
        Assert.Equal(["api.example.com"], route.Match.Hosts);
    }

    [Fact]
    public void Output_IsDeterministic_CommentsNameTheSources_AndOWritesTheFile()
    {
        var (_, first, _) = Run(Fanout, Canary, Unmappable);
        var (_, second, _) = Run(Fanout, Canary, Unmappable);
        Assert.Equal(first, second);
        Assert.Contains($"# {Fanout}:11: Ingress default/simple-fanout-example spec.rules[0].http.paths[0]", first, StringComparison.Ordinal);
        Assert.Contains("# Auth is required by default", first, StringComparison.Ordinal);

        var (code, stdout, stderr) = Run(Fanout, Canary, Unmappable, "-o", _dir.File("gateway.yaml"));
        Assert.True(code == Cli.Ok, stderr);
        Assert.Empty(stdout);
        Assert.Equal(first, File.ReadAllText(_dir.File("gateway.yaml")));
        Assert.Contains("written to", stderr, StringComparison.Ordinal);

        using var validateOut = new StringWriter();
        using var validateErr = new StringWriter();
        Assert.True(Cli.Run(["validate", _dir.File("gateway.yaml")], validateOut, validateErr) == Cli.Ok, validateErr.ToString());
    }

    [Fact]
    public void BadInput_IsAnError()
    {
        File.WriteAllText(_dir.File("broken.yaml"), "kind: Ingress\nspec: [\n");
        var (code, _, stderr) = Run(_dir.File("broken.yaml"));
        Assert.Equal(Cli.Invalid, code);
        Assert.Contains(_dir.File("broken.yaml") + ":", stderr, StringComparison.Ordinal);

        File.WriteAllText(_dir.File("service.yaml"), "apiVersion: v1\nkind: Service\nmetadata: { name: s }\n");
        (code, _, stderr) = Run(_dir.File("service.yaml"));
        Assert.Equal(Cli.Invalid, code);
        Assert.Contains("no route could be imported", stderr, StringComparison.Ordinal);

        Assert.Equal(Cli.Invalid, Run(_dir.File("missing.yaml")).ExitCode);
        Assert.Equal(Cli.Usage, Run().ExitCode);
        Assert.Equal(Cli.Usage, Run("--bogus", Fanout).ExitCode);
    }

    [Theory]
    [InlineData("10s", "10s")]
    [InlineData("1m30s", "90s")]
    [InlineData("2h", "2h")]
    [InlineData("1500ms", "1500ms")]
    [InlineData("1h0m", "1h")]
    [InlineData("0s", null)]
    [InlineData("ten", null)]
    [InlineData("10sx", null)]
    public void GatewayApiDurations_BecomeOneUnit(string input, string? expected) => Assert.Equal(expected, ManifestImporter.Duration(input));

    [Fact]
    public async Task ImportedExamples_Render_AndPassEnvoyCheck()
    {
        var (code, _, stderr) = Run(Fanout, Canary, Unmappable, "-o", _dir.File("gateway.yaml"));
        Assert.True(code == Cli.Ok, stderr);
        using var stdout = new StringWriter();
        using var renderErr = new StringWriter();
        Assert.True(Cli.Run(["render", _dir.File("gateway.yaml"), "-o", _dir.File("out"), "--envoy-dir", _dir.File("out/envoy")], stdout, renderErr) == Cli.Ok, renderErr.ToString());
        Assert.True(File.Exists(_dir.File("out/envoy/dynamic/lds.yaml")));

        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        var (exit, output) = await SharedTools.RunAsync(tool!, _dir.File("out/envoy/envoy.yaml"));
        Assert.True(exit == 0, output);
        Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
    }
}
