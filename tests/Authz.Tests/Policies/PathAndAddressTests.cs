using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using Legate.Authz.Jwt;
using Legate.Authz.Policies;
using Legate.Hosting.Rules;
using Legate.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Prometheus;
using GrpcStatusCode = Grpc.Core.StatusCode;

namespace Legate.Authz.Tests.Policies;

/// <summary>Path rules (E3), client-address rules (E5), bodies (E6), Envoy's '!' substitution (E7) and the catch-all deny (E1).</summary>
public sealed class PathAndAddressTests
{
    private static string Policy(string clientAddress = "source") => $$"""
        tenants:
          acme:
            hosts: [api.acme.example]
            jwt: [idp]
            api_keys: true
            routes:
              /admin: admin
              /admin/public: default
              /internal: internal
        jwt_providers:
          idp:
            issuer: {{Jwt.JwtTestKit.Issuer}}
            audiences: [{{Jwt.JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks: '{{AuthzTestHost.Jwks}}'
        policies:
          default:
            credentials: [api_key, jwt]
          admin:
            credentials: [jwt]
          internal:
            credentials: [api_key]
            client_cidrs: [10.0.0.0/8, "2001:db8::/32"]
        api_keys:
          file: keys.yaml
        client_address: {{clientAddress}}
        """;

    private static CheckRequest WithKey(string path, Dictionary<string, string>? headers = null, string? source = null)
    {
        var all = new Dictionary<string, string>(headers ?? []) { ["x-api-key"] = AuthzTestHost.AcmeKey.Key };
        var request = AuthzTestHost.Request(path: path, headers: all);
        if (source is not null)
            request.Attributes.Source = new AttributeContext.Types.Peer { Address = new Address { SocketAddress = new SocketAddress { Address = source, PortValue = 40000 } } };
        return request;
    }

    [Theory]
    [InlineData("/public/../admin")]
    [InlineData("/admin%2Fsecret")]
    [InlineData("/admin%2fsecret")]
    [InlineData("/%2e%2e/admin")]
    [InlineData("/x/%2E/admin")]
    [InlineData("/admin;x=1")]
    [InlineData("/admin\\secret")]
    [InlineData("/admin%5csecret")]
    [InlineData("/admin%zz")]
    [InlineData("admin")]
    public async Task E3_AmbiguousPaths_AreRefused_400(string path)
    {
        using var host = new AuthzTestHost(Policy());

        var response = await host.CheckAsync(WithKey(path));

        Assert.Equal((int)GrpcStatusCode.InvalidArgument, response.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.BadRequest, response.DeniedResponse.Status.Code);
    }

    [Theory]
    [InlineData("/admin")]
    [InlineData("//admin")]
    [InlineData("/Admin")]
    [InlineData("/ADMIN/users?page=2")]
    [InlineData("/admin/")]
    [InlineData("/%61dmin")]
    [InlineData("/admin/public/../x")]
    public async Task E3_SpellingsOfAdmin_GetTheAdminPolicy(string path)
    {
        // The admin policy accepts JWTs only: an API key there is a 401, and never the default policy's allow.
        using var host = new AuthzTestHost(Policy());

        var response = await host.CheckAsync(WithKey(path));

        Assert.NotEqual(0, response.Status.Code);
    }

    [Theory]
    [InlineData("/administrator", "default")]
    [InlineData("/orders", "default")]
    [InlineData("/admin/public/docs", "default")]
    public async Task E3_PrefixesMatchWholeSegments_LongestFirst(string path, string policy)
    {
        using var host = new AuthzTestHost(Policy());

        var response = await host.CheckAsync(WithKey(path));

        Assert.Equal(0, response.Status.Code);
        Assert.Equal(policy, response.DynamicMetadata.Fields["policy"].StringValue);
    }

    [Fact]
    public async Task EnvoysPerRoutePolicy_WinsOverPathRules()
    {
        using var host = new AuthzTestHost(Policy());
        var request = WithKey("/admin/x");
        request.Attributes.ContextExtensions["policy"] = "default";

        Assert.Equal(0, (await host.CheckAsync(request)).Status.Code);
    }

