using Envoy.Service.Auth.V3;
using Legate.Authz.Policies;
using Legate.Authz.Tests.Jwt;
using Legate.Hosting.Rules;
using GrpcStatusCode = Grpc.Core.StatusCode;

namespace Legate.Authz.Tests.Policies;

/// <summary><c>tokens_from</c>: JWTs in a named header, a query parameter or a cookie, per provider or per tenant, and stripped from there.</summary>
public sealed class TokenSourceTests
{
    private static string Policy(string providerFrom = "", string acmeFrom = "", bool strip = true) => $$"""
        tenants:
          acme:
            hosts: [api.acme.example]
            jwt: [idp]
            api_keys: true
        {{acmeFrom}}
          globex:
            hosts: [api.globex.example]
            jwt: [idp]
        jwt_providers:
          idp:
            issuer: {{JwtTestKit.Issuer}}
            audiences: [{{JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks: '{{AuthzTestHost.Jwks}}'
        {{providerFrom}}
        policies:
          default:
            credentials: [jwt, api_key]
        api_keys:
          file: keys.yaml
          query: api_key
        strip_authorization: {{(strip ? "true" : "false")}}
        """;

    private const string ProviderFrom = "    tokens_from: [bearer, header:x-id-token, query:access_token, cookie:session]";

    private static CheckRequest Request(string host = "api.acme.example", string path = "/orders", Dictionary<string, string>? headers = null) =>
        AuthzTestHost.Request(host: host, path: path, headers: headers);

    [Fact]
    public async Task TokenInANamedHeader_IsAccepted_AndRemoved()
    {
        using var host = new AuthzTestHost(Policy(ProviderFrom));

        var response = await host.CheckAsync(Request(headers: new() { ["x-id-token"] = AuthzTestHost.Token() }));

        Assert.Equal(0, response.Status.Code);
        Assert.Contains("x-id-token", response.OkResponse.HeadersToRemove);
        Assert.Contains("authorization", response.OkResponse.HeadersToRemove);
        Assert.Contains("access_token", response.OkResponse.QueryParametersToRemove);
    }

    [Fact]
    public async Task TokenInAQueryParameter_IsAccepted_AndRemovedFromTheQuery()
    {
        using var host = new AuthzTestHost(Policy(ProviderFrom));

        var response = await host.CheckAsync(Request(path: "/orders?page=2&access_token=" + AuthzTestHost.Token()));

        Assert.Equal(0, response.Status.Code);
        Assert.Contains("access_token", response.OkResponse.QueryParametersToRemove);
    }

    [Fact]
    public async Task TokenInACookie_IsAccepted_AndOnlyThatCookieIsRemoved()
    {
        using var host = new AuthzTestHost(Policy(ProviderFrom));

        var response = await host.CheckAsync(Request(headers: new() { ["cookie"] = $"theme=dark; session={AuthzTestHost.Token()}; lang=en" }));

        Assert.Equal(0, response.Status.Code);
        var cookie = Assert.Single(response.OkResponse.Headers, h => h.Header.Key == "cookie");
        Assert.Equal("theme=dark; lang=en", cookie.Header.Value);
        Assert.Equal(Envoy.Config.Core.V3.HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd, cookie.AppendAction);
        Assert.DoesNotContain("cookie", response.OkResponse.HeadersToRemove);
    }

    [Theory]
    [InlineData("theme=dark; a={0}; lang=en; b={0}", "theme=dark; lang=en")]
    [InlineData("b={0}; a={0}", null)]
    public async Task TwoCookieSources_AreStrippedTogether_InOneRewrite(string cookies, string? expected)
    {
        using var host = new AuthzTestHost(Policy(acmeFrom: "    tokens_from: [cookie:a, cookie:b]"));

        var response = await host.CheckAsync(Request(headers: new() { ["cookie"] = string.Format(System.Globalization.CultureInfo.InvariantCulture, cookies, AuthzTestHost.Token()) }));

        Assert.Equal(0, response.Status.Code);
        var rewrites = response.OkResponse.Headers.Where(h => h.Header.Key == "cookie").Select(h => h.Header.Value).ToArray();
        if (expected is null)
        {
            Assert.Empty(rewrites);
            Assert.Contains("cookie", response.OkResponse.HeadersToRemove);
        }
        else
        {
            Assert.Equal([expected], rewrites);
            Assert.DoesNotContain("cookie", response.OkResponse.HeadersToRemove);
        }
    }

