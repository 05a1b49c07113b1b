using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using Legate.Testing;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Tests;

/// <summary>
/// Header and query conditions beyond exact values, a route's header edits and host rewrite: what the loader accepts and refuses
/// (every error class), how route shadowing treats conditions (never a false conflict, the provable shadows found),
/// and what Envoy gets.
/// </summary>
public sealed class RouteHeadersTests : IDisposable
{
    private readonly TempDir _out = new();

    public void Dispose() => _out.Dispose();

    /// <summary>A gateway using every kind of condition; also rendered to golden/routes.</summary>
    public const string Routes = """
        backends:
          api: { urls: [http://127.0.0.1:9999] }
          beta: { urls: [http://beta.internal:8080] }
        tenants:
          acme: { hosts: [api.acme.example] }
        policies:
          default: { credentials: [jwt] }
        routes:
          - name: canary
            match:
              prefix: /orders
              headers:
                x-canary: "1"
                x-version: { prefix: "v2." }
                x-client: { regex: "^(ios|android)-[0-9]+$" }
                x-debug: { present: false }
              query: { trace: { present: true } }
            backend: beta
            rewrite_host: true
          - name: not-bots
            match: { prefix: /orders, headers: { user-agent: { contains: bot, invert: true }, x-region: { suffix: -eu } }, query: { v: { prefix: "2" } } }
            backend: beta
            request_headers:
              set: { x-api-version: "2", x-discount: 10% }
              add: { x-via: legate }
              remove: [x-debug, authorization]
            response_headers:
              set: { cache-control: no-store }
              remove: [server, x-powered-by]
            rewrite_host: orders.internal:8080
          - { name: api, match: { prefix: / }, backend: api }
        """;

    private static string WithRoutes(string routes) => GatewayFiles.Minimal.Replace("  - { name: api, match: { prefix: / }, backend: api }", routes, StringComparison.Ordinal);

    private static RouteMatch Match(string match)
        => GatewayLoader.Load(new RulesFile("gw.yaml", WithRoutes($"  - {{ name: api, match: {match}, backend: api }}"))).Routes[0].Match;

    // ---- loading -----------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("{ x-a: \"1\" }", "Exact", "1", false)]
    [InlineData("{ x-a: { exact: \"\" } }", "Exact", "", false)]
    [InlineData("{ x-a: { exact: v1, invert: true } }", "Exact", "v1", true)]
    [InlineData("{ x-a: { prefix: v1 } }", "Prefix", "v1", false)]
    [InlineData("{ x-a: { suffix: .eu } }", "Suffix", ".eu", false)]
    [InlineData("{ x-a: { contains: bot, invert: true } }", "Contains", "bot", true)]
    [InlineData("{ x-a: { regex: \"^[0-9]+$\" } }", "Regex", "^[0-9]+$", false)]
    [InlineData("{ x-a: { present: true } }", "Present", "", false)]
    [InlineData("{ x-a: { present: false } }", "Absent", "", false)]
    public void HeaderConditions_Load(string headers, string kind, string value, bool invert)
    {
        var match = Match($"{{ prefix: /, headers: {headers} }}");

        Assert.Equal(new ValueCondition("x-a", Enum.Parse<ValueMatchKind>(kind), value, invert), Assert.Single(match.Headers));
    }

    [Theory]
    [InlineData("{ q: \"1\" }", "Exact", "1")]
    [InlineData("{ q: { prefix: ab } }", "Prefix", "ab")]
    [InlineData("{ q: { regex: \"a|b\" } }", "Regex", "a|b")]
    [InlineData("{ q: { present: true } }", "Present", "")]
    public void QueryConditions_Load(string query, string kind, string value)
    {
        var match = Match($"{{ prefix: /, query: {query} }}");

        Assert.Equal(new ValueCondition("q", Enum.Parse<ValueMatchKind>(kind), value), Assert.Single(match.Query));
    }