    [Theory]
    [InlineData("10.1.2.3", null, 0)]
    [InlineData("::ffff:10.1.2.3", null, 0)]
    [InlineData("2001:db8::7", null, 0)]
    [InlineData("203.0.113.9", null, 7)]
    [InlineData("203.0.113.9", "10.0.0.1", 7)] // E5: a client-written x-forwarded-for does not count with client_address: source
    [InlineData(null, null, 7)]
    public async Task E5_ClientCidrs_OnTheTcpPeer(string? source, string? forwardedFor, int status)
    {
        using var host = new AuthzTestHost(Policy());
        var headers = forwardedFor is null ? null : new Dictionary<string, string> { ["x-forwarded-for"] = forwardedFor };

        var response = await host.CheckAsync(WithKey("/internal/jobs", headers, source));

        Assert.Equal(status, response.Status.Code);
    }

    [Theory]
    [InlineData("10.0.0.1,203.0.113.9,192.168.1.1", 7)] // spoofed left-most entry; the client is the one before our proxy
    [InlineData("203.0.113.1, 10.0.0.5, 192.168.1.1", 0)]
    [InlineData("192.168.1.1", 7)]                       // shorter than the trusted chain: no client address
    [InlineData("not-an-ip, 192.168.1.1", 7)]
    public async Task E5_ClientCidrs_OnForwardedFor_WithTrustedHops(string forwardedFor, int status)
    {
        using var host = new AuthzTestHost(Policy("{from: x-forwarded-for, trusted_hops: 1}"));

        var response = await host.CheckAsync(WithKey("/internal/jobs", new() { ["x-forwarded-for"] = forwardedFor }, "10.9.9.9"));

        Assert.Equal(status, response.Status.Code);
    }

    [Fact]
    public async Task E5_ClientCidrs_OnEnvoyExternalAddress()
    {
        using var host = new AuthzTestHost(Policy("x-envoy-external-address"));

        var inside = await host.CheckAsync(WithKey("/internal/jobs", new() { ["x-envoy-external-address"] = "10.3.3.3" }, "203.0.113.9"));
        var outside = await host.CheckAsync(WithKey("/internal/jobs", new() { ["x-envoy-external-address"] = "203.0.113.9" }, "10.3.3.3"));

        Assert.Equal(0, inside.Status.Code);
        Assert.Equal((int)GrpcStatusCode.PermissionDenied, outside.Status.Code);
        Assert.Equal("{\"error\":\"forbidden\",\"reason\":\"client address not allowed\"}", outside.DeniedResponse.Body);
    }

    [Fact]
    public async Task E6_APartialBody_NeverCarriesACredential()
    {
        // No decision reads the body: a key in a (partial) body is no credential, whatever Envoy buffered.
        using var host = new AuthzTestHost(Policy());
        var request = AuthzTestHost.Request(path: "/orders", method: "POST", headers: new Dictionary<string, string> { ["x-envoy-auth-partial-body"] = "true" });
        request.Attributes.Request.Http.Body = "x-api-key=" + AuthzTestHost.AcmeKey.Key + "&api_key=" + AuthzTestHost.AcmeKey.Key;

        var response = await host.CheckAsync(request);

        Assert.Equal((int)GrpcStatusCode.Unauthenticated, response.Status.Code);
    }