    [Fact]
    public async Task TheOnlyCookieBeingTheToken_RemovesTheCookieHeader()
    {
        using var host = new AuthzTestHost(Policy(ProviderFrom));

        var response = await host.CheckAsync(Request(headers: new() { ["cookie"] = "session=" + AuthzTestHost.Token() }));

        Assert.Equal(0, response.Status.Code);
        Assert.Contains("cookie", response.OkResponse.HeadersToRemove);
        Assert.DoesNotContain(response.OkResponse.Headers, h => h.Header.Key == "cookie");
    }

    [Fact]
    public async Task WithoutStripping_TheTokenStaysWhereItWas()
    {
        using var host = new AuthzTestHost(Policy(ProviderFrom, strip: false));

        var response = await host.CheckAsync(Request(headers: new() { ["x-id-token"] = AuthzTestHost.Token() }));

        Assert.Equal(0, response.Status.Code);
        Assert.DoesNotContain("x-id-token", response.OkResponse.HeadersToRemove);
    }

    [Fact]
    public async Task J24_DifferentTokensInTwoConfiguredPlaces_401_NeverFirstWins()
    {
        using var host = new AuthzTestHost(Policy(ProviderFrom));

        var response = await host.CheckAsync(Request(path: "/orders?access_token=" + AuthzTestHost.Token(c => c["sub"] = "mallory"),
            headers: new() { ["x-id-token"] = AuthzTestHost.Token() }));

        Assert.Equal((int)GrpcStatusCode.Unauthenticated, response.Status.Code);
    }

    [Fact]
    public async Task PlacesNotConfigured_AreNotLookedAt()
    {
        // Default: Bearer only. A token in a header or query the policy does not name is no credential at all.
        using var host = new AuthzTestHost(Policy());

        var header = await host.CheckAsync(Request(headers: new() { ["x-id-token"] = AuthzTestHost.Token() }));
        var query = await host.CheckAsync(Request(path: "/orders?access_token=" + AuthzTestHost.Token()));

        Assert.Equal((int)GrpcStatusCode.Unauthenticated, header.Status.Code);
        Assert.Equal((int)GrpcStatusCode.Unauthenticated, query.Status.Code);
    }

    [Fact]
    public async Task TenantTokensFrom_OverridesTheProviders()
    {
        // acme reads tokens only from its cookie; globex inherits the provider's list (which includes Bearer).
        using var host = new AuthzTestHost(Policy(ProviderFrom, "    tokens_from: [cookie:acme_session]"));
        var bearer = new Dictionary<string, string> { ["authorization"] = "Bearer " + AuthzTestHost.Token() };

        var acmeBearer = await host.CheckAsync(Request(headers: bearer));
        var acmeCookie = await host.CheckAsync(Request(headers: new() { ["cookie"] = "acme_session=" + AuthzTestHost.Token() }));
        var globexBearer = await host.CheckAsync(Request(host: "api.globex.example", headers: bearer));

        Assert.Equal((int)GrpcStatusCode.Unauthenticated, acmeBearer.Status.Code);
        Assert.Equal(0, acmeCookie.Status.Code);
        Assert.Equal(0, globexBearer.Status.Code);
    }

    [Fact]
    public async Task MalformedTokenInAConfiguredHeader_401()
    {
        using var host = new AuthzTestHost(Policy(ProviderFrom));

        var response = await host.CheckAsync(Request(headers: new() { ["x-id-token"] = "not a token!" }));

        Assert.Equal((int)GrpcStatusCode.Unauthenticated, response.Status.Code);
    }

    [Theory]
    [InlineData("    tokens_from: [smoke-signal]", "jwt_providers.idp.tokens_from: a token source is bearer")]
    [InlineData("    tokens_from: [header:Authorization]", "jwt_providers.idp.tokens_from: a token source is bearer")]
    [InlineData("    tokens_from: [header:x-api-key]", "'x-api-key' is where API keys are read")]
    [InlineData("    tokens_from: [query:api_key]", "'api_key' is where API keys are read")]
    [InlineData("    tokens_from: []", "lists at least one place")]
    [InlineData("    tokens_from: [header:x-legate-subject]", "'x-legate-subject' is an identity header")]
    [InlineData("    tokens_from: [{cookie: 'a b'}]", "a token source is bearer")]
    public void BadTokenSources_StopStartUp_NamingTheField(string providerFrom, string expected)
    {
        var error = AuthzTestHost.LoadError(Policy(providerFrom));

        Assert.NotNull(error);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a=1; session=t; b=2", "session", "a=1; b=2")]
    [InlineData("session=t", "session", "")]
    [InlineData("a=1,session=t", "session", "a=1")]
    [InlineData("a=1; sessionx=t", "session", "a=1; sessionx=t")]
    public void WithoutCookie_RemovesOnlyTheNamedCookie(string header, string name, string expected) =>
        Assert.Equal(expected, AuthorizationDecider.WithoutCookie(header, name));
}
