using System.Text.RegularExpressions;

namespace Legate.Gateway.Tests;

/// <summary>legate validate: every error class, all errors at once, each with file:line:column, the field and a hint.</summary>
public sealed partial class ValidateTests
{
    [Fact]
    public void Minimal_IsValid()
    {
        Assert.Empty(GatewayFiles.Errors(GatewayFiles.Minimal));
    }

    [Fact]
    public void Example_IsValid()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exitCode = Cli.Run(["validate", GatewayFiles.Example], stdout, stderr);

        Assert.True(exitCode == Cli.Ok, stderr.ToString());
        Assert.Contains("OK (1 listener(s), 5 route(s)", stdout.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("validate")]
    [InlineData("render")]
    public void AuthzFailingOpen_IsValidButWarnedAboutLoudly_E12(string command)
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal + "\nservices:\n  authz: { failure_mode: allow }\n");
        var path = Path.Combine(dir.Path, "gateway.yaml");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exitCode = Cli.Run(command == "render" ? ["render", path, "-o", Path.Combine(dir.Path, "out")] : ["validate", path], stdout, stderr);

        Assert.True(exitCode == Cli.Ok, stderr.ToString());
        Assert.Contains($"{path}: services.authz.failure_mode: warning: 'allow' sends every request to the backends unchecked", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AuthzFailingClosed_TheDefault_IsNotWarnedAbout()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(Cli.Ok, Cli.Run(["validate", Path.Combine(dir.Path, "gateway.yaml")], stdout, stderr));
        Assert.DoesNotContain("warning", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("backends:\n  api: &api { urls: [http://127.0.0.1:9999], extra: *api }\n", 2, 53, "alias *api is inside the node it names (&api at line 2), which makes a cycle")]
    [InlineData("tenants: &t\n  acme: &a\n    hosts: [api.acme.example]\n    nested: { back: [*t] }\n", 4, 22, "alias *t is inside the node it names (&t at line 1), which makes a cycle")]
    [InlineData("backends:\n  api: *later\nlater: &later {}\n", 2, 8, "alias *later names no anchor &later before it")]
    public void AliasCycle_IsOneErrorAtTheAlias_NotACrash(string yaml, int line, int column, string problem)
    {
        var errors = GatewayFiles.Errors(yaml);

        var error = Assert.Single(errors);
        Assert.Equal(("gw.yaml", line, column, problem), (error.File, error.Line, error.Column, error.Problem));
    }

    [Fact]
    public void AliasCycle_FailsValidateNamingFileAndLine()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme: &acme { hosts: [api.acme.example], x: *acme }", StringComparison.Ordinal));
        var path = Path.Combine(dir.Path, "gateway.yaml");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(Cli.Invalid, Cli.Run(["validate", path], stdout, stderr));
        Assert.Contains($"{path}:4:47: alias *acme is inside the node it names (&acme at line 4), which makes a cycle", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownFields_AreAllReportedWithPlaceAndSuggestion()
    {
        var errors = GatewayFiles.Errors(GatewayFiles.Minimal.Replace("api: { urls:", "api: { url_s: [x], urls:", StringComparison.Ordinal)
            + "\nroute:\n  - x\n");

        Assert.Equal(2, errors.Count);
        Assert.Equal(("backends.api.url_s", 2, 10), (errors[0].Field, errors[0].Line, errors[0].Column));
        Assert.Equal("did you mean 'urls'?", errors[0].Hint);
        Assert.Equal(("route", 9, 1), (errors[1].Field, errors[1].Line, errors[1].Column));
        Assert.Equal("did you mean 'routes'?", errors[1].Hint);
    }

    [Fact]
    public void DanglingNames_AreErrorsNamingWhatExists()
    {
        var errors = GatewayFiles.Errors("""
            backends:
              api: { urls: [http://127.0.0.1:9999] }
            tenants:
              acme: { hosts: [api.acme.example], jwt: [idp] }
            policies:
              default: { credentials: [jwt] }
            routes:
              - { name: a, match: { prefix: /a }, backend: apx }
              - { name: b, match: { prefix: /b }, backend: api, auth: strict }
              - { name: c, match: { prefix: /c }, backend: api, tenant: acne }
              - { name: d, match: { prefix: /d }, backends: [{ name: api, weight: 1 }, { name: web, weight: 1 }] }
            """);

        Assert.Equal(
            [
                "gw.yaml:4:44: tenants.acme.jwt: no jwt_providers entry named 'idp'",
                "gw.yaml:8:48: routes[0].backend: no backend named 'apx'",
                "gw.yaml:9:59: routes[1].auth: no policy named 'strict'",
                "gw.yaml:10:61: routes[2].tenant: no tenant named 'acne'",
                "gw.yaml:11:84: routes[3].backends[1].name: no backend named 'web'",
            ],
            errors.Select(e => e.ToString().Split('\n')[0]));
        Assert.Equal("did you mean 'api'?", errors[1].Hint);
        Assert.Equal("did you mean 'acme'?", errors[3].Hint);
        Assert.All(errors, e => Assert.False(string.IsNullOrEmpty(e.Hint), e.ToString()));
    }

    [Fact]
    public void ConflictingRoutes_AreErrors()
    {
        var errors = GatewayFiles.Errors(GatewayFiles.Minimal.Replace("  - { name: api, match: { prefix: / }, backend: api }", """
              - { name: orders, match: { prefix: /orders }, backend: api }
              - { name: items, match: { prefix: /orders/items }, backend: api }
              - { name: orders2, match: { prefix: /orders/ }, backend: api }
              - { name: get, match: { path: /x, methods: [GET] }, backend: api }
              - { name: get2, match: { path: /x, methods: [GET, POST] }, backend: api }
              - { name: other, match: { prefix: /ordersx }, backend: api }
            """, StringComparison.Ordinal));

        Assert.Equal(2, errors.Count);
        Assert.Equal("routes[1].match", errors[0].Field);
        Assert.Contains("never matches: route 'orders' above it", errors[0].Problem, StringComparison.Ordinal);
        Assert.Equal("routes[2].match", errors[1].Field);
        Assert.Contains("conflicts with route 'orders'", errors[1].Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ImpossibleQuotas_AreErrors()
    {
        var errors = GatewayFiles.Errors(GatewayFiles.Minimal.Replace("  - { name: api, match: { prefix: / }, backend: api }", """
              - name: open
                match: { path: /open }
                backend: api
                auth: none
                rate_limits: [{ by: tenant, requests: 10, per: second }]
              - name: api
                match: { prefix: / }
                backend: api
                rate_limits:
                  - { by: route, requests: 0, per: second }
                  - { by: client, requests: 50, per: minute }
                  - { by: tenant, requests: 20, per: minute }
                  - { by: source, requests: 5, per: fortnight }
            quotas:
              tenant: { requests: 100, per: second }
              client: { requests: 200, per: second }
            """, StringComparison.Ordinal));

        (string Field, string Problem)[] expected =
        [
            ("routes[0].rate_limits[0].by", "a per-tenant limit needs authz"),
            ("routes[1].rate_limits[0].requests", "a quota of 0 requests can never be met"),
            ("routes[1].rate_limits", "50 per minute can never be reached: the route's per-tenant limit is 20 per minute"),
            ("routes[1].rate_limits[3].per", "unknown unit 'fortnight'"),
            ("quotas.client", "200 per second can never be reached: the tenant's limit is 100 per second"),
        ];
        Assert.Equal(expected.Length, errors.Count);
        foreach (var ((field, problem), error) in expected.Zip(errors))
        {
            Assert.Equal(field, error.Field);
            Assert.StartsWith(problem, error.Problem, StringComparison.Ordinal);
            Assert.False(string.IsNullOrEmpty(error.Hint), error.ToString());
        }
    }

    [Fact]
    public void BadValues_AreErrors()
    {
        var errors = GatewayFiles.Errors("""
            services:
              authz: { address: authz, timeout: 5 minutes, failure_mode: maybe }
            backends:
              api: { urls: [http://127.0.0.1:9999/v1, ftp://x:1] }
            tenants:
              acme: { hosts: [api.acme.example], api_keys: true }
            policies:
              default: { credentials: [jtw] }
            routes:
              - { name: API, match: { prefix: orders, regex: "(" }, backend: api }
            """);

        Assert.Equal(
            [
                "services.authz.address", "services.authz.timeout", "services.authz.failure_mode", "backends.api.urls", "backends.api.urls",
                "tenants.acme.api_keys", "policies.default.credentials", "routes[0].name", "routes[0].match",
            ],
            errors.Select(e => e.Field));
        Assert.Equal("did you mean 'jwt'?", errors[6].Hint);
        Assert.All(errors, e => Assert.False(string.IsNullOrEmpty(e.Hint), e.ToString()));
    }

    /// <summary>Values .NET or the loader took but Envoy refuses, which would fail the whole listener (or bootstrap) update.</summary>
    [Theory]
    [InlineData("{ regex: \"^/(?=v1)[a-z0-9/]+$\" }", "routes[0].match.regex", "look-around is not RE2 syntax")]
    [InlineData("{ regex: \"^/(?<!x)y$\" }", "routes[0].match.regex", "look-around is not RE2 syntax")]
    [InlineData("{ regex: \"^/(a)\\\\1$\" }", "routes[0].match.regex", "back-references are not RE2 syntax")]
    [InlineData("{ regex: \"^/(?>a+)$\" }", "routes[0].match.regex", "atomic groups")]
    [InlineData("{ regex: \"^/x\\\\Z\" }", "routes[0].match.regex", "\\Z is not RE2 syntax")]
    [InlineData("{ regex: \"(?x)^/ x $\" }", "routes[0].match.regex", "the flags (?x)")]
    [InlineData("{ regex: \"^/caf\\\\u00e9$\" }", "routes[0].match.regex", "\\u is not RE2 syntax")]
    [InlineData("{ regex: \"^/x\\\\cJ$\" }", "routes[0].match.regex", "\\c is not RE2 syntax")]
    [InlineData("{ regex: \"^/[\\\\b]$\" }", "routes[0].match.regex", "\\b is not RE2 syntax")]
    [InlineData("{ prefix: \"/orders?debug=1\" }", "routes[0].match.prefix", "contains '?' or '#'")]
    [InlineData("{ path: \"/page#top\" }", "routes[0].match.path", "contains '?' or '#'")]
    public void WhatEnvoyRefusesInAMatch_IsAnError(string match, string field, string problem)
    {
        var errors = GatewayFiles.Errors(GatewayFiles.Minimal.Replace("match: { prefix: / }", "match: " + match, StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal(field, error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
        Assert.Equal(8, error.Line);
    }

    [Theory]
    [InlineData("^/v[0-9]+/(orders|items)/[^/]+$")]
    [InlineData("(?i)^/API/(?:v1|v2)/[]a-z-]+\\.json$")]
    [InlineData("^/(?<version>v[0-9])/[^?]*$")]
    [InlineData("^/(?P<version>v[0-9])/[^?]*$")]
    [InlineData("^/[[:alpha:]]+/\\d+\\b\\x41\\p{L}$")]
    [InlineData("^/a\\(b\\)[\\\\(]$")]
    public void Re2Regexes_AreValid(string regex)
    {
        Assert.Empty(GatewayFiles.Errors(GatewayFiles.Minimal.Replace("match: { prefix: / }", $"match: {{ regex: '{regex}' }}", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("^/\\pL+$")]
    [InlineData("^/\\PN\\pZ$")]
    [InlineData("^/\\p{Greek}+/\\P{Han}$")]
    [InlineData("^/\\p{^Latin}[\\p{Cyrillic}\\d-]+\\p{Any}$")]
    [InlineData("^/\\Q/a.b(c)?[d]\\E/[a-z]+$")]
    [InlineData("^/v1/\\Q*.json")]
    [InlineData("^/\\x{41}\\x{e9}\\x{263A}\\x{1F600}[\\x{41}-\\x{5A}\\x{1F600}-\\x{1F64F}]+$")]
    [InlineData("(?U)^/a+(?i-U:b+)$")]
    [InlineData("^/[[:alpha:]\\pL]+/\\C$")]
    [InlineData("^/[[:word:][:^digit:]-]+$")]
    public void Re2OnlyForms_AreValid(string regex)
    {
        Assert.Empty(GatewayFiles.Errors(GatewayFiles.Minimal.Replace("match: { prefix: / }", $"match: {{ regex: '{regex}' }}", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("^/\\p{Klingon}$", "\\p{Klingon} is not a Unicode class RE2 knows")]
    [InlineData("^/\\p{IsGreek}$", "\\p{IsGreek} is not a Unicode class RE2 knows")]   // a .NET block name
    [InlineData("^/\\p{Greek$", "\\p{ without a closing }")]
    [InlineData("^/\\x{110000}$", "\\x{110000} is not a code point")]
    [InlineData("^/\\x{}$", "\\x{} needs hex digits")]
    [InlineData("^/\\x{4G}$", "\\x{4G} needs hex digits")]
    [InlineData("^/a\\E$", "\\E without \\Q")]
    [InlineData("^/[\\Qa\\E]$", "\\Q is not RE2 syntax")]
    [InlineData("^/[[:alpha:]\\Q]$", "\\Q is not RE2 syntax")]
    [InlineData("^/[\\x{5A}-\\x{41}]$", "range in reverse order")]
    [InlineData("^/[[:letters:]]$", "[:letters:] is not a POSIX class RE2 knows")]
    [InlineData("(?i-)^/a$", "the flags (?i-) are not RE2 syntax: one '-', followed by the flags it turns off")]
    [InlineData("(?-:^/a)$", "the flags (?-) are not RE2 syntax")]
    [InlineData("(?i-m-s)^/a$", "the flags (?i-m-s) are not RE2 syntax")]
    [InlineData("(?iU-)^/a$", "the flags (?iU-) are not RE2 syntax")]
    [InlineData("(?U-:^/a)$", "the flags (?U-) are not RE2 syntax")]
    public void Re2OnlyForms_ThatRe2Refuses_AreErrors(string regex, string problem)
    {
        var error = Assert.Single(GatewayFiles.Errors(GatewayFiles.Minimal.Replace("match: { prefix: / }", $"match: {{ regex: '{regex}' }}", StringComparison.Ordinal)));

        Assert.Equal(("routes[0].match.regex", 8), (error.Field, error.Line));
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("retriable-status-codes", "no status codes")]
    [InlineData("retriable-headers", "no response headers")]
    public void ARetryConditionWhoseListTheFileCannotGive_RetriesNothing_AndIsAnError(string condition, string problem)
    {
        var errors = GatewayFiles.Errors(GatewayFiles.Minimal.Replace("backend: api }", $"backend: api, retries: {{ attempts: 2, on: [gateway-error, {condition}] }} }}", StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal(("routes[0].retries.on", 8, 98), (error.Field, error.Line, error.Column));
        Assert.StartsWith($"'{condition}' retries nothing", error.Problem, StringComparison.Ordinal);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
        Assert.Contains("5xx", error.Hint, StringComparison.Ordinal);
        Assert.Empty(GatewayFiles.Errors(GatewayFiles.Minimal.Replace("backend: api }", "backend: api, retries: { attempts: 2, on: [gateway-error, retriable-4xx] } }", StringComparison.Ordinal)));
    }

    [Fact]
    public void ARouteMatchingTheHostHeader_IsAnError_PointingToHosts()
    {
        var errors = GatewayFiles.Errors(GatewayFiles.Minimal.Replace("match: { prefix: / }", "match: { prefix: /, headers: { host: api.acme.example } }", StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal(("routes[0].match.headers", 8), (error.Field, error.Line));
        Assert.Contains("'host'", error.Problem, StringComparison.Ordinal);
        Assert.Contains(":authority", error.Problem, StringComparison.Ordinal);
        Assert.Contains("hosts: [api.acme.example]", error.Hint, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "x-legate-tenant")]
    [InlineData("identity_headers: { tenant: x-org, claims: { email: x-user-email } }\n", "x-user-email")]
    public void ARouteMatchingAnIdentityHeader_NeverMatches_AndIsAnError(string identity, string header)
    {
        var errors = GatewayFiles.Errors(identity + GatewayFiles.Minimal.Replace("match: { prefix: / }", $"match: {{ prefix: /, headers: {{ {header}: acme }} }}", StringComparison.Ordinal));

        var error = Assert.Single(errors);
        Assert.Equal("routes[0].match.headers", error.Field);
        Assert.Contains($"'{header}' is an identity header", error.Problem, StringComparison.Ordinal);
        Assert.Empty(GatewayFiles.Errors(identity + GatewayFiles.Minimal.Replace("match: { prefix: / }", "match: { prefix: /, headers: { x-canary: \"1\" } }", StringComparison.Ordinal)));
    }

    [Fact]
    public void AFlushIntervalEnvoyRefuses_IsAnError()
    {
        var error = Assert.Single(GatewayFiles.Errors(GatewayFiles.Minimal + "\nservices: { statsink: { flush_interval: 5m } }\n"));

        Assert.Equal(("services.statsink.flush_interval", 9), (error.Field, error.Line));
        Assert.Empty(GatewayFiles.Errors(GatewayFiles.Minimal + "\nservices: { statsink: { flush_interval: 299s } }\n"));
    }

    [Fact]
    public void APrefixOfSlashesOnly_MatchesEverything_AsSlashDoes()
    {
        var config = Legate.Gateway.Loading.GatewayLoader.Load(new Legate.Hosting.Rules.RulesFile("gw.yaml",
            GatewayFiles.Minimal.Replace("match: { prefix: / }", "match: { prefix: // }", StringComparison.Ordinal)));

        Assert.Equal("/", config.Routes[0].Match.Path);
    }

    [Theory]
    [InlineData("Acme")]
    [InlineData("lgt_")]
    [InlineData("abcdefghijklmnopq")]
    public void BadApiKeyPrefix_IsAnError_AtItsLine(string prefix)
    {
        var errors = GatewayFiles.Errors(GatewayFiles.Minimal + "\napi_keys:\n  redis: true\n  prefix: " + prefix + "\n");

        var error = Assert.Single(errors);
        Assert.Equal(("gw.yaml", 11, "api_keys.prefix"), (error.File, error.Line, error.Field));
        Assert.Contains(prefix, error.Problem, StringComparison.Ordinal);
        Assert.Contains("1 to 16 lower-case ASCII letters or digits", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryError_NamesFileLineColumnFieldAndHint_AndValidateExitsOne()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal.Replace("backend: api }", "backend: apx, timeout: 3 s }", StringComparison.Ordinal));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exitCode = Cli.Run(["validate", dir.File("gateway.yaml")], stdout, stderr);

        Assert.Equal(Cli.Invalid, exitCode);
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var errors = lines.Where(l => ErrorLine().IsMatch(l)).ToArray();
        Assert.Equal(2, errors.Length);
        Assert.Contains(errors, e => e.Contains(": routes[0].backend: no backend named 'apx'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains(": routes[0].timeout: '3 s' is not a duration", StringComparison.Ordinal));
        Assert.Equal(2, lines.Count(l => l.StartsWith("    hint: ", StringComparison.Ordinal)));
        Assert.EndsWith("2 error(s)", lines[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void WhatAuthzRefuses_IsAValidateError()
    {
        var yaml = GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme: { hosts: [api.acme.example], jwt: [idp] }", StringComparison.Ordinal) + """

            jwt_providers:
              idp: { issuer: https://idp.example, algorithms: [none], jwks_uri: https://idp.example/jwks }
            """;
        using var dir = GatewayFiles.Write(yaml);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var exitCode = Cli.Run(["validate", dir.File("gateway.yaml")], stdout, stderr);

        Assert.Equal(Cli.Invalid, exitCode);
        Assert.Contains("jwt_providers.idp", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("authz refuses it", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnOidcDiscoveryProvider_IsValid_AndReachesTheAuthzPolicyFile()
    {
        var yaml = GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme: { hosts: [api.acme.example], jwt: [idp] }", StringComparison.Ordinal) + """

            jwt_providers:
              idp: { issuer: https://idp.example, audiences: [api], algorithms: [RS256], oidc_discovery_uri: https://idp.example/.well-known/openid-configuration }
            """;
        using var dir = GatewayFiles.Write(yaml);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.True(Cli.Run(["render", dir.File("gateway.yaml"), "-o", dir.File("out"), "--envoy-dir", dir.File("out/envoy")], stdout, stderr) == Cli.Ok, stderr.ToString());

        var policies = File.ReadAllText(dir.File("out/authz/policies.yaml"));
        Assert.Contains("oidc_discovery_uri: https://idp.example/.well-known/openid-configuration", policies, StringComparison.Ordinal);
    }

    [Fact]
    public void APolicysClaims_ReachTheAuthzPolicyFile_AndAuthzsRulesApply()
    {
        var yaml = GatewayFiles.Minimal.Replace("default: { credentials: [jwt] }", "default: { credentials: [jwt], claims: { role: [admin, owner] } }", StringComparison.Ordinal);
        using var dir = GatewayFiles.Write(yaml);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.True(Cli.Run(["render", dir.File("gateway.yaml"), "-o", dir.File("out"), "--envoy-dir", dir.File("out/envoy")], stdout, stderr) == Cli.Ok, stderr.ToString());
        Assert.Contains("role:", File.ReadAllText(dir.File("out/authz/policies.yaml")), StringComparison.Ordinal);

        using var bad = GatewayFiles.Write(yaml.Replace("credentials: [jwt], claims", "credentials: [jwt, api_key], claims", StringComparison.Ordinal));
        using var badErr = new StringWriter();
        Assert.Equal(Cli.Invalid, Cli.Run(["validate", bad.File("gateway.yaml")], stdout, badErr));
        Assert.Contains("policies.default.claims: authz refuses it: claims are JWT claims", badErr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("oidc_discovery_uri: not-a-url", "jwt_providers.idp.oidc_discovery_uri: is not an absolute URL")]
    [InlineData("jwks_uri: https://idp.example/jwks, oidc_discovery_uri: https://idp.example/.well-known/openid-configuration", "jwt_providers.idp: has more than one key source")]
    public void ABadKeySource_IsAGatewayError(string source, string expected)
    {
        var yaml = GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme: { hosts: [api.acme.example], jwt: [idp] }", StringComparison.Ordinal) + $$"""

            jwt_providers:
              idp: { issuer: https://idp.example, audiences: [api], algorithms: [RS256], {{source}} }
            """;

        Assert.Contains(GatewayFiles.Errors(yaml), e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }

    /// <summary>Minimal, with tenant acme trusting provider idp, whose last line is <paramref name="field"/> (line 15, column 5).</summary>
    private static string WithProviderField(string field) =>
        GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme: { hosts: [api.acme.example], plan: free, jwt: [idp] }", StringComparison.Ordinal) + $$"""

            jwt_providers:
              idp:
                issuer: https://idp.example
                audiences: [api]
                algorithms: [RS256]
                jwks_uri: https://idp.example/jwks
                {{field}}
            """;

    [Theory]
    [InlineData("plan_claim: plan", new[] { "plan" })]
    [InlineData("plan_claim: https://acme.example/plan", new[] { "https://acme.example/plan" })]
    [InlineData("plan_claim: [app_metadata, plan]", new[] { "app_metadata", "plan" })]
    public void APlanClaim_ReachesTheAuthzPolicyFile_AsWritten_AndAuthzReadsIt(string field, string[] expected)
    {
        using var dir = GatewayFiles.Write(WithProviderField(field));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.True(Cli.Run(["render", dir.File("gateway.yaml"), "-o", dir.File("out"), "--envoy-dir", dir.File("out/envoy")], stdout, stderr) == Cli.Ok, stderr.ToString());

        using var loader = new Legate.Authz.Policies.AuthzPolicyLoader(TimeProvider.System);
        using var set = loader.Load(Legate.Hosting.Rules.RulesFiles.Read(dir.File("out/authz/policies.yaml")));
        Assert.Equal(expected, set.Providers.Single().Options.PlanClaim);
        Assert.Equal("free", set.Tenants["acme"].Plan);
    }

    /// <summary>
    /// A provider field written as null is absent to the gateway loader, so it must be absent to authz too: passed on
    /// as written it became the text "~" or "null" (a plan read from a claim named "null", a typ no token has) or an
    /// empty string authz refuses.
    /// </summary>
    [Theory]
    [InlineData("plan_claim: ~")]
    [InlineData("plan_claim: null")]
    [InlineData("plan_claim:")]
    [InlineData("typ: ~")]
    public void AProviderFieldWrittenAsNull_IsLeftOutOfTheAuthzPolicyFile(string field)
    {
        using var dir = GatewayFiles.Write(WithProviderField(field));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Empty(GatewayFiles.Errors(WithProviderField(field)));
        Assert.True(Cli.Run(["render", dir.File("gateway.yaml"), "-o", dir.File("out"), "--envoy-dir", dir.File("out/envoy")], stdout, stderr) == Cli.Ok, stderr.ToString());

        Assert.DoesNotContain(field.Split(':')[0], File.ReadAllText(dir.File("out/authz/policies.yaml")), StringComparison.Ordinal);
        using var loader = new Legate.Authz.Policies.AuthzPolicyLoader(TimeProvider.System);
        using var set = loader.Load(Legate.Hosting.Rules.RulesFiles.Read(dir.File("out/authz/policies.yaml")));
        Assert.Null(set.Providers.Single().Options.PlanClaim);
        Assert.Null(set.Providers.Single().Options.RequireTyp);
    }

    [Theory]
    [InlineData("plan_claim: []", 17, "names no claim")]
    [InlineData("plan_claim: [a, b, c, d, e, f, g, h, i]", 17, "names 9 nested members, more than 8")]
    [InlineData("plan_claim: [app_metadata, '']", 32, "an item is not a non-empty string")]
    [InlineData("plan_claim: {app_metadata: plan}", 17, "is a list of strings")]
    public void ABadPlanClaim_IsAGatewayError_AtItsLine_WithAHint(string field, int column, string problem)
    {
        var error = Assert.Single(GatewayFiles.Errors(WithProviderField(field)));

        Assert.Equal(("gw.yaml", 15, column, "jwt_providers.idp.plan_claim"), (error.File, error.Line, error.Column, error.Field));
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
        Assert.Contains("[app_metadata, plan]", error.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void APlanClaimNameOver256Characters_IsAGatewayError()
    {
        var error = Assert.Single(GatewayFiles.Errors(WithProviderField("plan_claim: " + new string('p', 257))));

        Assert.Equal(("jwt_providers.idp.plan_claim", 15), (error.Field, error.Line));
        Assert.Contains("longer than 256 characters", error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void AMisspeltPlanClaim_IsAnUnknownField_WithASuggestion()
    {
        var error = Assert.Single(GatewayFiles.Errors(WithProviderField("plan_clam: plan")));

        Assert.Equal(("jwt_providers.idp.plan_clam", 15, 5), (error.Field, error.Line, error.Column));
        Assert.Equal("did you mean 'plan_claim'?", error.Hint);
    }

    [Fact]
    public void WhatAuthzRefuses_PointsAtTheLineInTheGatewayFile()
    {
        var yaml = GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme:\n    hosts: [api.acme.example]\n    tokens_from: [bearer, header:authorization]", StringComparison.Ordinal);
        using var dir = GatewayFiles.Write(yaml);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(Cli.Invalid, Cli.Run(["validate", dir.File("gateway.yaml")], stdout, stderr));

        Assert.Contains("gateway.yaml:6:18: tenants.acme.tokens_from: authz refuses it: a token source is bearer, header:NAME", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ADirectory_IsAnError_SayingSo()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(Cli.Invalid, Cli.Run(["validate", dir.Path], stdout, stderr));
        Assert.Contains($"{dir.Path}: is a directory, not a gateway file", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFile_IsAnError()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(Cli.Invalid, Cli.Run(["validate", "/nonexistent/gateway.yaml"], stdout, stderr));
        Assert.Contains("/nonexistent/gateway.yaml: no such file", stderr.ToString(), StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^[^:]+:\d+:\d+: [a-z_\[\]0-9.]+: ")]
    private static partial Regex ErrorLine();
}
