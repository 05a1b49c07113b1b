using Envoy.Extensions.Common.Ratelimit.V3;
using Legate.Hosting.Rules;
using Legate.RateLimit.Config;
using Legate.Testing;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Tests;

/// <summary>
/// Per-plan quotas: the plans: section as validate reads it, the descriptors Envoy sends and the ratelimit rules render
/// writes for it, and the two checked against each other from the rendered files alone: every (tenant, plan, client) a
/// route can send matches a rule, and the rule's limit is the one the gateway file gives that client.
/// </summary>
public sealed class PlanQuotasTests : IDisposable
{
    /// <summary>
    /// Tenants of each kind: acme and globex on plans with tenant and client quotas, initech with a client quota of its
    /// own, hooli without a plan, umbrella with a tenant quota of its own, cyberdyne on trial, a plan without quotas.
    /// </summary>
    internal const string Plans = """
        backends:
          api: { urls: [http://127.0.0.1:9999] }
        tenants:
          acme: { hosts: [api.acme.example], plan: pro }
          globex: { hosts: [api.globex.example], plan: enterprise }
          initech: { hosts: [api.initech.example], plan: free, quotas: { client: { requests: 7, per: second } } }
          hooli: { hosts: [api.hooli.example] }
          umbrella: { hosts: [api.umbrella.example], plan: pro, quotas: { tenant: { requests: 900, per: minute } } }
          cyberdyne: { hosts: [api.cyberdyne.example], plan: trial }
        policies:
          default: { credentials: [jwt] }
        plans:
          free: { client: { requests: 5, per: second } }
          pro: { client: { requests: 50, per: second }, tenant: { requests: 6000, per: minute } }
          enterprise: { client: { requests: 500, per: second }, tenant: { requests: 60000, per: minute } }
          trial: {}
        quotas:
          tenant: { requests: 600, per: minute }
          client: { requests: 2, per: second }
        routes:
          - name: api
            match: { prefix: / }
            backend: api
            rate_limits: [{ by: client, requests: 1000, per: second }]
        """;

    /// <summary>Plan values authz can send: the listed plans, its value for none, and plans no file lists.</summary>
    private static readonly string[] PlanValues = ["free", "pro", "enterprise", "trial", "default", "platinum", "Pro", "pro ", "no such plan"];

    private readonly TempDir _out = new();

    public void Dispose() => _out.Dispose();

    private string RenderPlans(string yaml = Plans, params string[] extra)
    {
        using var dir = GatewayFiles.Write(yaml);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = Cli.Run(["render", dir.File("gateway.yaml"), "-o", _out.Path, "--envoy-dir", Path.Combine(_out.Path, "envoy"), .. extra], stdout, stderr);
        Assert.True(exitCode == Cli.Ok, stderr.ToString());
        return stdout.ToString();
    }

    private RateLimitConfig Rules() => new RateLimitConfigLoader().Load(RulesFiles.Read(_out.File("ratelimit")));

    private IReadOnlyList<YamlNode>[] Actions(string route = "api")
    {
        var hcm = GatewayFiles.Load(_out.File("envoy/dynamic/lds.yaml")).Seq("resources")[0].Seq("filter_chains")[0].Seq("filters")[0].Get("typed_config")!;
        return hcm.Seq("route_config", "virtual_hosts").SelectMany(h => h.Seq("routes")).First(r => r.Str("name") == route)
            .Seq("route", "rate_limits").Select(l => l.Seq("actions")).ToArray();
    }

    private static RateLimitDescriptor Descriptor(params (string Key, string Value)[] entries)
    {
        var descriptor = new RateLimitDescriptor();
        foreach (var (key, value) in entries)
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
        return descriptor;
    }

    private static string Limit(RateLimitConfig rules, params (string Key, string Value)[] entries)
        => rules.Match("edge", Descriptor(entries)) is { } match ? match.Policy.Unlimited ? "unlimited" : $"{match.Policy.RequestsPerUnit}/{match.Policy.Unit.ToString().ToLowerInvariant()}" : "no rule";

