using System.Net;
using Legate.Authz.Jwt;
using Legate.Authz.Tests.Jwt;
using Legate.Authz.Policies;
using Legate.Hosting.Rules;
using Microsoft.Extensions.Time.Testing;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Policies;

/// <summary>
/// A provider's keys across policy reloads, with a real JWKS endpoint on 127.0.0.1: an unchanged key source keeps its
/// keys (no fetch, nothing lost while the issuer is down); a changed or removed one is disposed, its keys freed a minute on.
/// </summary>
public sealed class JwksAcrossReloadsTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(Now);
    private readonly string _dir = Directory.CreateTempSubdirectory("legate-jwks-reload-").FullName;
    private readonly AuthzPolicyLoader _loader;
    private JwksServer _server = null!;

    public JwksAcrossReloadsTests() => _loader = new AuthzPolicyLoader(_time);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string PolicyPath => Path.Combine(_dir, "policies.yaml");

    public async ValueTask InitializeAsync() => _server = await JwksServer.StartAsync(Ct);

    public async ValueTask DisposeAsync()
    {
        _loader.Dispose();
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>One tenant trusting provider <c>idp</c>, whose key source is <paramref name="keySource"/>.</summary>
    private AuthzPolicySet Load(string keySource, string audiences = "[orders-api]", string extraTenant = "")
    {
        File.WriteAllText(PolicyPath, $$"""
            tenants:
              acme: {hosts: [acme.example], jwt: [idp]}
            {{extraTenant}}
            jwt_providers:
              idp:
                issuer: {{Issuer}}
                audiences: {{audiences}}
                algorithms: [RS256, ES256]
                {{keySource}}
            policies:
              default: {credentials: [jwt]}
            """);
        return _loader.Load(RulesFiles.Read(PolicyPath));
    }

    private string Remote => $"jwks_uri: {_server.JwksUri}";

    private async Task<bool> AcceptsAsync(AuthzPolicySet set, string? token = null) =>
        (await new JwtValidator(_time).ValidateAsync(set.Providers.Single(), token ?? Token(Now), Ct)).Succeeded;

    [Fact]
    public async Task AReloadThatKeepsTheKeySource_KeepsItsKeys_WithoutAFetch_WhileTheIssuerIsDown()
    {
        var first = Load(Remote);
        Assert.True(await AcceptsAsync(first));
        Assert.Equal(1, _server.JwksRequests);

        _server.Status = HttpStatusCode.ServiceUnavailable;
        var second = Load(Remote, audiences: "[orders-api, admin-api]", extraTenant: "  beta: {hosts: [beta.example], jwt: [idp]}");

        Assert.Same(first.Providers.Single().Keys, second.Providers.Single().Keys);
        Assert.False(second.Providers.Single().Keys.IsDisposed);
        Assert.True(await AcceptsAsync(second));
        // The new audience applies at once: the provider is the new one, only its key source is kept.
        Assert.True(await AcceptsAsync(second, Token(Now, c => c["aud"] = "admin-api")));
        Assert.Equal(1, _server.JwksRequests);
    }

    [Fact]
    public async Task AReloadThatChangesNothingAProviderJudgesBy_KeepsItsValidatedTokensCached()
    {
        var validator = new JwtValidator(_time, new ValidatedTokenCache(_time));
        var token = Token(Now);
        var first = Load(Remote);
        Assert.True((await validator.ValidateAsync(first.Providers.Single(), token, Ct)).Succeeded);

        var second = Load(Remote, extraTenant: "  beta: {hosts: [beta.example], jwt: [idp]}");
        Assert.Same(first.Providers.Single(), second.Providers.Single());
        Assert.True((await validator.ValidateAsync(second.Providers.Single(), token, Ct)).Succeeded);
        Assert.Equal(1, validator.Verifications);

        // A new audience changes how tokens are judged: a new provider (same keys), whose tokens are verified afresh.
        var third = Load(Remote, audiences: "[orders-api, admin-api]");
        Assert.NotSame(second.Providers.Single(), third.Providers.Single());
        Assert.Same(second.Providers.Single().Keys, third.Providers.Single().Keys);
        Assert.True((await validator.ValidateAsync(third.Providers.Single(), token, Ct)).Succeeded);
        Assert.Equal(2, validator.Verifications);
    }

    [Fact]
    public async Task AReloadThatChangesThePlanClaim_MakesANewProvider_SoACachedTokenGetsItsNewPlan()
    {
        var validator = new JwtValidator(_time, new ValidatedTokenCache(_time));
        var token = Token(Now, c => { c["plan"] = "gold"; c["tier"] = "silver"; });
        var first = Load(Remote + "\n    plan_claim: plan");
        Assert.Equal("gold", (await validator.ValidateAsync(first.Providers.Single(), token, Ct)).Identity!.Plan);

        var same = Load(Remote + "\n    plan_claim: [plan]");
        Assert.Same(first.Providers.Single(), same.Providers.Single());

        var tier = Load(Remote + "\n    plan_claim: tier");
        Assert.NotSame(same.Providers.Single(), tier.Providers.Single());
        Assert.Same(same.Providers.Single().Keys, tier.Providers.Single().Keys);
        Assert.Equal("silver", (await validator.ValidateAsync(tier.Providers.Single(), token, Ct)).Identity!.Plan);

        var none = Load(Remote);
        Assert.NotSame(tier.Providers.Single(), none.Providers.Single());
        Assert.Null((await validator.ValidateAsync(none.Providers.Single(), token, Ct)).Identity!.Plan);
        Assert.Equal(3, validator.Verifications);
    }

    [Fact]
    public async Task AReloadThatChangesTheKeySource_FetchesAnew_AndFreesTheOldKeysAMinuteLater()
    {
        var first = Load(Remote);
        Assert.True(await AcceptsAsync(first));
        var oldSource = first.Providers.Single().Keys;
        var oldKey = oldSource.Current!.Keys[0];

        var second = Load($"jwks_uri: {_server.JwksUri}?v=2");

        Assert.NotSame(oldSource, second.Providers.Single().Keys);
        Assert.True(oldSource.IsDisposed);
        // A request that took the old set before the reload still validates with its keys.
        Assert.True(await AcceptsAsync(first));
        Assert.False(oldKey.IsDisposed);
        Assert.True(await AcceptsAsync(second));
        Assert.Equal(2, _server.JwksRequests);

        _time.Advance(JwksSource.RetiredKeysGrace + TimeSpan.FromSeconds(1));
        Assert.True(oldKey.IsDisposed);
        Assert.Null(oldSource.Current);
        Assert.False(second.Providers.Single().Keys.Current!.Keys[0].IsDisposed);
        Assert.True(await AcceptsAsync(second));
    }

    [Fact]
    public async Task ARefusedReload_DisposesNothingTheSetInUseHolds()
    {
        var first = Load(Remote);
        Assert.True(await AcceptsAsync(first));

        // The provider is read (and kept) before the tenant naming an unknown one refuses the whole file: the refusal
        // must dispose only what it made, never the source the set in use holds.
        File.WriteAllText(PolicyPath, File.ReadAllText(PolicyPath).Replace("jwt: [idp]", "jwt: [idp, nope]", StringComparison.Ordinal));
        Assert.Throws<RulesException>(() => _loader.Load(RulesFiles.Read(PolicyPath)));

        Assert.False(first.Providers.Single().Keys.IsDisposed);
        _time.Advance(JwksSource.RetiredKeysGrace * 2);
        Assert.True(await AcceptsAsync(first));
    }

    [Fact]
    public async Task AKeptJwksFile_IsReadAgainByTheReload()
    {
        var jwksFile = Path.Combine(_dir, "idp.jwks.json");
        File.WriteAllText(jwksFile, Jwks(Rsa(Rsa1, "k1")));
        var first = Load("jwks_file: idp.jwks.json");
        Assert.True(await AcceptsAsync(first));

        File.WriteAllText(jwksFile, Jwks(Rsa(Rsa2, "k2")));
        var second = Load("jwks_file: idp.jwks.json", audiences: "[orders-api, admin-api]");
        var source = second.Providers.Single().Keys;
        Assert.Same(first.Providers.Single().Keys, source);
        await source.RefreshAsync(Ct); // joins the read the reload started

        Assert.True(await AcceptsAsync(second, Token(Now, key: Rsa2, kid: "k2")));
        Assert.False(await AcceptsAsync(second));
    }

    [Fact]
    public async Task OidcDiscoveryUri_FindsTheKeysThroughTheDiscoveryDocument()
    {
        var set = Load($"oidc_discovery_uri: {_server.DiscoveryUri}");

        Assert.True(await AcceptsAsync(set));
        Assert.Equal(1, _server.JwksRequests);
    }

    [Fact]
    public void TwoKeySources_AreALoadError_NamingTheYamlFields()
    {
        var error = Assert.Throws<RulesException>(() => Load($"{Remote}\n    oidc_discovery_uri: {_server.DiscoveryUri}"));

        Assert.Contains("policies.yaml:", error.Message, StringComparison.Ordinal);
        Assert.Contains("exactly one key source is required: jwks_uri, oidc_discovery_uri, jwks or jwks_file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ADiscoveryUriThatIsNotAUrl_IsALoadError_AtItsLine()
    {
        var error = Assert.Throws<RulesException>(() => Load("oidc_discovery_uri: not a url"));

        Assert.Contains("policies.yaml:9:", error.Message, StringComparison.Ordinal);
        Assert.Contains("jwt_providers.idp.oidc_discovery_uri", error.Message, StringComparison.Ordinal);
    }
}
