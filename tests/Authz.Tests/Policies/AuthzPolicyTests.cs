using System.Text.Json;
using Envoy.Service.Auth.V3;
using Legate.Hosting.Rules;
using GrpcStatusCode = Grpc.Core.StatusCode;
using HttpStatusCode = Envoy.Type.V3.StatusCode;

namespace Legate.Authz.Tests.Policies;

public sealed class AuthzPolicyTests : IDisposable
{
    private readonly AuthzTestHost _host = new();

    private static string? Header(DeniedHttpResponse response, string name) => response.Headers.FirstOrDefault(h => h.Header.Key == name)?.Header.Value;

    private static string? Header(OkHttpResponse response, string name) => response.Headers.FirstOrDefault(h => h.Header.Key == name)?.Header.Value;

    private static void AssertDenied(CheckResponse response, GrpcStatusCode code, HttpStatusCode http, string error)
    {
        Assert.Equal((int)code, response.Status.Code);
        Assert.Equal(CheckResponse.HttpResponseOneofCase.DeniedResponse, response.HttpResponseCase);
        Assert.Equal(http, response.DeniedResponse.Status.Code);
        Assert.Equal("application/json", Header(response.DeniedResponse, "content-type"));
        using var body = JsonDocument.Parse(response.DeniedResponse.Body);
        Assert.Equal(error, body.RootElement.GetProperty("error").GetString());
        Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("reason").GetString()));
    }

    /// <summary>Every identity header is either set with OVERWRITE_IF_EXISTS_OR_ADD or removed, never both (E2).</summary>
    private static void AssertHeaderContract(OkHttpResponse ok)
    {
        foreach (var h in ok.Headers)
        {
            Assert.Equal(Envoy.Config.Core.V3.HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd, h.AppendAction);
            Assert.DoesNotContain(h.Header.Key, ok.HeadersToRemove);
        }
    }

    [Fact]
    public async Task ApiKey_Allows_SetsIdentityHeadersAndStringMetadata_StripsTheKey_E9()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));

        Assert.Equal(0, response.Status.Code);
        var ok = response.OkResponse;
        AssertHeaderContract(ok);
        Assert.Equal("acme", Header(ok, "x-legate-tenant"));
        Assert.Equal("billing", Header(ok, "x-legate-client"));
        Assert.Contains("x-api-key", ok.HeadersToRemove);
        Assert.Contains("x-legate-subject", ok.HeadersToRemove);
        Assert.Contains("x-legate-email", ok.HeadersToRemove);
        var metadata = response.DynamicMetadata.Fields;
        Assert.Equal("acme", metadata["tenant"].StringValue);
        Assert.Equal("billing", metadata["client"].StringValue);
        Assert.Equal("gold", metadata["plan"].StringValue);
        Assert.All(metadata.Values, v => Assert.Equal(Google.Protobuf.WellKnownTypes.Value.KindOneofCase.StringValue, v.KindCase));
    }

    [Fact]
    public async Task ApiKey_InQueryParameter_IsRemovedFromTheQuery()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(path: "/orders?api_key=" + AuthzTestHost.AcmeKey.Key));

        Assert.Equal(0, response.Status.Code);
        Assert.Contains("api_key", response.OkResponse.QueryParametersToRemove);
    }

    [Theory]
    [InlineData("api%5Fkey")]
    [InlineData("%61pi_key")]
    public async Task ApiKey_UnderAPercentEncodedParameterName_IsNoCredential_401(string name)
    {
        // Envoy's query_parameters_to_remove matches raw names: allowing this would leave the key in the upstream's path.
        var response = await _host.CheckAsync(AuthzTestHost.Request(path: $"/orders?{name}={AuthzTestHost.AcmeKey.Key}"));

        AssertDenied(response, GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized");
        Assert.DoesNotContain(AuthzTestHost.AcmeKey.Key, response.DeniedResponse.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Jwt_Allows_WithSubjectClientAndClaimHeaders()
    {
        var token = AuthzTestHost.Token(c => { c["azp"] = "web-app"; c["email"] = "alice@acme.example"; });

        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }));

        Assert.Equal(0, response.Status.Code);
        var ok = response.OkResponse;
        AssertHeaderContract(ok);
        Assert.Equal("alice", Header(ok, "x-legate-subject"));
        Assert.Equal("web-app", Header(ok, "x-legate-client"));
        Assert.Equal("alice@acme.example", Header(ok, "x-legate-email"));
        Assert.DoesNotContain("authorization", ok.HeadersToRemove);
        Assert.Equal("free", response.DynamicMetadata.Fields["plan"].StringValue);
        Assert.Equal("alice", response.DynamicMetadata.Fields["subject"].StringValue);
    }

    [Fact]
    public async Task NoCredentials_401_WithChallenge_AndNoSecretsInBody_E13()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request());

        AssertDenied(response, GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized");
        Assert.Equal("Bearer realm=\"acme\", ApiKey realm=\"acme\"", Header(response.DeniedResponse, "www-authenticate"));
    }

    [Fact]
    public async Task InvalidKey_401_BodyNeverEchoesTheKey_E13()
    {
        var forged = AuthzTestHost.AcmeKey.Key[..^8] + "AAAAAAAA";

        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = forged }));

        AssertDenied(response, GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized");
        Assert.DoesNotContain(forged, response.DeniedResponse.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(forged, response.Status.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidToken_401_BodyNeverEchoesTheToken_E13()
    {
        var token = AuthzTestHost.Token(c => c["iss"] = "https://evil.example");

        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }));

        AssertDenied(response, GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized");
        Assert.DoesNotContain("evil", response.DeniedResponse.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(token[..20], response.DeniedResponse.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingScope_403()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(policy: "orders-write",
            headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));

        AssertDenied(response, GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task WrongMethod_403()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(method: "DELETE", policy: "read-only",
            headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));

        AssertDenied(response, GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task E14_UnknownHostWithoutTenantContext_403_FailClosed()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(host: "unknown.example",
            headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));

        AssertDenied(response, GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task UnknownTenantOrPolicyInContextExtensions_403()
    {
        var key = new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key };

        AssertDenied(await _host.CheckAsync(AuthzTestHost.Request(tenant: "nobody", headers: key)), GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden");
        AssertDenied(await _host.CheckAsync(AuthzTestHost.Request(policy: "nothing", headers: key)), GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task KeyOfAnotherTenant_403()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.GlobexKey.Key }));

        AssertDenied(response, GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task E4_ContextExtensionTenantWinsOverHost()
    {
        // Host says acme, the route says globex: the acme key must not pass.
        var response = await _host.CheckAsync(AuthzTestHost.Request(tenant: "globex",
            headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));

        AssertDenied(response, GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task E2_Anonymous_OnNonePolicy_RemovesIdentityHeaders()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(policy: "public",
            headers: new Dictionary<string, string> { ["x-legate-subject"] = "admin", ["x-legate-client"] = "root" }));

        Assert.Equal(0, response.Status.Code);
        var ok = response.OkResponse;
        AssertHeaderContract(ok);
        Assert.Contains("x-legate-subject", ok.HeadersToRemove);
        Assert.Contains("x-legate-client", ok.HeadersToRemove);
        Assert.Contains("x-legate-email", ok.HeadersToRemove);
        Assert.Equal("acme", Header(ok, "x-legate-tenant"));
        Assert.Equal("anonymous", response.DynamicMetadata.Fields["client"].StringValue);
    }

    [Fact]
    public async Task E2_ClientSuppliedTenantHeader_IsOverwritten()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string>
        {
            ["x-api-key"] = AuthzTestHost.AcmeKey.Key,
            ["x-legate-tenant"] = "globex",
        }));

        Assert.Equal(0, response.Status.Code);
        var tenant = Assert.Single(response.OkResponse.Headers, h => h.Header.Key == "x-legate-tenant");
        Assert.Equal("acme", tenant.Header.Value);
        Assert.Equal(Envoy.Config.Core.V3.HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd, tenant.AppendAction);
        Assert.DoesNotContain("x-legate-tenant", response.OkResponse.HeadersToRemove);
    }

    [Fact]
    public async Task E8_ClaimWithCrlf_IsNotEmitted_ButRemoved()
    {
        var token = AuthzTestHost.Token(c => c["email"] = "alice@acme.example\r\nx-admin: true");

        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token }));

        Assert.Equal(0, response.Status.Code);
        Assert.Null(Header(response.OkResponse, "x-legate-email"));
        Assert.Contains("x-legate-email", response.OkResponse.HeadersToRemove);
    }

    [Fact]
    public async Task E4_EnvoyShapedRequest_PseudoHeadersOnly_HostNormalised()
    {
        // As Envoy sends it: lower-case names, pseudo-headers, no Host/Method/Path fields filled in.
        var http = new AttributeContext.Types.HttpRequest
        {
            Headers =
            {
                [":authority"] = "API.Acme.Example.:8443",
                [":method"] = "GET",
                [":path"] = "/orders?api_key=" + AuthzTestHost.AcmeKey.Key,
                ["user-agent"] = "curl/8",
            },
        };
        var request = new CheckRequest { Attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } } };

        var response = await _host.CheckAsync(request);

        Assert.Equal(0, response.Status.Code);
        Assert.Equal("acme", response.DynamicMetadata.Fields["tenant"].StringValue);
        Assert.Contains("api_key", response.OkResponse.QueryParametersToRemove);
    }

    [Fact]
    public async Task DuplicateKeyHeaders_JoinedWithComma_401()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string>
        {
            ["x-api-key"] = AuthzTestHost.AcmeKey.Key + "," + AuthzTestHost.AcmeKey.Key,
        }));

        AssertDenied(response, GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task KeyAndTokenTogether_401_NeverGuessed()
    {
        var response = await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string>
        {
            ["x-api-key"] = AuthzTestHost.AcmeKey.Key,
            ["authorization"] = "Bearer " + AuthzTestHost.Token(),
        }));

        AssertDenied(response, GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task E1_EmptyRequest_IsAnExplicitDeny()
    {
        var response = await _host.CheckAsync(new CheckRequest());

        Assert.NotEqual(0, response.Status.Code);
        Assert.Equal(CheckResponse.HttpResponseOneofCase.DeniedResponse, response.HttpResponseCase);
    }

    [Fact]
    public async Task KeyLookups_AndTokenCacheHits_AreCounted()
    {
        var apiKey = new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key };
        var unknownKey = new Dictionary<string, string> { ["x-api-key"] = Legate.Authz.Tests.ApiKeys.TestKeys.New("acme", "nobody", []).Key };
        var token = new Dictionary<string, string> { ["authorization"] = "Bearer " + AuthzTestHost.Token() };
        foreach (var headers in new[] { apiKey, apiKey, unknownKey, token, token })
            await _host.CheckAsync(AuthzTestHost.Request(headers: headers));

        var scrape = await _host.Service.ScrapeAsync(TestContext.Current.CancellationToken);

        Assert.Contains("legate_authz_api_key_lookups_total{store=\"file\",result=\"found\"} 2", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_authz_api_key_lookups_total{store=\"file\",result=\"unknown\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_authz_token_cache_total{result=\"miss\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_authz_token_cache_total{result=\"hit\"} 1", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Decisions_AreCounted_WithBoundedLabels()
    {
        await _host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));
        await _host.CheckAsync(AuthzTestHost.Request(host: "random-1234.example"));

        var scrape = await _host.Service.ScrapeAsync(TestContext.Current.CancellationToken);

        Assert.Contains("legate_authz_decisions_total{tenant=\"acme\",policy=\"default\",result=\"allow\",reason=\"ok\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_authz_decisions_total{tenant=\"unknown\",policy=\"unknown\",result=\"deny\",reason=\"unknown_tenant\"} 1", scrape, StringComparison.Ordinal);
        Assert.DoesNotContain("random-1234", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HotReload_SwapsPolicies()
    {
        var key = new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key };
        Assert.Equal(0, (await _host.CheckAsync(AuthzTestHost.Request(headers: key))).Status.Code);

        _host.WritePolicy(AuthzTestHost.DefaultPolicy.Replace("credentials: [api_key, jwt]\n  orders-write", "credentials: [jwt]\n  orders-write", StringComparison.Ordinal));
        _host.Rules.Reload();

        Assert.Equal(2, _host.Rules.Snapshot.Version);
        AssertDenied(await _host.CheckAsync(AuthzTestHost.Request(headers: key)), GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Fact]
    public async Task HotReload_BadFile_KeepsTheLastGoodPolicies()
    {
        var key = new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key };
        _ = _host.Client;
        _host.WritePolicy(AuthzTestHost.DefaultPolicy + "\nbogus: 1\n");

        Assert.False(_host.Rules.Reload());

        Assert.Equal(0, (await _host.CheckAsync(AuthzTestHost.Request(headers: key))).Status.Code);
    }

    [Fact]
    public async Task HotReload_AliasCycle_KeepsTheLastGoodPolicies()
    {
        var key = new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key };
        _ = _host.Client;
        var cyclic = AuthzTestHost.DefaultPolicy.Replace("  public:\n    credentials: [none]", "  public: &public\n    credentials: [none]\n    scopes: [*public]", StringComparison.Ordinal);
        Assert.NotEqual(AuthzTestHost.DefaultPolicy, cyclic);
        _host.WritePolicy(cyclic);

        Assert.False(_host.Rules.Reload());

        Assert.Equal(1, _host.Rules.Snapshot.Version);
        Assert.Equal(0, (await _host.CheckAsync(AuthzTestHost.Request(headers: key))).Status.Code);
    }

    public void Dispose() => _host.Dispose();
}