    [Fact]
    public async Task E7_NonUtf8SubstitutedWithBang_IsNeverAFuzzyMatch()
    {
        using var host = new AuthzTestHost(Policy());
        var token = AuthzTestHost.Token();
        var key = AuthzTestHost.AcmeKey.Key;

        var badToken = await host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token[..^1] + "!" }));
        var badKey = await host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = key[..10] + "!" + key[11..] }));

        Assert.Equal((int)GrpcStatusCode.Unauthenticated, badToken.Status.Code);
        Assert.Equal((int)GrpcStatusCode.Unauthenticated, badKey.Status.Code);
    }

    [Fact]
    public async Task E1_CatchAll_AnInternalFailureIsAnExplicitDeny()
    {
        // Rules never loaded: reading them throws inside Check. Envoy must still get a non-OK status and a body.
        var registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(registry);
        using var loader = new AuthzPolicyLoader(TimeProvider.System);
        using var rules = new RulesProvider<AuthzPolicySet>("authz", new RulesOptions { Path = "/nonexistent" }, loader, TimeProvider.System, NullLogger.Instance, factory);
        var decider = new AuthorizationDecider(rules, new JwtValidator(TimeProvider.System), new AuthzMetrics(factory), NullLogger<AuthorizationDecider>.Instance, TimeProvider.System);

        var response = await decider.CheckAsync(WithKey("/orders"), TestContext.Current.CancellationToken);

        Assert.Equal((int)GrpcStatusCode.PermissionDenied, response.Status.Code);
        Assert.Equal(CheckResponse.HttpResponseOneofCase.DeniedResponse, response.HttpResponseCase);
        Assert.Equal("{\"error\":\"forbidden\",\"reason\":\"internal error\"}", response.DeniedResponse.Body);
    }

    [Fact]
    public async Task E1_InternalFailures_AreLoggedAtMostOncePerTenSeconds_WithTheChecksFailedSinceTheLastLine()
    {
        // Every request fails the same way while the rules are unreadable: the log gets a count, not a line per request.
        var registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(registry);
        var time = new FakeTimeProvider();
        var logger = new FakeLogger<AuthorizationDecider>();
        using var loader = new AuthzPolicyLoader(TimeProvider.System);
        using var rules = new RulesProvider<AuthzPolicySet>("authz", new RulesOptions { Path = "/nonexistent" }, loader, TimeProvider.System, NullLogger.Instance, factory);
        var decider = new AuthorizationDecider(rules, new JwtValidator(time), new AuthzMetrics(factory), logger, time);
        async Task FailAsync(int checks)
        {
            for (var i = 0; i < checks; i++)
                Assert.Equal((int)GrpcStatusCode.PermissionDenied, (await decider.CheckAsync(WithKey("/orders"), TestContext.Current.CancellationToken)).Status.Code);
        }
        List<FakeLogRecord> Lines() => [.. logger.Collector.GetSnapshot().Where(r => r.Id.Id == 4101)];

        await ThrottledLogAssert.OncePerTenSecondsAsync(FailAsync, time.Advance, () => [.. Lines().Select(r => r.Message)], n => $"{n} authz check(s) failed internally");
        Assert.StartsWith("60 authz check(s) failed internally", Lines()[1].Message, StringComparison.Ordinal);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Error, Lines()[1].Level);
        Assert.Equal("LogInternalError", Lines()[1].Id.Name);
    }

    [Theory]
    [InlineData("routes:\n      admin: admin", "is not a plain path prefix")]
    [InlineData("routes:\n      /admin/: admin", "is not a plain path prefix")]
    [InlineData("routes:\n      /a/../b: admin", "is not a plain path prefix")]
    [InlineData("routes:\n      /admin: nope", "no policies entry named 'nope'")]
    [InlineData("routes:\n      /Admin: admin\n      /admin: admin", "listed twice")]
    public void BadRoutes_AreLoadErrors(string routes, string expected)
    {
        var policy = Policy().Replace("routes:\n      /admin: admin\n      /admin/public: default\n      /internal: internal", routes, StringComparison.Ordinal);

        Assert.Contains(expected, AuthzTestHost.LoadError(policy)?.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("client_cidrs: [10.0.0.0/33]", "is not a network in CIDR notation")]
    [InlineData("client_cidrs: [everyone]", "is not a network in CIDR notation")]
    [InlineData("client_cidrs: []", "is empty")]
    public void BadCidrs_AreLoadErrors(string cidrs, string expected)
    {
        var policy = Policy().Replace("client_cidrs: [10.0.0.0/8, \"2001:db8::/32\"]", cidrs, StringComparison.Ordinal);

        Assert.Contains(expected, AuthzTestHost.LoadError(policy)?.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("client_address: proxy-protocol", "is not source, x-envoy-external-address or x-forwarded-for")]
    [InlineData("client_address: {from: source, trusted_hops: 2}", "applies to x-forwarded-for only")]
    public void BadClientAddress_IsALoadError(string line, string expected)
    {
        var policy = Policy().Replace("client_address: source", line, StringComparison.Ordinal);

        Assert.Contains(expected, AuthzTestHost.LoadError(policy)?.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/a//b///c", "/a/b/c")]
    [InlineData("/A/%7euser/%41", "/a/~user/a")]
    [InlineData("/files/my%20doc", "/files/my%20doc")]
    [InlineData("/x?y=/../z", "/x")]
    [InlineData("/a/.b/..c", "/a/.b/..c")]
    [InlineData("/a/./b", null)]
    [InlineData("/a/..", null)]
    [InlineData("/a/%2E%2e/b", null)]
    [InlineData("/caf\u00e9", null)]
    [InlineData("/a%00b", null)]
    [InlineData("", null)]
    public void RequestPath_Normalize(string raw, string? expected) => Assert.Equal(expected, RequestPath.Normalize(raw));
}
