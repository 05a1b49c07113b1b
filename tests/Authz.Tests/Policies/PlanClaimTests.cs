using System.Text.Json;
using Envoy.Service.Auth.V3;
using Legate.Authz.Jwt;
using Legate.Authz.Policies;
using Legate.Authz.Tests.Jwt;
using Legate.Hosting.Rules;
using Legate.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Prometheus;
using GrpcStatusCode = Grpc.Core.StatusCode;
using HttpStatusCode = Envoy.Type.V3.StatusCode;

namespace Legate.Authz.Tests.Policies;

/// <summary>
/// A JWT caller's plan from a token claim (<c>jwt_providers.P.plan_claim</c>), through the service, with the providers'
/// keys from a real JWKS endpoint on 127.0.0.1: the claim's plan goes into the metadata; a token without the claim has
/// its tenant's plan; a claim that is there but is no plan is refused (403), never read as "no plan".
/// </summary>
public sealed class PlanClaimTests : IAsyncLifetime
{
    private static readonly string[] Roles = ["admin"];

    private JwksServer _jwks = null!;
    private AuthzTestHost _host = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Policy(Uri jwks) => $$"""
        tenants:
          acme:
            hosts: [api.acme.example]
            plan: free
            jwt: [idp]
            api_keys: true
          beta:
            hosts: [api.beta.example]
            jwt: [nested]
          gamma:
            hosts: [api.gamma.example]
            plan: free
            jwt: [plain]
          delta:
            hosts: [api.delta.example]
            plan: free
            jwt: [namespaced]
        jwt_providers:
          idp:
            issuer: {{JwtTestKit.Issuer}}
            audiences: [{{JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks_uri: {{jwks}}
            plan_claim: plan
          nested:
            issuer: {{JwtTestKit.Issuer}}
            audiences: [{{JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks_uri: {{jwks}}
            plan_claim: [app_metadata, plan]
          plain:
            issuer: {{JwtTestKit.Issuer}}
            audiences: [{{JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks_uri: {{jwks}}
          namespaced:
            issuer: {{JwtTestKit.Issuer}}
            audiences: [{{JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks_uri: {{jwks}}
            plan_claim: https://acme.example/plan
        policies:
          default:
            credentials: [api_key, jwt]
        api_keys:
          file: keys.yaml
        """;

    public async ValueTask InitializeAsync()
    {
        _jwks = await JwksServer.StartAsync(Ct);
        _host = new AuthzTestHost(Policy(_jwks.JwksUri));
    }

    public async ValueTask DisposeAsync()
    {
        _host.Dispose();
        await _jwks.DisposeAsync();
    }