public sealed class AuthzPolicyEdgeTests
{
    // Tenant acme trusting one provider whose keys come only from jwksUri.
    private static string RemoteJwksPolicy(string jwksUri) => $$"""
        tenants:
          acme:
            hosts: [api.acme.example]
            jwt: [remote]
        jwt_providers:
          remote:
            issuer: {{Jwt.JwtTestKit.Issuer}}
            audiences: [{{Jwt.JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks_uri: {{jwksUri}}
        policies:
          default:
            credentials: [jwt]
        """;

    [Fact]
    public async Task E11_JwksUnreachable_DeniesWith503_NotAnAllow()
    {
        // Nothing listens on port 1: the provider never has keys.
        using var host = new AuthzTestHost(RemoteJwksPolicy("http://127.0.0.1:1/jwks"));

        var response = await host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + AuthzTestHost.Token() }));

        Assert.Equal((int)Grpc.Core.StatusCode.Unavailable, response.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.ServiceUnavailable, response.DeniedResponse.Status.Code);
    }

    [Fact]
    public async Task E11_ASlowJwksEndpoint_HoldsACallNoLongerThanItsDeadline()
    {
        // Envoy sends its ext_authz timeout as the call's deadline: a check waiting on a cold key fetch ends there
        // (Envoy then answers with its status_on_error), not when the fetch's own 5 s timeout would.
        await using var jwks = await Jwt.JwksServer.StartAsync(TestContext.Current.CancellationToken);
        jwks.Delay = TimeSpan.FromSeconds(20);
        using var host = new AuthzTestHost(RemoteJwksPolicy(jwks.JwksUri.ToString()));
        var request = AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + AuthzTestHost.Token() });

        var call = host.Client.CheckAsync(request, deadline: DateTime.UtcNow.AddMilliseconds(300), cancellationToken: TestContext.Current.CancellationToken);

        // The client's side of a deadline over the in-memory test server is DeadlineExceeded or, as the server ends the
        // call, an Internal error; what matters is the server's side below.
        await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => call.ResponseAsync);

        // The server stopped waiting too, at the deadline rather than when the endpoint answers (20 s on): the check is
        // counted as cancelled, not as an internal error.
        const string cancelled = "legate_authz_decisions_total{tenant=\"acme\",policy=\"default\",result=\"deny\",reason=\"cancelled\"} 1";
        string scrape = "";
        for (var i = 0; i < 100 && !scrape.Contains(cancelled, StringComparison.Ordinal); i++)
        {
            await Task.Delay(50, TestContext.Current.CancellationToken);
            scrape = await host.Service.ScrapeAsync(TestContext.Current.CancellationToken);
        }
        Assert.Contains(cancelled, scrape, StringComparison.Ordinal);
        Assert.DoesNotContain("reason=\"internal_error\"", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutKeysFile_ServiceStarts_AndKeysAreNotAccepted()
    {
        var policy = """
            tenants:
              acme:
                hosts: [api.acme.example]
                api_keys: true
            policies:
              default:
                credentials: [api_key]
            """;
        using var host = new AuthzTestHost(policy);

        var response = await host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.AcmeKey.Key }));

        Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, response.Status.Code);
    }
}

