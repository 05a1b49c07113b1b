using Envoy.Extensions.Common.Ratelimit.V3;
using Legate.Authz.Policies;
using Legate.Hosting.Rules;
using Legate.RateLimit.Config;
using Legate.Testing;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Tests;

/// <summary>
/// legate render on the example gateway file: the layout of the render contract, Envoy's configuration as generated,
/// determinism, envoy-check, and the joins between Envoy, authz and ratelimit, checked from the files alone.
/// </summary>
public sealed class RenderTests : IDisposable
{
    private readonly TempDir _out = new();

    public void Dispose() => _out.Dispose();

    private static (int ExitCode, string Stdout, string Stderr) Render(string file, string output, params string[] extra)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = Cli.Run(["render", file, "-o", output, "--envoy-dir", Path.Combine(output, "envoy"), .. extra], stdout, stderr);
        return (exitCode, stdout.ToString(), stderr.ToString());
    }

    private string RenderExample(params string[] extra)
    {
        var (exitCode, stdout, stderr) = Render(GatewayFiles.Example, _out.Path, extra);
        Assert.True(exitCode == Cli.Ok, stderr);
        Assert.Equal(File.ReadAllText(_out.File("summary.txt")), stdout);
        return _out.Path;
    }

    private YamlMappingNode Lds() => GatewayFiles.Load(_out.File("envoy/dynamic/lds.yaml"));

    private YamlMappingNode Hcm() => (YamlMappingNode)Lds().Seq("resources")[0].Seq("filter_chains")[0].Seq("filters")[0].Get("typed_config")!;

    private IEnumerable<YamlNode> Routes(string virtualHost)
        => Hcm().Seq("route_config", "virtual_hosts").Single(v => v.Str("name") == virtualHost).Seq("routes");

    private YamlNode Route(string name, string virtualHost = "any_host") => Routes(virtualHost).Single(r => r.Str("name") == name);

    [Fact]
    public void Render_WritesTheContractLayout()
    {
        RenderExample();

        var files = Directory.EnumerateFiles(_out.Path, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(_out.Path, f)).Order(StringComparer.Ordinal);
        Assert.Equal(
            ["authz/acme-idp.jwks.json", "authz/keys.yaml", "authz/policies.yaml", "envoy/dynamic/cds.yaml", "envoy/dynamic/lds.yaml", "envoy/envoy.yaml", "ratelimit/edge.yaml", "summary.txt"],
            files);
    }

    [Fact]
    public void Bootstrap_HasAdminOnLoopback_StaticServiceClusters_StatsSink_AndWatchedLdsCds()
    {
        RenderExample();
        var bootstrap = GatewayFiles.Load(_out.File("envoy/envoy.yaml"));

        Assert.Equal("127.0.0.1", bootstrap.Str("admin", "address", "socket_address", "address"));
        Assert.Equal("19000", bootstrap.Str("admin", "address", "socket_address", "port_value"));
        var clusters = bootstrap.Seq("static_resources", "clusters");
        foreach (var (name, host, port) in new[] { ("legate_authz", "authz", "9001"), ("legate_ratelimit", "ratelimit", "9002"), ("legate_statsink", "statsink", "9003") })
        {
            var cluster = clusters.Single(c => c.Str("name") == name);
            Assert.Equal(host, cluster.Seq("load_assignment", "endpoints")[0].Seq("lb_endpoints")[0].Str("endpoint", "address", "socket_address", "address"));
            Assert.Equal(port, cluster.Seq("load_assignment", "endpoints")[0].Seq("lb_endpoints")[0].Str("endpoint", "address", "socket_address", "port_value"));
            Assert.NotNull(cluster.Get("typed_extension_protocol_options", "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", "explicit_http_config", "http2_protocol_options"));
            Assert.NotNull(cluster.Seq("health_checks")[0].Get("grpc_health_check"));
        }
        // Envoy's default RE2 program-size limit (100) would refuse route regexes validate accepted, with the listener.
        var layers = bootstrap.Seq("layered_runtime", "layers");
        Assert.Equal(uint.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), layers[0].Str("static_layer", "re2.max_program_size.error_level"));
        Assert.NotNull(layers[^1].Get("admin_layer"));
        var sink = bootstrap.Seq("stats_sinks").Single();
        Assert.Equal("envoy.stat_sinks.metrics_service", sink.Str("name"));
        Assert.Equal("true", sink.Str("typed_config", "emit_tags_as_labels"));
        Assert.Equal("legate_statsink", sink.Str("typed_config", "grpc_service", "envoy_grpc", "cluster_name"));
        Assert.Equal(["ready", "stats"], bootstrap.Seq("static_resources", "listeners").Select(l => l.Str("name")));
        var dynamicDir = Path.Combine(_out.Path, "envoy", "dynamic");
        Assert.Equal(Path.Combine(dynamicDir, "cds.yaml"), bootstrap.Str("dynamic_resources", "cds_config", "path_config_source", "path"));
        Assert.Equal(Path.Combine(dynamicDir, "lds.yaml"), bootstrap.Str("dynamic_resources", "lds_config", "path_config_source", "path"));
        Assert.Equal(dynamicDir, bootstrap.Str("dynamic_resources", "lds_config", "path_config_source", "watched_directory", "path"));
    }

    [Fact]
    public void Listener_NormalisesPaths_AndOrdersFiltersCorsAuthzRateLimitRouter()
    {
        RenderExample();
        var hcm = Hcm();

        Assert.Equal("true", hcm.Str("normalize_path"));
        Assert.Equal("true", hcm.Str("merge_slashes"));
        Assert.Equal("UNESCAPE_AND_REDIRECT", hcm.Str("path_with_escaped_slashes_action"));
        // Hosts are matched without a trailing dot, as the loader reads them and authz finds the tenant.
        Assert.Equal("true", hcm.Str("strip_trailing_host_dot"));
        Assert.Equal(
            ["envoy.filters.http.cors", "envoy.filters.http.ext_authz", "envoy.filters.http.ratelimit", "envoy.filters.http.router"],
            hcm.Seq("http_filters").Select(f => f.Str("name")));
        var authz = hcm.Seq("http_filters")[1];
        Assert.Equal("legate_authz", authz.Str("typed_config", "grpc_service", "envoy_grpc", "cluster_name"));
        Assert.Equal("0.25s", authz.Str("typed_config", "grpc_service", "timeout"));
        Assert.Equal("false", authz.Str("typed_config", "failure_mode_allow"));
        var ratelimit = hcm.Seq("http_filters")[2];
        Assert.Equal("edge", ratelimit.Str("typed_config", "domain"));
        Assert.Equal("0.1s", ratelimit.Str("typed_config", "timeout"));
        Assert.Equal("false", ratelimit.Str("typed_config", "failure_mode_deny"));
        Assert.Equal("DRAFT_VERSION_03", ratelimit.Str("typed_config", "enable_x_ratelimit_headers"));
    }

    [Fact]
    public void Routes_CarryAuthzContext_CanarySplit_Rewrite_Retries_Cors_AndEndInACheckedCatchAll()
    {
        RenderExample();
        const string authz = "envoy.filters.http.ext_authz";

        Assert.Equal("true", Route("health").Str("typed_per_filter_config", authz, "disabled"));
        Assert.Equal("public", Route("catalog").Str("typed_per_filter_config", authz, "check_settings", "context_extensions", "policy"));
        Assert.Null(Route("catalog").Get("typed_per_filter_config", authz, "check_settings", "context_extensions", "tenant"));
        var admin = Route("admin", "host_api.acme.example");
        Assert.Equal("acme", admin.Str("typed_per_filter_config", authz, "check_settings", "context_extensions", "tenant"));
        Assert.DoesNotContain(Routes("any_host"), r => r.Str("name") == "admin");

        var orders = Route("orders");
        Assert.Equal("/orders", orders.Str("match", "path_separated_prefix"));
        Assert.Equal([("orders", "90"), ("orders-canary", "10")], orders.Seq("route", "weighted_clusters", "clusters").Select(c => (c.Str("name"), c.Str("weight"))));
        Assert.Equal("/v1", orders.Str("route", "prefix_rewrite"));
        Assert.Equal("3s", orders.Str("route", "timeout"));
        Assert.Equal("connect-failure,refused-stream,gateway-error", orders.Str("route", "retry_policy", "retry_on"));
        Assert.Equal("2", orders.Str("route", "retry_policy", "num_retries"));
        Assert.Equal("https://app.acme.example", orders.Seq("typed_per_filter_config", "envoy.filters.http.cors", "allow_origin_string_match")[0].Str("exact"));
        Assert.Equal("600", orders.Str("typed_per_filter_config", "envoy.filters.http.cors", "max_age"));
        Assert.Equal("^(DELETE|POST|PUT)$", Route("orders-write").Seq("match", "headers")[0].Str("string_match", "safe_regex", "regex"));

        foreach (var host in Hcm().Seq("route_config", "virtual_hosts"))
        {
            var last = host.Seq("routes")[^1];
            Assert.Equal("legate_not_found", last.Str("name"));
            Assert.Equal("/", last.Str("match", "prefix"));
            Assert.Equal("404", last.Str("direct_response", "status"));
            Assert.Equal("default", last.Str("typed_per_filter_config", authz, "check_settings", "context_extensions", "policy"));
        }
    }

    [Theory]
    [InlineData("any_host", "/catalog/items", "GET", "https://shop.acme.example", "catalog")]      // the route matches GET and HEAD only
    [InlineData("any_host", "/orders/1", "POST", "https://app.acme.example", "orders")]           // orders-write does not match OPTIONS, orders does
    [InlineData("host_api.acme.example", "/admin/users", "GET", "https://evil.example", null)]   // no CORS on admin: authz, then 404
    public void CorsPreflights_ReachARouteWithTheCorsPolicy_EvenWhenTheRouteMatchesMethodsOnly(string virtualHost, string path, string method, string origin, string? policyOf)
    {
        RenderExample();
        var headers = new Dictionary<string, string> { [":method"] = "OPTIONS", ["origin"] = origin, ["access-control-request-method"] = method };

        // The first route Envoy picks for the preflight: the CORS filter acts only on one with a route action and a CORS policy.
        var route = Routes(virtualHost).First(r => Matches(r.Get("match")!, path, headers));

        var cors = route.Get("typed_per_filter_config", "envoy.filters.http.cors");
        if (policyOf is null)
        {
            Assert.Null(cors);
            return;
        }
        Assert.NotNull(route.Get("route"));
        Assert.Equal(Route(policyOf).Get("typed_per_filter_config", "envoy.filters.http.cors")!.Seq("allow_origin_string_match").Select(o => o.Str("exact")),
            cors!.Seq("allow_origin_string_match").Select(o => o.Str("exact")));
    }

    [Fact]
    public void AnOptionsRequestWithAnEmptyOrigin_NeverTakesThePreflightRoute()
    {
        RenderExample();
        // The CORS filter lets an empty Origin through as no CORS request: on the preflight route this OPTIONS request
        // would pass authz to the backend of a route that does not match OPTIONS.
        var headers = new Dictionary<string, string> { [":method"] = "OPTIONS", ["origin"] = "", ["access-control-request-method"] = "GET" };

        var route = Routes("any_host").First(r => Matches(r.Get("match")!, "/catalog/items", headers));

        Assert.Equal("legate_not_found", route.Str("name"));
    }

    /// <summary>Envoy's route match for what the example renders: prefix, path_separated_prefix, path; exact, regex and present header matches.</summary>
    private static bool Matches(YamlNode match, string path, Dictionary<string, string> headers)
    {
        var pathMatches = match.Str("prefix") is { } prefix ? path.StartsWith(prefix, StringComparison.Ordinal)
            : match.Str("path_separated_prefix") is { } segments ? path == segments || path.StartsWith(segments + "/", StringComparison.Ordinal)
            : match.Str("path") is { } exact ? path == exact
            : throw new InvalidOperationException("the example renders no other path match");
        return pathMatches && match.Seq("headers").All(h => headers.TryGetValue(h.Str("name")!, out var value)
            && (h.Str("present_match") == "true" || h.Str("string_match", "exact") == value
                || (h.Str("string_match", "safe_regex", "regex") is { } regex && System.Text.RegularExpressions.Regex.IsMatch(value, regex))));
    }

    [Fact]
    public void RateLimitActions_BuildDescriptorsFromAuthzMetadata_GenericKeys_AndRemoteAddress()
    {
        RenderExample();

        var actions = Route("orders").Seq("route", "rate_limits").Select(l => l.Seq("actions")).ToArray();
        // (tenant), (tenant, plan, client), (remote_address), (route), (route, tenant)
        Assert.Equal(5, actions.Length);
        var tenant = actions[0].Single();
        Assert.Equal("tenant", tenant.Str("metadata", "descriptor_key"));
        Assert.Equal("DYNAMIC", tenant.Str("metadata", "source"));
        Assert.Equal("envoy.filters.http.ext_authz", tenant.Str("metadata", "metadata_key", "key"));
        Assert.Equal("tenant", tenant.Seq("metadata", "metadata_key", "path")[0].Str("key"));
        Assert.Null(tenant.Get("metadata", "default_value"));
        Assert.Equal(["tenant", "plan", "client"], actions[1].Select(a => a.Seq("metadata", "metadata_key", "path").Single().Str("key")));
        Assert.Equal(["tenant", "plan", "client"], actions[1].Select(a => a.Str("metadata", "descriptor_key")));
        // authz always sets plan, "default" when nothing names one; a missing plan is read as that, not as a reason to
        // skip the descriptor (which would leave the client unlimited). Tenant and client have no such fallback.
        Assert.Equal([null, "default", null], actions[1].Select(a => a.Str("metadata", "default_value")));
        Assert.NotNull(actions[2].Single().Get("remote_address"));
        Assert.Equal(("route", "orders"), (actions[3].Single().Str("generic_key", "descriptor_key"), actions[3].Single().Str("generic_key", "descriptor_value")));

        // auth: none: no authz metadata, so only address-based descriptors.
        var health = Route("health").Seq("route", "rate_limits").Select(l => l.Seq("actions")).ToArray();
        Assert.All(health, a => Assert.DoesNotContain(a, x => x.Get("metadata") is not null));
        Assert.Equal(2, health.Length);
    }

    [Fact]
    public void Render_IsDeterministic_AndRewritesNothingUnchanged()
    {
        RenderExample();
        using var second = new TempDir();
        var (exitCode, _, stderr) = Render(GatewayFiles.Example, second.Path);
        Assert.True(exitCode == Cli.Ok, stderr);

        foreach (var file in Directory.EnumerateFiles(_out.Path, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(_out.Path, file);
            var a = File.ReadAllText(file).Replace(_out.Path, "OUT", StringComparison.Ordinal);
            var b = File.ReadAllText(Path.Combine(second.Path, relative)).Replace(second.Path, "OUT", StringComparison.Ordinal);
            Assert.True(a == b, relative);
        }

        // Same output folder again: byte-identical, and no temporary files left behind.
        var before = Directory.EnumerateFiles(_out.Path, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);
        RenderExample();
        foreach (var (file, bytes) in before)
            Assert.Equal(bytes, File.ReadAllBytes(file));
        Assert.Equal(before.Count, Directory.EnumerateFiles(_out.Path, "*", SearchOption.AllDirectories).Count());
    }

    [Fact]
    public async Task EnvoyCheck_AcceptsEveryRenderedEnvoyFile()
    {
        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        RenderExample();
        using var staticOut = new TempDir();
        var (exitCode, _, stderr) = Render(GatewayFiles.Example, staticOut.Path, "--static");
        Assert.True(exitCode == Cli.Ok, stderr);

        // The bootstrap check follows its path_config_source files (cds.yaml, lds.yaml) and checks cross references.
        foreach (var bootstrap in new[] { _out.File("envoy/envoy.yaml"), staticOut.File("envoy/envoy.yaml") })
        {
            var (code, output) = await SharedTools.RunAsync(tool!, bootstrap);
            Assert.True(code == 0, output);
            Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void EveryDescriptorTheRoutesSend_IsMatchedByAGeneratedRatelimitRule()
    {
        RenderExample();
        var rules = new RateLimitConfigLoader().Load(RulesFiles.Read(_out.File("ratelimit")));
        var tenants = LoadAuthz().Tenants.Keys.ToArray();
        var domain = Hcm().Seq("http_filters")[2].Str("typed_config", "domain")!;
        Assert.Equal(["edge"], rules.Domains);

        var checkedDescriptors = 0;
        foreach (var host in Hcm().Seq("route_config", "virtual_hosts"))
        {
            foreach (var route in host.Seq("routes"))
            {
                foreach (var limit in route.Seq("route", "rate_limits"))
                {
                    foreach (var descriptor in Descriptors(limit.Seq("actions"), tenants))
                    {
                        Assert.True(rules.Match(domain, descriptor) is not null, $"{route.Str("name")}: no rule for {descriptor}");
                        checkedDescriptors++;
                    }
                }
            }
        }
        Assert.True(checkedDescriptors >= 20, $"only {checkedDescriptors} descriptors checked");
    }

    [Fact]
    public void EveryPolicyAndTenantInContextExtensions_ExistsInTheGeneratedAuthzPolicy()
    {
        RenderExample();
        using var set = LoadAuthz();

        var contexts = Hcm().Seq("route_config", "virtual_hosts").SelectMany(h => h.Seq("routes"))
            .Select(r => r.Get("typed_per_filter_config", "envoy.filters.http.ext_authz", "check_settings", "context_extensions"))
            .OfType<YamlMappingNode>().ToArray();
        Assert.NotEmpty(contexts);
        foreach (var context in contexts)
        {
            Assert.True(set.Policies.ContainsKey(context.Str("policy")!), context.Str("policy"));
            if (context.Str("tenant") is { } tenant)
                Assert.True(set.Tenants.ContainsKey(tenant), tenant);
        }
        Assert.Contains(contexts, c => c.Str("tenant") is not null);
    }

    [Fact]
    public void EveryClusterARouteNames_IsDefined()
    {
        RenderExample();
        var defined = GatewayFiles.Load(_out.File("envoy/dynamic/cds.yaml")).Seq("resources").Select(c => c.Str("name"))
            .Concat(GatewayFiles.Load(_out.File("envoy/envoy.yaml")).Seq("static_resources", "clusters").Select(c => c.Str("name")))
            .ToHashSet();

        var named = Hcm().Seq("route_config", "virtual_hosts").SelectMany(h => h.Seq("routes"))
            .SelectMany(r => r.Seq("route", "weighted_clusters", "clusters").Select(c => c.Str("name")).Append(r.Str("route", "cluster")))
            .Where(n => n is not null).ToArray();
        Assert.NotEmpty(named);
        Assert.All(named, n => Assert.Contains(n, defined));
    }

    [Fact]
    public void InvalidFile_WritesNothing()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal.Replace("backend: api }", "backend: nope }", StringComparison.Ordinal));

        var (exitCode, _, stderr) = Render(dir.File("gateway.yaml"), _out.File("out"));

        Assert.Equal(Cli.Invalid, exitCode);
        Assert.Contains("nothing was written", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_out.File("out")));
    }

    [Fact]
    public void ANewDomain_ReplacesTheOldRatelimitFile()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal + "\nquotas: { tenant: { requests: 5, per: second } }\n");
        Assert.Equal(Cli.Ok, Render(dir.File("gateway.yaml"), _out.Path).ExitCode);
        File.WriteAllText(dir.File("gateway.yaml"), GatewayFiles.Minimal + "\nquotas: { tenant: { requests: 5, per: second } }\nservices: { ratelimit: { domain: other } }\n");

        Assert.Equal(Cli.Ok, Render(dir.File("gateway.yaml"), _out.Path).ExitCode);

        Assert.Equal(["other.yaml"], Directory.GetFiles(_out.File("ratelimit")).Select(Path.GetFileName));
    }

    [Fact]
    public void PerTenantQuotas_ReplaceTheDefault_AndTenantsWithoutQuotasGetIt()
    {
        RenderExample();
        var rules = new RateLimitConfigLoader().Load(RulesFiles.Read(_out.File("ratelimit")));

        Assert.Equal(6000u, rules.Match("edge", Descriptor(("tenant", "acme")))!.Value.Policy.RequestsPerUnit);
        Assert.Equal(600u, rules.Match("edge", Descriptor(("tenant", "other")))!.Value.Policy.RequestsPerUnit);
        Assert.Equal(300u, rules.Match("edge", Descriptor(("route", "orders"), ("tenant", "acme")))!.Value.Policy.RequestsPerUnit);
    }

    [Fact]
    public void PlanQuotas_FollowTheClientsPlan_PerClient_AndAPlanTheFileDoesNotListGetsTheDefault()
    {
        RenderExample();
        var rules = new RateLimitConfigLoader().Load(RulesFiles.Read(_out.File("ratelimit")));
        (uint, string) Limit(string tenant, string plan, string client)
        {
            var match = rules.Match("edge", Descriptor(("tenant", tenant), ("plan", plan), ("client", client)))!.Value;
            return (match.Policy.RequestsPerUnit, match.MetricPath);
        }

        // The example: free 20/s, gold 100/s per client; quotas.client 10/s for any plan it does not list.
        Assert.Equal((20u, "edge.tenant_acme.plan_free.client"), Limit("acme", "free", "c1"));
        Assert.Equal((100u, "edge.tenant_acme.plan_gold.client"), Limit("acme", "gold", "demo-client"));
        Assert.Equal((10u, "edge.tenant_acme.plan.client"), Limit("acme", "platinum", "c1"));
        Assert.Equal((10u, "edge.tenant_acme.plan.client"), Limit("acme", "default", "c1"));
        Assert.Equal((10u, "edge.tenant_acme.plan.client"), Limit("acme", "Gold", "c1"));      // plans match exactly
        // A tenant without a rule of its own gets the same plans under the default tenant rule.
        Assert.Equal((100u, "edge.tenant.plan_gold.client"), Limit("other", "gold", "c1"));
        // Metric names carry the rule's values, never the client's or an unlisted plan's: bounded by the file.
        Assert.DoesNotContain(rules.Policies, p => p.MetricPath.Contains("c1", StringComparison.Ordinal));
        // The tenant's own tenant quota wins over its plan's (acme is free; gold's tenant quota is no one's here).
        Assert.Equal(6000u, rules.Match("edge", Descriptor(("tenant", "acme")))!.Value.Policy.RequestsPerUnit);
        // No route sends (tenant, client) any more, but Envoys still on the listeners of before plans do for a while:
        // its rule stays, with the quota of a client without a plan.
        var withoutPlan = rules.Match("edge", Descriptor(("tenant", "acme"), ("client", "c1")))!.Value;
        Assert.Equal((10u, "edge.tenant_acme.client"), (withoutPlan.Policy.RequestsPerUnit, withoutPlan.MetricPath));
    }

    [Fact]
    public void AuthzSettings_AreCarriedOverAsWritten_AndAcceptedByAuthz()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal
            .Replace("acme: { hosts: [api.acme.example] }", "acme: { hosts: [api.acme.example], tokens_from: [bearer, \"cookie:session\"] }", StringComparison.Ordinal)
            .Replace("default: { credentials: [jwt] }", "default: { credentials: [jwt], client_cidrs: [10.0.0.0/8] }", StringComparison.Ordinal)
            + "\napi_keys: { redis: true, cache_ttl: 5s, header: x-key, prefix: acme }\nclient_address: { from: x-forwarded-for, trusted_hops: 1 }\n");

        var (exitCode, _, stderr) = Render(dir.File("gateway.yaml"), _out.Path);

        Assert.True(exitCode == Cli.Ok, stderr);
        var policy = GatewayFiles.Load(_out.File("authz/policies.yaml"));
        Assert.Equal(["bearer", "cookie:session"], policy.Seq("tenants", "acme", "tokens_from").Select(n => n.Str()));
        Assert.Equal("10.0.0.0/8", policy.Seq("policies", "default", "client_cidrs").Single().Str());
        Assert.Equal(("true", "5s", "x-key", "acme"),
            (policy.Str("api_keys", "redis"), policy.Str("api_keys", "cache_ttl"), policy.Str("api_keys", "header"), policy.Str("api_keys", "prefix")));
        Assert.Equal("1", policy.Str("client_address", "trusted_hops"));
        Assert.False(File.Exists(_out.File("authz/keys.yaml")));
    }

    private const string Identity = """
        backends:
          api: { urls: [http://127.0.0.1:9999] }
        tenants:
          acme: { hosts: [api.acme.example] }
        policies:
          default: { credentials: [jwt] }
          anonymous: { credentials: [none] }
        default_policy: none
        identity_headers: { tenant: x-org, claims: { email: x-user-email, groups: x-user-groups } }
        routes:
          - { name: open, match: { prefix: /open }, backend: api, auth: none }
          - { name: implicit, match: { prefix: /implicit }, backend: api }
          - { name: checked, match: { prefix: /checked }, backend: api, auth: default }
          - { name: anonymous, match: { prefix: /anonymous, hosts: [api.acme.example] }, backend: api, auth: anonymous }
        """;

    /// <summary>The names the listener's early header mutation removes, in order.</summary>
    private IEnumerable<string?> EarlyRemovals()
    {
        var extension = Assert.Single(Hcm().Seq("early_header_mutation_extensions"));
        Assert.Equal("type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation", extension.Str("typed_config", "@type"));
        return extension.Seq("typed_config", "mutations").Select(m => m.Str("remove"));
    }

    [Fact]
    public async Task TheClientsIdentityHeaders_AreRemovedOnArrival_CustomAndClaimMappedOnesIncluded()
    {
        using var dir = GatewayFiles.Write(Identity);

        var (exitCode, _, stderr) = Render(dir.File("gateway.yaml"), _out.Path);

        Assert.True(exitCode == Cli.Ok, stderr);
        // A custom tenant header, authz's default subject and client headers, and both claim mappings: before routing
        // and every filter, so neither a route without ext_authz nor authz failing open passes a client's own along.
        Assert.Equal(["x-org", "x-legate-subject", "x-legate-client", "x-user-email", "x-user-groups"], EarlyRemovals());

        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        var (code, output) = await SharedTools.RunAsync(tool!, _out.File("envoy/envoy.yaml"));
        Assert.True(code == 0, output);
        Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void NoRoute_RemovesIdentityHeaders_SinceTheRouterWouldDropWhatAuthzSet()
    {
        using var dir = GatewayFiles.Write(Identity);

        var (exitCode, _, stderr) = Render(dir.File("gateway.yaml"), _out.Path);

        Assert.True(exitCode == Cli.Ok, stderr);
        // The router applies a route's removals after ext_authz: there they would drop the identity authz set.
        Assert.All(Hcm().Seq("route_config", "virtual_hosts").SelectMany(h => h.Seq("routes")), r => Assert.Null(r.Get("request_headers_to_remove")));
        using var set = LoadAuthz();
        Assert.Equal(
            ["x-org", "x-legate-subject", "x-legate-client", "x-user-email", "x-user-groups"],
            new[] { set.IdentityHeaders.Tenant, set.IdentityHeaders.Subject, set.IdentityHeaders.Client }.Concat(set.IdentityHeaders.Claims.Select(c => c.Value)));
    }

    [Fact]
    public void Example_RemovesTheDefaultIdentityHeadersOnArrival()
    {
        RenderExample();

        Assert.Equal(["x-legate-tenant", "x-legate-subject", "x-legate-client"], EarlyRemovals());
    }

    private const string Varied = """
        listeners:
          - { name: public, address: 0.0.0.0, port: 8080 }
          - { name: internal, address: 127.0.0.1, port: 8081 }
        backends:
          secure: { urls: [https://payments.internal:8443], tls: { sni: pay.internal, ca_file: ca.pem }, http2: true, connect_timeout: 250ms, health_check: { path: /healthz } }
          plain: { urls: ["http://10.0.0.1:80", "http://10.0.0.2:80"], health_check: { path: /healthz } }
        tenants:
          acme: { hosts: [api.acme.example] }
        policies:
          default: { credentials: [jwt] }
        routes:
          - { name: exact, match: { path: /status, query: { verbose: "1" }, headers: { x-debug: "yes" } }, backend: plain, rewrite: /health }
          - { name: regex, match: { regex: "^/v[0-9]+/pay$", methods: [POST] }, backend: secure, timeout: 2s }
          - { name: strip, match: { prefix: /api/ }, backend: plain, rewrite: /, cors: { origins: ["*"], max_age: 1m } }
          - { name: under, match: { prefix: / }, backend: plain, rewrite: /v1 }
        """;

    [Fact]
    public async Task TlsBackends_ExactAndRegexMatches_AndSlashRewrites_RenderToValidEnvoyConfig()
    {
        using var dir = GatewayFiles.Write(Varied);
        File.WriteAllText(dir.File("ca.pem"), "-----BEGIN CERTIFICATE-----\nnot checked by render\n-----END CERTIFICATE-----\n");

        var (exitCode, _, stderr) = Render(dir.File("gateway.yaml"), _out.Path);

        Assert.True(exitCode == Cli.Ok, stderr);
        var cds = GatewayFiles.Load(_out.File("envoy/dynamic/cds.yaml")).Seq("resources");
        var secure = cds.Single(c => c.Str("name") == "secure");
        Assert.Equal("STRICT_DNS", secure.Str("type"));
        Assert.Equal("0.25s", secure.Str("connect_timeout"));
        Assert.Equal("pay.internal", secure.Str("transport_socket", "typed_config", "sni"));
        Assert.Equal(Path.Combine(_out.Path, "envoy", "certs", "secure-ca.pem"),
            secure.Str("transport_socket", "typed_config", "common_tls_context", "validation_context", "trusted_ca", "filename"));
        Assert.True(File.Exists(_out.File("envoy/certs/secure-ca.pem")));
        Assert.Equal(["DNS pay.internal"], ServerNames(secure));
        Assert.NotNull(secure.Get("typed_extension_protocol_options"));
        Assert.Equal("STATIC", cds.Single(c => c.Str("name") == "plain").Str("type"));
        // An HTTP/2-only (gRPC) backend does not answer an HTTP/1.1 check, Envoy's default: it would never turn healthy.
        Assert.Equal("HTTP2", secure.Seq("health_checks").Single().Str("http_health_check", "codec_client_type"));
        Assert.Null(cds.Single(c => c.Str("name") == "plain").Seq("health_checks").Single().Get("http_health_check", "codec_client_type"));

        Assert.Equal(["public", "internal"], Lds().Seq("resources").Select(l => l.Str("name")));
        var exact = Route("exact");
        Assert.Equal("/status", exact.Str("match", "path"));
        Assert.Equal("verbose", exact.Seq("match", "query_parameters")[0].Str("name"));
        Assert.Equal("x-debug", exact.Seq("match", "headers")[0].Str("name"));
        Assert.Equal("/health", exact.Str("route", "prefix_rewrite"));
        Assert.Equal("^/v[0-9]+/pay$", Route("regex").Str("match", "safe_regex", "regex"));
        Assert.Equal("POST", Route("regex").Seq("match", "headers")[0].Str("string_match", "exact"));
        var strip = Route("strip");
        Assert.Equal("/api", strip.Str("match", "path_separated_prefix"));
        Assert.Equal("^/api/?", strip.Str("route", "regex_rewrite", "pattern", "regex"));
        Assert.Equal("/", strip.Str("route", "regex_rewrite", "substitution"));
        // prefix_rewrite replaces the matched '/': /x must become /v1/x, not /v1x.
        var under = Route("under");
        Assert.Equal("/", under.Str("match", "prefix"));
        Assert.Equal("/v1/x", under.Str("route", "prefix_rewrite") + "/x"[1..]);
        Assert.Equal(".*", strip.Seq("typed_per_filter_config", "envoy.filters.http.cors", "allow_origin_string_match")[0].Str("safe_regex", "regex"));

        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        var (code, output) = await SharedTools.RunAsync(tool!, _out.File("envoy/envoy.yaml"));
        Assert.True(code == 0, output);
        Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void TlsBackends_CheckTheCertificateNamesTheServer_NotOnlyItsChain()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal.Replace("api: { urls: [http://127.0.0.1:9999] }", """
            api: { urls: [http://127.0.0.1:9999] }
              named: { urls: ["https://Orders-1.internal:8443", "https://orders-2.internal:8443"] }
              addressed: { urls: ["https://10.0.0.9:8443"] }
            """, StringComparison.Ordinal));

        var (exitCode, _, stderr) = Render(dir.File("gateway.yaml"), _out.Path);

        Assert.True(exitCode == Cli.Ok, stderr);
        var cds = GatewayFiles.Load(_out.File("envoy/dynamic/cds.yaml")).Seq("resources");
        // Without these Envoy accepts any certificate its CA bundle vouches for, whoever it was issued to.
        Assert.Equal(["DNS orders-1.internal", "DNS orders-2.internal"], ServerNames(cds.Single(c => c.Str("name") == "named")));
        Assert.Equal(["IP_ADDRESS 10.0.0.9"], ServerNames(cds.Single(c => c.Str("name") == "addressed")));
    }

    private static IEnumerable<string> ServerNames(YamlNode cluster)
        => cluster.Seq("transport_socket", "typed_config", "common_tls_context", "validation_context", "match_typed_subject_alt_names")
            .Select(m => $"{m.Str("san_type")} {m.Str("matcher", "exact")}");

    private AuthzPolicySet LoadAuthz()
    {
        using var loader = new AuthzPolicyLoader(TimeProvider.System);
        return loader.Load(RulesFiles.Read(_out.File("authz/policies.yaml")));
    }

    private static RateLimitDescriptor Descriptor(params (string Key, string Value)[] entries)
    {
        var descriptor = new RateLimitDescriptor();
        foreach (var (key, value) in entries)
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
        return descriptor;
    }

    /// <summary>
    /// The descriptors one rate_limits entry can produce, read from Envoy's actions: generic keys as written, authz
    /// metadata (only the keys authz emits) for every tenant and a few clients, a sample address.
    /// </summary>
    private static IEnumerable<RateLimitDescriptor> Descriptors(IReadOnlyList<YamlNode> actions, string[] tenants)
    {
        IEnumerable<List<(string, string)>> combos = [[]];
        foreach (var action in actions)
        {
            (string Key, string[] Values) entry;
            if (action.Get("generic_key") is { } generic)
            {
                entry = (generic.Str("descriptor_key")!, [generic.Str("descriptor_value")!]);
            }
            else if (action.Get("remote_address") is not null)
            {
                entry = ("remote_address", ["192.0.2.1", "2001:db8::1"]);
            }
            else
            {
                var metadata = action.Get("metadata")!;
                Assert.Equal("envoy.filters.http.ext_authz", metadata.Str("metadata_key", "key"));
                Assert.Equal("DYNAMIC", metadata.Str("source"));
                var key = metadata.Seq("metadata_key", "path").Single().Str("key");
                entry = (metadata.Str("descriptor_key")!, key switch
                {
                    "tenant" => tenants,
                    "client" => ["anonymous", "demo-client", "alice"],
                    // authz's plan is free text (an API key's --plan): listed plans, its value for none, and others.
                    "plan" => ["free", "gold", "default", "platinum", "Gold", "no such plan"],
                    _ => throw new InvalidOperationException($"authz emits no metadata '{key}'"),
                });
            }
            combos = combos.SelectMany(c => entry.Values.Select(v => new List<(string, string)>(c) { (entry.Key, v) })).ToList();
        }
        return combos.Select(c => Descriptor([.. c]));
    }
}