    private Task<CheckResponse> CheckAsync(string host, string token) =>
        _host.CheckAsync(AuthzTestHost.Request(host: host, headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }));

    private async Task<string> PlanAsync(string host, Action<Dictionary<string, object?>> claims)
    {
        var response = await CheckAsync(host, AuthzTestHost.Token(claims));
        Assert.True(response.Status.Code == 0, response.DeniedResponse?.Body);
        return response.DynamicMetadata.Fields["plan"].StringValue;
    }

    private async Task AssertInvalidPlanAsync(string host, Action<Dictionary<string, object?>> claims)
    {
        var response = await CheckAsync(host, AuthzTestHost.Token(claims));
        Assert.Equal((int)GrpcStatusCode.PermissionDenied, response.Status.Code);
        Assert.Equal(HttpStatusCode.Forbidden, response.DeniedResponse.Status.Code);
        using var body = JsonDocument.Parse(response.DeniedResponse.Body);
        Assert.Equal("forbidden", body.RootElement.GetProperty("error").GetString());
        Assert.Equal("invalid plan claim", body.RootElement.GetProperty("reason").GetString());
        Assert.Empty(response.DynamicMetadata?.Fields ?? []);
    }

    private static Dictionary<string, object?> Object(string name, object? value) => new() { [name] = value };

    [Fact]
    public async Task AClaimedPlan_IsTheMetadataPlan()
    {
        Assert.Equal("gold", await PlanAsync("api.acme.example", c => c["plan"] = "gold"));
        // Any text the plan rule allows (1 to 64 characters, no control characters), as an API key record's plan.
        Assert.Equal("Gold Plan é", await PlanAsync("api.acme.example", c => c["plan"] = "Gold Plan é"));
        Assert.Equal(new string('p', 64), await PlanAsync("api.acme.example", c => c["plan"] = new string('p', 64)));
    }

    [Fact]
    public async Task WithoutTheClaim_ThePlanIsTheTenants_OrDefault()
    {
        Assert.Equal("free", await PlanAsync("api.acme.example", _ => { }));
        Assert.Equal("default", await PlanAsync("api.beta.example", _ => { }));
        Assert.Equal("default", await PlanAsync("api.beta.example", c => c["app_metadata"] = Object("tier", "gold")));
    }

    [Fact]
    public async Task AProviderWithoutPlanClaim_NeverReadsOne()
    {
        // A token cannot choose its plan unless its issuer was told to carry one: a plan claim is then just a claim.
        Assert.Equal("free", await PlanAsync("api.gamma.example", c => c["plan"] = "gold"));
        Assert.Equal("free", await PlanAsync("api.gamma.example", c => c["plan"] = 5));
    }

    [Fact]
    public async Task ANestedPlanClaim_IsFollowedThroughItsObjects()
    {
        Assert.Equal("gold", await PlanAsync("api.beta.example", c => c["app_metadata"] = new Dictionary<string, object?> { ["roles"] = Roles, ["plan"] = "gold" }));
        // The top-level "plan" is another claim for this provider.
        Assert.Equal("default", await PlanAsync("api.beta.example", c => c["plan"] = "gold"));
    }

    [Fact]
    public async Task AClaimNamedByAUrl_IsOneName_DotsAndSlashesIncluded()
    {
        Assert.Equal("gold", await PlanAsync("api.delta.example", c => c["https://acme.example/plan"] = "gold"));
        Assert.Equal("free", await PlanAsync("api.delta.example", c => c["https://acme"] = Object("example/plan", "gold")));
    }

    public static TheoryData<string> NoPlans => new(["number", "boolean", "null", "array", "object", "empty", "65 characters", "newline", "control character"]);

    private static object? NoPlan(string kind) => kind switch
    {
        "number" => 3,
        "boolean" => true,
        "null" => null,
        "array" => new[] { "gold" },
        "object" => Object("name", "gold"),
        "empty" => "",
        "65 characters" => new string('p', 65),
        "newline" => "gold\n",
        _ => "go\u0007ld",
    };

    [Theory]
    [MemberData(nameof(NoPlans))]
    public Task AClaimThatIsNoPlan_IsRefused_NotReadAsTheTenantsPlan(string kind)
        => AssertInvalidPlanAsync("api.acme.example", c => c["plan"] = NoPlan(kind));

    [Theory]
    [MemberData(nameof(NoPlans))]
    public Task ANestedClaimThatIsNoPlan_IsRefused(string kind)
        => AssertInvalidPlanAsync("api.beta.example", c => c["app_metadata"] = Object("plan", NoPlan(kind)));

    [Fact]
    public async Task APathThroughSomethingOtherThanAnObject_OrAMemberNamedTwice_IsRefused()
    {
        await AssertInvalidPlanAsync("api.beta.example", c => c["app_metadata"] = "gold");
        await AssertInvalidPlanAsync("api.beta.example", c => c["app_metadata"] = new[] { Object("plan", "gold") });
        await AssertInvalidPlanAsync("api.beta.example", c => c["app_metadata"] = null);

        // Parsers disagree on which of two equal names wins, so neither does.
        var payload = $$"""{"iss":"{{JwtTestKit.Issuer}}","aud":"{{JwtTestKit.Audience}}","sub":"alice","exp":{{DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds()}},"app_metadata":{"plan":"free","plan":"gold"} }""";
        var response = await CheckAsync("api.beta.example", JwtTestKit.SignRsa(JwtTestKit.Rsa1, JwtTestKit.Header("RS256", "k1"), payload));
        Assert.Equal((int)GrpcStatusCode.PermissionDenied, response.Status.Code);
        Assert.Contains("invalid plan claim", response.DeniedResponse.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RefusedPlans_AreCounted_AndARepeatedTokenKeepsItsPlan()
    {
        var token = AuthzTestHost.Token(c => c["plan"] = 7);
        for (var i = 0; i < 2; i++)
            Assert.Equal((int)GrpcStatusCode.PermissionDenied, (await CheckAsync("api.acme.example", token)).Status.Code);

        var gold = AuthzTestHost.Token(c => c["plan"] = "gold");
        for (var i = 0; i < 3; i++)
            Assert.Equal("gold", (await CheckAsync("api.acme.example", gold)).DynamicMetadata.Fields["plan"].StringValue);

        var scrape = await _host.Service.ScrapeAsync(Ct);
        Assert.Contains("legate_authz_decisions_total{tenant=\"acme\",policy=\"default\",result=\"deny\",reason=\"invalid_plan\"} 2", scrape, StringComparison.Ordinal);
        // The plan is read with the token's payload: a repeated token is not read again.
        Assert.Contains("legate_authz_token_cache_total{result=\"hit\"}", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RefusedPlans_AreLoggedAtMostOncePerTenSeconds_NamingTheProvider_NeverTheToken()
    {
        var time = new FakeTimeProvider(JwtTestKit.Now);
        var logger = new FakeLogger<AuthorizationDecider>();
        var factory = Metrics.WithCustomRegistry(Metrics.NewCustomRegistry());
        var dir = Directory.CreateTempSubdirectory("legate-plan-claim-");
        try
        {
            var path = Path.Combine(dir.FullName, "policies.yaml");
            File.WriteAllText(path, $$"""
                tenants:
                  acme: {hosts: [api.acme.example], jwt: [idp]}
                jwt_providers:
                  idp:
                    issuer: {{JwtTestKit.Issuer}}
                    audiences: [{{JwtTestKit.Audience}}]
                    algorithms: [RS256]
                    jwks: '{{AuthzTestHost.Jwks}}'
                    plan_claim: plan
                policies:
                  default: {credentials: [jwt]}
                """);
            using var loader = new AuthzPolicyLoader(time);
            using var rules = new RulesProvider<AuthzPolicySet>("authz", new RulesOptions { Path = path }, loader, time, NullLogger.Instance, factory);
            rules.LoadInitial();
            var decider = new AuthorizationDecider(rules, new JwtValidator(time), new AuthzMetrics(factory), logger, time);
            var token = JwtTestKit.Token(JwtTestKit.Now, c => c["plan"] = 42, key: JwtTestKit.Rsa1);
            var request = AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });
            async Task RefuseAsync(int checks)
            {
                for (var i = 0; i < checks; i++)
                    Assert.Equal((int)GrpcStatusCode.PermissionDenied, (await decider.CheckAsync(request, Ct)).Status.Code);
            }
            List<FakeLogRecord> Lines() => [.. logger.Collector.GetSnapshot().Where(r => r.Id.Id == 4102)];

            await ThrottledLogAssert.OncePerTenSecondsAsync(RefuseAsync, time.Advance, () => [.. Lines().Select(r => r.Message)], n => $"{n} valid token(s) were refused");
            Assert.Equal("InvalidPlanClaim", Lines()[1].Id.Name);
            Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, Lines()[1].Level);
            Assert.Contains("JWT provider 'idp' (tenant acme)", Lines()[1].Message, StringComparison.Ordinal);
            // One line stands for every kind of refusal, so it names them all, not only the wrong value.
            Assert.Contains("a path through something other than an object, or a member of its path named twice", Lines()[1].Message, StringComparison.Ordinal);
            Assert.All(Lines(), l => Assert.DoesNotContain(token.Split('.')[1], l.Message, StringComparison.Ordinal));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task AnApiKeyCaller_KeepsItsKeysPlan_WhateverTheProvidersPlanClaim()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));

        Assert.Equal(0, response.Status.Code);
        Assert.Equal("gold", response.DynamicMetadata.Fields["plan"].StringValue);
    }

    [Theory]
    [InlineData("plan_claim: []", "policies.yaml:9:17: jwt_providers.idp.plan_claim: names no claim")]
    [InlineData("plan_claim: [a, b, c, d, e, f, g, h, i]", "policies.yaml:9:17: jwt_providers.idp.plan_claim: names 9 nested members, more than 8")]
    [InlineData("plan_claim: ['']", "jwt_providers.idp.plan_claim: an item is not a non-empty string")]
    [InlineData("plan_claim: {app_metadata: plan}", "policies.yaml:9:17: jwt_providers.idp.plan_claim: is a list of strings")]
    [InlineData("plan_claims: plan", "policies.yaml:9:5: jwt_providers.idp.plan_claims: unknown field")]
    public void ABadPlanClaim_IsALoadError_NamingTheField(string field, string expected)
    {
        var policy = $$"""
            tenants:
              acme: {hosts: [api.acme.example], jwt: [idp]}
            jwt_providers:
              idp:
                issuer: {{JwtTestKit.Issuer}}
                audiences: [{{JwtTestKit.Audience}}]
                algorithms: [RS256]
                jwks: '{{AuthzTestHost.Jwks}}'
                {{field}}
            policies:
              default: {credentials: [jwt]}
            """;

        var error = AuthzTestHost.LoadError(policy);

        Assert.NotNull(error);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