    // ---- validate ----------------------------------------------------------------------------------------------------

    [Fact]
    public void Plans_AreValid()
    {
        Assert.Empty(GatewayFiles.Errors(Plans));
    }

    [Fact]
    public void ATenantsPlanThePlansDoNotList_IsAnError_AtItsPlace_WithASuggestion()
    {
        var errors = GatewayFiles.Errors(Plans.Replace("plan: enterprise }", "plan: enterprize }", StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal(("gw.yaml", 5, 48, "tenants.globex.plan", "no plan named 'enterprize'", "did you mean 'enterprise'?"),
            (error.File, error.Line, error.Column, error.Field, error.Problem, error.Hint));
    }

    [Fact]
    public void ATenantsPlanDefault_IsAnError_ThatSaysWhatDefaultIs_NotWhichPlansExist()
    {
        // 'default' cannot be listed in plans, so "defined plans: …" would send the user looking for a way to list it.
        var errors = GatewayFiles.Errors(Plans.Replace("plan: trial }", "plan: default }", StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal(("tenants.cyberdyne.plan", "'default' is authz's plan for a caller whose API key and tenant name none, not a plan of plans"),
            (error.Field, error.Problem));
        Assert.Equal("remove plan: to give cyberdyne's clients the quotas: defaults, or name one of plans: enterprise, free, pro, trial", error.Hint);
        Assert.Equal((9, 54), (error.Line, error.Column));
    }

    [Fact]
    public void WithoutPlans_ATenantsPlanIsOnlyMetadata_AsBefore_AndNoRouteSendsAPlan()
    {
        var yaml = GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme: { hosts: [api.acme.example], plan: Anything Goes }", StringComparison.Ordinal)
            + "\nquotas: { client: { requests: 5, per: second } }\n";
        Assert.Empty(GatewayFiles.Errors(yaml));

        RenderPlans(yaml);

        Assert.Equal([["tenant", "client"]], Actions().Select(a => a.Select(x => x.Str("metadata", "descriptor_key"))));
        Assert.Contains("plan: Anything Goes", File.ReadAllText(_out.File("authz/policies.yaml")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("  default: { client: { requests: 9, per: second } }", "plans.default", "'default' is the plan authz reports for a caller whose API key and tenant name none")]
    [InlineData("  Gold: { client: { requests: 9, per: second } }", "plans.Gold", "name 'Gold' is not valid")]
    [InlineData("  gold: { clients: { requests: 9, per: second } }", "plans.gold.clients", "unknown field")]
    [InlineData("  gold: { source: { requests: 9, per: second } }", "plans.gold.source", "unknown field")]
    [InlineData("  gold: { client: { requests: 0, per: second } }", "plans.gold.client.requests", "a quota of 0 requests can never be met")]
    [InlineData("  gold: { client: { requests: 9, per: week } }", "plans.gold.client.per", "unknown unit 'week'")]
    [InlineData("  gold: [client]", "plans.gold", "is a mapping")]
    public void BadPlans_AreErrors(string plan, string field, string problem)
    {
        var errors = GatewayFiles.Errors(Plans.Replace("  trial: {}", plan, StringComparison.Ordinal).Replace("plan: trial", "plan: free", StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal(field, error.Field);
        Assert.StartsWith(problem, error.Problem, StringComparison.Ordinal);
        Assert.NotNull(error.Line);
        Assert.False(string.IsNullOrEmpty(error.Hint), error.ToString());
    }

    [Fact]
    public void PlanClientQuotas_WithoutADefaultClientQuota_AreAnError_SinceAnUnlistedPlanWouldBeUnlimited()
    {
        var errors = GatewayFiles.Errors(Plans.Replace("  client: { requests: 2, per: second }\n", "", StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal("quotas.client", error.Field);
        Assert.Contains("is required when a plan has a client quota", error.Problem, StringComparison.Ordinal);
        Assert.Contains("plan 'default'", error.Problem, StringComparison.Ordinal);
        Assert.Contains("quotas: {client:", error.Hint, StringComparison.Ordinal);
        Assert.Equal((17, 1), (error.Line, error.Column));   // at quotas:, where it is missing
    }

    [Fact]
    public void PlanClientQuotas_WithoutADefault_AreFine_WhenEveryTenantHasItsOwnClientQuota()
    {
        var errors = GatewayFiles.Errors("""
            backends:
              api: { urls: [http://127.0.0.1:9999] }
            tenants:
              acme: { hosts: [api.acme.example], plan: pro, quotas: { client: { requests: 3, per: second } } }
            policies:
              default: { credentials: [jwt] }
            plans:
              pro: { client: { requests: 50, per: second } }
            routes:
              - { name: api, match: { prefix: / }, backend: api }
            """);

        Assert.Empty(errors);
    }

    [Fact]
    public void ImpossiblePlanQuotas_AreErrors_WithinAPlan_AndWhereAPlanMeetsATenantsOwnOrTheDefaultQuota()
    {
        var errors = GatewayFiles.Errors(Plans
            .Replace("enterprise: { client: { requests: 500, per: second }, tenant: { requests: 60000, per: minute } }",
                "enterprise: { client: { requests: 500, per: second }, tenant: { requests: 400, per: second } }", StringComparison.Ordinal)
            .Replace("umbrella: { hosts: [api.umbrella.example], plan: pro, quotas: { tenant: { requests: 900, per: minute } } }",
                "umbrella: { hosts: [api.umbrella.example], plan: pro, quotas: { tenant: { requests: 30, per: second } } }", StringComparison.Ordinal)
            .Replace("trial: {}", "trial: { tenant: { requests: 1, per: second } }", StringComparison.Ordinal));

        (string Field, string Problem, string Hint)[] expected =
        [
            // umbrella's own tenant quota under pro's client quota
            ("tenants.umbrella.plan", "50 per second for each client (plans.pro.client) can never be reached: the tenant's limit is 30 per second (tenants.umbrella.quotas.tenant)",
                "lower plans.pro.client to at most 30, or raise tenants.umbrella.quotas.tenant"),
            // trial's tenant quota under the default client quota its clients get
            ("tenants.cyberdyne.plan", "2 per second for each client (quotas.client) can never be reached: the tenant's limit is 1 per second (plans.trial.tenant)",
                "lower quotas.client to at most 1, or raise plans.trial.tenant"),
            // within a plan, as within a tenant's quotas (globex, on it, is not reported again)
            ("plans.enterprise.client", "500 per second can never be reached: the plan's tenant limit is 400 per second", "lower it to at most 400, or raise the plan's tenant limit"),
        ];
        Assert.Equal(expected, errors.Select(e => (e.Field, e.Problem, e.Hint!)));
    }

    // ---- render ------------------------------------------------------------------------------------------------------

    [Fact]
    public void TheClientDescriptor_CarriesThePlan_FromAuthzMetadata_DefaultingToAuthzsValueForNone()
    {
        RenderPlans();

        var actions = Actions();
        // (tenant), (tenant, plan, client), (route, tenant, client): a route's own per-client limit is not by plan.
        Assert.Equal([["tenant"], ["tenant", "plan", "client"], ["route", "tenant", "client"]],
            actions.Select(a => a.Select(x => x.Str("metadata", "descriptor_key") ?? x.Str("generic_key", "descriptor_key"))));
        var plan = actions[1][1];
        Assert.Equal("envoy.filters.http.ext_authz", plan.Str("metadata", "metadata_key", "key"));
        Assert.Equal("plan", plan.Seq("metadata", "metadata_key", "path").Single().Str("key"));
        Assert.Equal("DYNAMIC", plan.Str("metadata", "source"));
        Assert.Equal("default", plan.Str("metadata", "default_value"));
    }

    [Theory]
    // acme is on pro: its tenant quota is pro's, each client's the quota of the client's own plan.
    [InlineData("acme", "6000/minute", "pro", "50/second")]
    [InlineData("acme", "6000/minute", "free", "5/second")]
    [InlineData("acme", "6000/minute", "enterprise", "500/second")]
    // A plan listed without a client quota, authz's plan for none, and plans the file does not list: the default.
    [InlineData("acme", "6000/minute", "trial", "2/second")]
    [InlineData("acme", "6000/minute", "default", "2/second")]
    [InlineData("acme", "6000/minute", "platinum", "2/second")]
    [InlineData("acme", "6000/minute", "Pro", "2/second")]
    [InlineData("globex", "60000/minute", "enterprise", "500/second")]
    [InlineData("globex", "60000/minute", "free", "5/second")]
    // A tenant's own client quota wins over every plan; its tenant quota is its plan's (free has none: the default).
    [InlineData("initech", "600/minute", "free", "7/second")]
    [InlineData("initech", "600/minute", "enterprise", "7/second")]
    [InlineData("initech", "600/minute", "platinum", "7/second")]
    // No plan: the default tenant quota, and the client's plan still counts (an API key may name one).
    [InlineData("hooli", "600/minute", "default", "2/second")]
    [InlineData("hooli", "600/minute", "pro", "50/second")]
    // A tenant's own tenant quota wins over its plan's.
    [InlineData("umbrella", "900/minute", "pro", "50/second")]
    [InlineData("cyberdyne", "600/minute", "trial", "2/second")]
    public void EachTenantAndClient_GetsTheQuotaOfItsPlan_UnlessItsTenantHasItsOwn(string tenant, string tenantLimit, string plan, string clientLimit)
    {
        RenderPlans();
        var rules = Rules();

        Assert.Equal(tenantLimit, Limit(rules, ("tenant", tenant)));
        Assert.Equal(clientLimit, Limit(rules, ("tenant", tenant), ("plan", plan), ("client", "c-1")));
        // Counters are per client: the same plan, another client, another counter (the descriptor differs only there).
        Assert.Equal(clientLimit, Limit(rules, ("tenant", tenant), ("plan", plan), ("client", "c-2")));
    }

    /// <summary>
    /// Adding plans to a running gateway: render publishes the ratelimit rules before the listeners, and in Kubernetes
    /// the Envoy pods not rolled yet keep sending the descriptors of the file without plans to ratelimit pods already on
    /// the new rules. Their (tenant, client) must still be limited, as a client without a plan (the default plan's
    /// quota, as the plan action's default_value has it), not pass unlimited until every Envoy has the new listeners.
    /// </summary>
    [Fact]
    public void TheDescriptorsOfTheFileWithoutPlans_StillGetLimits_FromTheNewRules_WhileEnvoyCatchesUp()
    {
        var before = Plans[..Plans.IndexOf("plans:\n", StringComparison.Ordinal)] + Plans[Plans.IndexOf("quotas:\n", StringComparison.Ordinal)..];
        RenderPlans(before);
        var oldActions = Actions();
        Assert.Contains(oldActions, a => a.Select(x => x.Str("metadata", "descriptor_key")).SequenceEqual(["tenant", "client"]));

        RenderPlans();
        var rules = Rules();

        foreach (var tenant in new[] { "acme", "globex", "initech", "hooli", "umbrella", "cyberdyne" })
        {
            // The quota of a client without a plan: the tenant's own client quota, else quotas.client.
            var expected = tenant == "initech" ? "7/second" : "2/second";
            Assert.Equal(expected, Limit(rules, ("tenant", tenant), ("client", "c-1")));
            Assert.Equal(expected, Limit(rules, ("tenant", tenant), ("plan", "default"), ("client", "c-1")));
        }
    }

    [Fact]
    public void Rules_AreOnePerListedPlan_PlusOneForEveryOtherPlan_AndATenantsOwnClientQuotaIsOneRule()
    {
        RenderPlans();
        var rules = Rules();

        // Metric names (the rule paths) come from the file: bounded by its plans and tenants, whatever clients or
        // plans callers bring. Each tenant rule keeps the (tenant, client) rule of a file without plans (see
        // TheDescriptorsOfTheFileWithoutPlans_StillGetLimits_FromTheNewRules_WhileEnvoyCatchesUp).
        Assert.Equal(
            [
                "edge.tenant", "edge.tenant.client", "edge.tenant.plan.client", "edge.tenant.plan_enterprise.client", "edge.tenant.plan_free.client", "edge.tenant.plan_pro.client",
                "edge.tenant_acme", "edge.tenant_acme.client", "edge.tenant_acme.plan.client", "edge.tenant_acme.plan_enterprise.client", "edge.tenant_acme.plan_free.client", "edge.tenant_acme.plan_pro.client",
                "edge.tenant_globex", "edge.tenant_globex.client", "edge.tenant_globex.plan.client", "edge.tenant_globex.plan_enterprise.client", "edge.tenant_globex.plan_free.client", "edge.tenant_globex.plan_pro.client",
                "edge.tenant_initech", "edge.tenant_initech.client", "edge.tenant_initech.plan.client",
                "edge.tenant_umbrella", "edge.tenant_umbrella.client", "edge.tenant_umbrella.plan.client", "edge.tenant_umbrella.plan_enterprise.client", "edge.tenant_umbrella.plan_free.client", "edge.tenant_umbrella.plan_pro.client",
                "edge.route_api.tenant.client",
            ],
            rules.Policies.Select(p => p.MetricPath));
    }

    [Fact]
    public void PlansWithTenantQuotasOnly_ChangeNoDescriptor_TheirTenantsGetThemAtRenderTime()
    {
        RenderPlans("""
            backends:
              api: { urls: [http://127.0.0.1:9999] }
            tenants:
              acme: { hosts: [api.acme.example], plan: pro }
              hooli: { hosts: [api.hooli.example] }
            policies:
              default: { credentials: [jwt] }
            plans:
              pro: { tenant: { requests: 6000, per: minute } }
            quotas:
              client: { requests: 2, per: second }
            routes:
              - { name: api, match: { prefix: / }, backend: api }
            """);
        var rules = Rules();

        Assert.Equal([["tenant"], ["tenant", "client"]], Actions().Select(a => a.Select(x => x.Str("metadata", "descriptor_key"))));
        Assert.Equal("6000/minute", Limit(rules, ("tenant", "acme")));
        Assert.Equal("unlimited", Limit(rules, ("tenant", "hooli")));   // no quota anywhere for it: as before plans
        Assert.Equal("2/second", Limit(rules, ("tenant", "acme"), ("client", "c-1")));
    }

    [Fact]
    public void Summary_ListsThePlans_AndWhatAnyOtherPlanGets()
    {
        var summary = RenderPlans();

        Assert.Contains("  plans:     enterprise (tenant 60000/minute, client 500/second), free (client 5/second), pro (tenant 6000/minute, client 50/second), trial; any other plan: the quotas: defaults\n",
            summary, StringComparison.Ordinal);
    }

    /// <summary>
    /// Consistency by construction, from the rendered files alone: every descriptor the route actions in lds.yaml can
    /// produce — each tenant in the authz policy, each plan value authz can send, a few clients — matches a rule of the
    /// rendered ratelimit config, and for the quota descriptors that rule's limit is the one the gateway file gives
    /// (worked out here on its own: the tenant's own quota, else the plan's, else the default).
    /// </summary>
    [Fact]
    public void EveryDescriptorTheRoutesSend_MatchesARule_WithTheQuotaTheGatewayFileGives()
    {
        RenderPlans();
        var rules = Rules();
        var policy = GatewayFiles.Load(_out.File("authz/policies.yaml"));
        var tenants = ((YamlMappingNode)policy.Get("tenants")!).Children.Keys.Select(k => k.ToString()).ToArray();
        var file = GatewayFiles.Load(WriteBack(Plans));

        var checkedDescriptors = 0;
        foreach (var actions in Actions())
        {
            IEnumerable<List<(string Key, string Value)>> combos = [[]];
            foreach (var action in actions)
            {
                (string Key, string[] Values) entry = action.Get("generic_key") is { } generic
                    ? (generic.Str("descriptor_key")!, [generic.Str("descriptor_value")!])
                    : (action.Str("metadata", "descriptor_key")!, action.Seq("metadata", "metadata_key", "path").Single().Str("key") switch
                    {
                        "tenant" => tenants,
                        "plan" => PlanValues,
                        "client" => ["anonymous", "c-1"],
                        var other => throw new InvalidOperationException($"authz emits no metadata '{other}'"),
                    });
                combos = combos.SelectMany(c => entry.Values.Select(v => new List<(string, string)>(c) { (entry.Key, v) })).ToList();
            }
            foreach (var combo in combos)
            {
                var limit = Limit(rules, [.. combo]);
                Assert.NotEqual("no rule", limit);
                var expected = combo.Select(e => e.Key).ToArray() switch
                {
                    ["tenant"] => Quota(file, "tenants", combo[0].Value, "quotas", "tenant") ?? Quota(file, "plans", file.Str("tenants", combo[0].Value, "plan") ?? "-", "tenant") ?? Quota(file, "quotas", "tenant"),
                    ["tenant", "plan", "client"] => Quota(file, "tenants", combo[0].Value, "quotas", "client") ?? Quota(file, "plans", combo[1].Value, "client") ?? Quota(file, "quotas", "client"),
                    _ => limit,
                };
                Assert.True(expected == limit, $"({string.Join(", ", combo)}): {limit}, expected {expected}");
                checkedDescriptors++;
            }
        }
        Assert.Equal(6 + 6 * PlanValues.Length * 2 + 6 * 2, checkedDescriptors);

        static string? Quota(YamlNode file, params string[] path)
            => file.Get(path) is { } quota ? $"{quota.Str("requests")}/{quota.Str("per")}" : null;
    }

    [Fact]
    public async Task EnvoyCheck_AcceptsTheRenderedPlanActions()
    {
        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        RenderPlans();
        using var staticOut = new TempDir();
        using var dir = GatewayFiles.Write(Plans);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.True(Cli.Run(["render", dir.File("gateway.yaml"), "-o", staticOut.Path, "--envoy-dir", staticOut.File("envoy"), "--static"], stdout, stderr) == Cli.Ok, stderr.ToString());

        foreach (var bootstrap in new[] { _out.File("envoy/envoy.yaml"), staticOut.File("envoy/envoy.yaml") })
        {
            var (code, output) = await SharedTools.RunAsync(tool!, bootstrap);
            Assert.True(code == 0, output);
            Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void SelfCheck_RefusesRulesGivingAClientAnotherPlansQuota()
    {
        using var dir = GatewayFiles.Write(Plans);
        var config = Loading.GatewayLoader.Load(dir.File("gateway.yaml"));
        var rendered = Render.GatewayRenderer.Render(config, new Render.RenderOptions());
        Render.SelfCheck.Run(config, rendered);
        var path = Render.GatewayRenderer.RateLimitFile(config);
        // The rules as a bug could write them: pro's clients under the free plan's limit.
        var broken = rendered[path].Text.Replace("value: pro\n        descriptors:\n          - key: client\n            rate_limit:\n              unit: second\n              requests_per_unit: 50",
            "value: pro\n        descriptors:\n          - key: client\n            rate_limit:\n              unit: second\n              requests_per_unit: 5", StringComparison.Ordinal);
        Assert.NotEqual(rendered[path].Text, broken);

        var e = Assert.Throws<Loading.GatewayFileException>(() => Render.SelfCheck.Run(config,
            new Render.RenderResult([.. rendered.Files.Select(f => f.Path == path ? new Render.RenderedFile(path, System.Text.Encoding.UTF8.GetBytes(broken)) : f)])));

        Assert.Contains(e.Errors, x => x.Problem == "the generated ratelimit rules give the descriptor (tenant=hooli, plan=pro, client=anonymous) 5 per second (rule edge.tenant.plan_pro.client), where the gateway file gives it 50 per second");
    }

    private string WriteBack(string yaml)
    {
        var path = _out.File("source.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }
}