public sealed class AuthzPolicyFileTests
{
    [Theory]
    [InlineData("tenants:\n  acme:\n    hostz: [a]\n", "policies.yaml:3:5: tenants.acme.hostz: unknown field")]
    [InlineData("tenants:\n  acme:\n    jwt: [nope]\n", "policies.yaml:3:11: tenants.acme.jwt: no jwt_providers entry named 'nope'")]
    [InlineData("tenants:\n  acme: {}\npolicies:\n  default:\n    credentials: [password]\n", "policies.yaml:5:19: policies.default.credentials: unknown credential 'password'")]
    [InlineData("tenants:\n  acme: {}\njwt_providers:\n  idp:\n    issuer: x\n    audiences: [a]\n    algorithms: [none]\n    jwks: '{}'\n", "policies.yaml:7:17: jwt_providers.idp.algorithms: 'none' is not allowed")]
    [InlineData("tenants:\n  acme: &acme\n    hosts: [api.acme.example]\n    plan: *acme\n",
        "policies.yaml:4:11: alias *acme is inside the node it names (&acme at line 2), which makes a cycle")]
    [InlineData("tenants:\n  acme: {}\npolicies: &p\n  default: &d\n    credentials: [none]\n    scopes: [*p]\n",
        "policies.yaml:6:14: alias *p is inside the node it names (&p at line 3), which makes a cycle")]
    public void BadPolicyFile_StopsStartUp_WithFileLineAndField(string policy, string expected)
    {
        var rules = AuthzTestHost.LoadError(policy);

        Assert.NotNull(rules);
        Assert.Contains(expected, rules.Message, StringComparison.Ordinal);
    }
}