    [Theory]
    [InlineData("headers: { x-a: {} }", "routes[0].match.headers.x-a", "names no condition")]
    [InlineData("headers: { x-a: { prefix: a, suffix: b } }", "routes[0].match.headers.x-a", "names more than one condition (prefix, suffix)")]
    [InlineData("headers: { x-a: { prefx: a } }", "routes[0].match.headers.x-a.prefx", "unknown field")]
    [InlineData("headers: { x-a: { prefix: \"\" } }", "routes[0].match.headers.x-a.prefix", "is empty")]
    [InlineData("headers: { x-a: { regex: \"(?=a)\" } }", "routes[0].match.headers.x-a.regex", "is not a regular expression Envoy accepts")]
    [InlineData("headers: { x-a: { present: true, invert: true } }", "routes[0].match.headers.x-a.invert", "does not apply to present")]
    [InlineData("headers: { x-a: { present: maybe } }", "routes[0].match.headers.x-a.present", "")]
    [InlineData("headers: { X-A: { present: true } }", "routes[0].match.headers", "'X-A' is not a header name")]
    [InlineData("headers: { host: { suffix: .example } }", "routes[0].match.headers", "'host' is the request's :authority")]
    [InlineData("headers: { x-legate-tenant: { present: false } }", "routes[0].match.headers", "so it is always missing here and the condition says nothing")]
    [InlineData("headers: { x-legate-client: { prefix: a, invert: true } }", "routes[0].match.headers", "so the route would never match")]
    [InlineData("query: { q: { exact: a, invert: true } }", "routes[0].match.query.q.invert", "Envoy cannot invert a query parameter match")]
    [InlineData("query: { q: { present: false } }", "routes[0].match.query.q.present", "Envoy cannot match a missing query parameter")]
    [InlineData("query: { q: { contains: \"\" } }", "routes[0].match.query.q.contains", "is empty")]
    [InlineData("query: [q]", "routes[0].match.query", "is a mapping name → value")]
    public void AConditionEnvoyCannotEvaluateAsWritten_IsAnError(string condition, string field, string problem)
    {
        var errors = GatewayFiles.Errors(WithRoutes($"  - {{ name: api, match: {{ prefix: /, {condition} }}, backend: api }}"));

        var error = Assert.Single(errors);
        Assert.Equal(field, error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
        Assert.Equal(8, error.Line);
    }

    // ---- shadowing -----------------------------------------------------------------------------------------------

    [Theory]
    // Provably shadowed: every request the second route matches, the first matches too.
    [InlineData("{ x: { prefix: v1 } }", "{ x: v1.2 }", "never matches")]
    [InlineData("{ x: { present: true } }", "{ x: { regex: \"v[0-9]\" } }", "never matches")]
    [InlineData("{ x: { present: true } }", "{ x: { prefix: a, invert: true } }", "never matches")]   // inverted still needs the header
    [InlineData("{ x: { exact: a, invert: true } }", "{ x: b }", "never matches")]
    [InlineData("{ x: { prefix: ab, invert: true } }", "{ x: { prefix: a, invert: true } }", "never matches")]   // not a... is never ab...
    [InlineData("{ x: { prefix: a, invert: true } }", "{ x: { prefix: b } }", "never matches")]
    [InlineData("{ x: { suffix: c, invert: true } }", "{ x: { suffix: d } }", "never matches")]
    [InlineData("{ x: { contains: b } }", "{ x: { prefix: abc } }", "never matches")]
    [InlineData("{ x: { contains: b } }", "{ x: { suffix: abc } }", "never matches")]
    [InlineData("{ x: { suffix: c } }", "{ x: { suffix: bc } }", "never matches")]
    [InlineData("{ x: { present: false } }", "{ x: { present: false }, y: \"1\" }", "never matches")]
    [InlineData("{ x: { regex: \"a+\" } }", "{ x: { regex: \"a+\" } }", "conflicts with route 'first'")]
    [InlineData("{ x: { prefix: a, invert: true } }", "{ x: { prefix: a, invert: true } }", "conflicts with route 'first'")]
    // Not shadowed: some request reaches the second route (or the first cannot be proven to take all of them).
    [InlineData("{ x: v1.2 }", "{ x: { prefix: v1 } }", null)]
    [InlineData("{ x: { present: false } }", "{ x: { present: true } }", null)]
    [InlineData("{ x: { present: true } }", "{ x: { present: false } }", null)]
    [InlineData("{ x: { exact: a, invert: true } }", "{ x: a }", null)]
    [InlineData("{ x: { exact: a, invert: true } }", "{ x: { present: false } }", null)]   // a missing header never matches invert
    [InlineData("{ x: { prefix: a, invert: true } }", "{ x: { prefix: ab, invert: true } }", null)]   // ac reaches the second
    [InlineData("{ x: { prefix: a, invert: true } }", "{ x: { prefix: abc } }", null)]
    [InlineData("{ x: { prefix: a, invert: true } }", "{ x: { contains: b } }", null)]
    [InlineData("{ x: { regex: \"^a.*$\" } }", "{ x: abc }", null)]   // regexes are compared by text: never a false conflict
    [InlineData("{ x: { regex: \"a+\" } }", "{ x: { regex: \"a+\", invert: true } }", null)]
    [InlineData("{ x: { prefix: abc } }", "{ x: { contains: b } }", null)]
    [InlineData("{ x: { prefix: v1 } }", "{ y: v1.2 }", null)]
    [InlineData("{ x: { prefix: v1 } }", "{}", null)]
    public void HeaderConditions_ShadowALaterRoute_OnlyWhenEveryRequestItWouldTakeMatchesTheEarlierOne(string first, string second, string? problem)
    {
        var errors = GatewayFiles.Errors(WithRoutes($$"""
              - { name: first, match: { prefix: /, headers: {{first}} }, backend: api }
              - { name: second, match: { prefix: /, headers: {{second}} }, backend: api }
            """));

        if (problem is null)
        {
            Assert.Empty(errors);
            return;
        }
        var error = Assert.Single(errors);
        Assert.Equal("routes[1].match", error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ q: { present: true } }", "{ q: \"1\" }", true)]
    [InlineData("{ q: { prefix: \"1\" } }", "{ q: \"12\" }", true)]
    [InlineData("{ q: \"12\" }", "{ q: { prefix: \"1\" } }", false)]
    [InlineData("{ q: \"1\" }", "{ q: { present: true } }", false)]
    public void QueryConditions_ShadowALaterRoute_AsHeaderConditionsDo(string first, string second, bool shadowed)
    {
        var errors = GatewayFiles.Errors(WithRoutes($$"""
              - { name: first, match: { prefix: /, query: {{first}} }, backend: api }
              - { name: second, match: { prefix: /, query: {{second}} }, backend: api }
            """));

        Assert.Equal(shadowed ? 1 : 0, errors.Count);
    }

    [Fact]
    public void ExactValues_ShadowAsBefore()
    {
        var errors = GatewayFiles.Errors(WithRoutes("""
              - { name: first, match: { prefix: /, headers: { x-a: "1" } }, backend: api }
              - { name: second, match: { prefix: /a, headers: { x-a: "1", x-b: "2" } }, backend: api }
              - { name: third, match: { prefix: /, headers: { x-a: "2" } }, backend: api }
            """));

        Assert.Equal("routes[1].match", Assert.Single(errors).Field);
    }

    // ---- header edits --------------------------------------------------------------------------------------------

    private static string WithEdits(string edits, string prefix = "") => prefix + WithRoutes($"  - {{ name: api, match: {{ prefix: / }}, backend: api, {edits} }}");

    [Fact]
    public void HeaderEdits_Load_InTheirLists()
    {
        var route = GatewayLoader.Load(new RulesFile("gw.yaml", WithEdits(
            "request_headers: { set: { x-a: \"1\" }, add: { x-b: two }, remove: [x-c] }, response_headers: { remove: [server] }"))).Routes[0];

        Assert.Equal([new("x-a", "1")], route.RequestHeaders!.Set);
        Assert.Equal([new("x-b", "two")], route.RequestHeaders.Add);
        Assert.Equal(["x-c"], route.RequestHeaders.Remove);
        Assert.Equal(["server"], route.ResponseHeaders!.Remove);
        Assert.Empty(route.ResponseHeaders.Set);
    }

    [Theory]
    [InlineData("", "request_headers: { set: { x-legate-tenant: acme } }", "routes[0].request_headers.set", "'x-legate-tenant' is an identity header: the route's edits apply after authz, so setting it would forge")]
    [InlineData("", "request_headers: { add: { x-legate-client: me } }", "routes[0].request_headers.add", "adding it would forge")]
    [InlineData("", "request_headers: { remove: [x-legate-subject] }", "routes[0].request_headers.remove", "removing it would drop what authz set")]
    // Many backends read '_' as '-' (CGI-style HTTP_X_LEGATE_TENANT): the listeners refuse such names from clients, a route may not send one.
    [InlineData("", "request_headers: { set: { x_legate_tenant: acme } }", "routes[0].request_headers.set", "'x_legate_tenant' is an identity header (backends that read '_' as '-' take it for x-legate-tenant)")]
    [InlineData("identity_headers: { claims: { email: X-User-Email } }\n", "request_headers: { add: { x-user_email: a@b.c } }", "routes[0].request_headers.add", "take it for X-User-Email")]
    [InlineData("identity_headers: { tenant: x-org, claims: { email: x-user-email } }\n", "request_headers: { set: { x-user-email: a@b.c } }", "routes[0].request_headers.set", "'x-user-email' is an identity header")]
    [InlineData("identity_headers: { tenant: x-org }\n", "request_headers: { remove: [x-org] }", "routes[0].request_headers.remove", "'x-org' is an identity header")]
    [InlineData("", "request_headers: { set: { host: a.example } }", "routes[0].request_headers.set", "Envoy does not let a route edit 'host'")]
    [InlineData("", "request_headers: { remove: [\":authority\"] }", "routes[0].request_headers.remove", "':authority' is a pseudo-header")]
    [InlineData("", "response_headers: { set: { \":status\": \"200\" } }", "routes[0].response_headers.set", "':status' is a pseudo-header")]
    [InlineData("", "request_headers: { set: { connection: close } }", "routes[0].request_headers.set", "'connection' is a hop-by-hop or framing header")]
    [InlineData("", "response_headers: { remove: [transfer-encoding] }", "routes[0].response_headers.remove", "'transfer-encoding' is a hop-by-hop or framing header")]
    [InlineData("", "request_headers: { set: { X-A: \"1\" } }", "routes[0].request_headers.set", "'X-A' is not a header name")]
    [InlineData("", "request_headers: { set: { x-a: \"1\" }, remove: [x-a] }", "routes[0].request_headers.remove", "'x-a' is also under set")]
    [InlineData("", "request_headers: { set: { x-a: \"1\" }, add: { x-a: \"2\" } }", "routes[0].request_headers.add", "'x-a' is also under set")]
    [InlineData("", "request_headers: { set: { x-a: \"\" } }", "routes[0].request_headers.set.x-a", "is empty")]
    [InlineData("", "request_headers: { set: { x-a: \"a\\nb\" } }", "routes[0].request_headers.set.x-a", "contains a control character")]
    [InlineData("", "request_headers: { replace: { x-a: b } }", "routes[0].request_headers.replace", "unknown field")]
    [InlineData("", "request_headers: [x-a]", "routes[0].request_headers", "is a mapping (set, add, remove)")]
    public void AHeaderEditThatWouldForgeIdentity_OrThatEnvoyRefuses_IsAnError(string prefix, string edits, string field, string problem)
    {
        var errors = GatewayFiles.Errors(WithEdits(edits, prefix));

        var error = Assert.Single(errors);
        Assert.Equal(field, error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ResponseHeaders_MayNameIdentityHeaders_WhichAreRequestHeaders()
        => Assert.Empty(GatewayFiles.Errors(WithEdits("response_headers: { set: { x-legate-tenant: none }, remove: [x-legate-client] }")));

    [Fact]
    public void HeaderEdits_BecomeTheRoutesHeaderMutations_WithLiteralValues()
    {
        var (exitCode, stderr) = Render(Routes);
        Assert.True(exitCode == Cli.Ok, stderr);

        var route = RenderedRoute("not-bots");
        var add = route.Seq("request_headers_to_add");
        Assert.Equal(
            [("x-api-version", "2", "OVERWRITE_IF_EXISTS_OR_ADD"), ("x-discount", "10%%", "OVERWRITE_IF_EXISTS_OR_ADD"), ("x-via", "legate", "APPEND_IF_EXISTS_OR_ADD")],
            add.Select(a => (a.Str("header", "key"), a.Str("header", "value"), a.Str("append_action"))));
        Assert.Equal(["x-debug", "authorization"], route.Seq("request_headers_to_remove").Select(r => ((YamlScalarNode)r).Value));
        Assert.Equal("no-store", Assert.Single(route.Seq("response_headers_to_add")).Str("header", "value"));
        Assert.Equal(["server", "x-powered-by"], route.Seq("response_headers_to_remove").Select(r => ((YamlScalarNode)r).Value));
        // Routes without edits, and the catch-all, have none.
        Assert.Null(RenderedRoute("canary").Get("request_headers_to_add"));
        Assert.Null(RenderedRoute("legate_not_found").Get("request_headers_to_remove"));
    }

    // ---- host rewrite --------------------------------------------------------------------------------------------

    private const string DnsBackend = "  dns: { urls: [http://orders.internal:8080, http://orders-2.internal:8080] }\n";

    [Theory]
    [InlineData("rewrite_host: orders.internal", "orders.internal", false)]
    [InlineData("rewrite_host: \"orders.internal:8443\"", "orders.internal:8443", false)]
    [InlineData("rewrite_host: 10.0.0.7", "10.0.0.7", false)]
    [InlineData("rewrite_host: \"[::1]:8080\"", "[::1]:8080", false)]
    [InlineData("rewrite_host: \"[fd00::7]\"", "[fd00::7]", false)]
    [InlineData("rewrite_host: true", null, true)]
    [InlineData("rewrite_host: false", null, false)]
    public void RewriteHost_IsALiteralHost_OrTrueForTheBackendsOwn(string field, string? literal, bool auto)
    {
        var route = GatewayLoader.Load(new RulesFile("gw.yaml", WithRoutes($"  - {{ name: api, match: {{ prefix: / }}, backend: dns, {field} }}")
            .Replace("backends:\n", "backends:\n" + DnsBackend, StringComparison.Ordinal))).Routes[0];

        Assert.Equal((literal, auto), (route.HostRewrite, route.AutoHostRewrite));
    }

    [Theory]
    [InlineData("backend: api, rewrite_host: true", "backend 'api' has an IP address URL (127.0.0.1)")]
    [InlineData("backends: [{ name: dns, weight: 1 }, { name: api, weight: 1 }], rewrite_host: true", "backend 'api' has an IP address URL")]
    [InlineData("backend: dns, rewrite_host: https://orders.internal", "'https://orders.internal' is not a host name")]
    [InlineData("backend: dns, rewrite_host: Orders.Internal", "'Orders.Internal' is not a host name")]
    [InlineData("backend: dns, rewrite_host: \"orders.internal:0\"", "'orders.internal:0' is not a host name")]
    [InlineData("backend: dns, rewrite_host: orders.internal/v1", "is not a host name")]
    [InlineData("backend: dns, rewrite_host: \"::1\"", "'::1' is not a host name")]   // a Host needs the brackets
    [InlineData("backend: dns, rewrite_host: \"[orders.internal]\"", "is not a host name")]
    public void ARewriteHostEnvoyCannotApply_IsAnError(string route, string problem)
    {
        var errors = GatewayFiles.Errors(WithRoutes($"  - {{ name: api, match: {{ prefix: / }}, {route} }}")
            .Replace("backends:\n", "backends:\n" + DnsBackend, StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal("routes[0].rewrite_host", error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void RewriteHost_BecomesHostRewriteLiteral_OrAutoHostRewrite()
    {
        var (exitCode, stderr) = Render(Routes);
        Assert.True(exitCode == Cli.Ok, stderr);

        Assert.Equal("true", RenderedRoute("canary").Str("route", "auto_host_rewrite"));
        Assert.Null(RenderedRoute("canary").Get("route", "host_rewrite_literal"));
        Assert.Equal("orders.internal:8080", RenderedRoute("not-bots").Str("route", "host_rewrite_literal"));
        Assert.Null(RenderedRoute("api").Get("route", "auto_host_rewrite"));
        // auto_host_rewrite takes the host name of a DNS-resolved endpoint: the backend's cluster is STRICT_DNS.
        var beta = GatewayFiles.Load(_out.File("envoy/dynamic/cds.yaml")).Seq("resources").Single(c => c.Str("name") == "beta");
        Assert.Equal("STRICT_DNS", beta.Str("type"));
    }

    // ---- rendering -----------------------------------------------------------------------------------------------

    private (int ExitCode, string Stderr) Render(string yaml, params string[] extra)
    {
        using var dir = GatewayFiles.Write(yaml);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = Cli.Run(["render", dir.File("gateway.yaml"), "-o", _out.Path, "--envoy-dir", _out.File("envoy"), .. extra], stdout, stderr);
        return (exitCode, stderr.ToString());
    }

    private YamlNode RenderedRoute(string name)
    {
        var hcm = GatewayFiles.Load(_out.File("envoy/dynamic/lds.yaml")).Seq("resources")[0].Seq("filter_chains")[0].Seq("filters")[0].Get("typed_config")!;
        return hcm.Seq("route_config", "virtual_hosts").Single(v => v.Str("name") == "any_host").Seq("routes").Single(r => r.Str("name") == name);
    }

    private static YamlNode Condition(IReadOnlyList<YamlNode> conditions, string name) => conditions.Single(c => c.Str("name") == name);

    [Fact]
    public void Conditions_BecomeEnvoysStringMatchers_PresentMatches_AndInvertMatch()
    {
        var (exitCode, stderr) = Render(Routes);
        Assert.True(exitCode == Cli.Ok, stderr);

        var headers = RenderedRoute("canary").Seq("match", "headers");
        Assert.Equal("1", Condition(headers, "x-canary").Str("string_match", "exact"));
        Assert.Null(Condition(headers, "x-canary").Get("invert_match"));
        Assert.Equal("v2.", Condition(headers, "x-version").Str("string_match", "prefix"));
        Assert.Equal("^(ios|android)-[0-9]+$", Condition(headers, "x-client").Str("string_match", "safe_regex", "regex"));
        // A missing header: present_match inverted, which every Envoy reads the same way.
        Assert.Equal(("true", "true"), (Condition(headers, "x-debug").Str("present_match"), Condition(headers, "x-debug").Str("invert_match")));
        var query = Assert.Single(RenderedRoute("canary").Seq("match", "query_parameters"));
        Assert.Equal(("trace", "true"), (query.Str("name"), query.Str("present_match")));

        var notBots = RenderedRoute("not-bots").Seq("match", "headers");
        Assert.Equal(("bot", "true"), (Condition(notBots, "user-agent").Str("string_match", "contains"), Condition(notBots, "user-agent").Str("invert_match")));
        Assert.Equal("-eu", Condition(notBots, "x-region").Str("string_match", "suffix"));
        Assert.Equal("2", Assert.Single(RenderedRoute("not-bots").Seq("match", "query_parameters")).Str("string_match", "prefix"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EnvoyCheck_AcceptsEveryKindOfCondition_TheHeaderEdits_AndHostRewrites(bool isStatic)
    {
        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        var (exitCode, stderr) = Render(Routes, isStatic ? ["--static"] : []);
        Assert.True(exitCode == Cli.Ok, stderr);

        var (code, output) = await SharedTools.RunAsync(tool!, _out.File("envoy/envoy.yaml"));

        Assert.True(code == 0, output);
        Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
    }
}
