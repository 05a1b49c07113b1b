using Google.Protobuf;
using Envoy.Service.Auth.V3;

namespace Legate.Authz.Tests.Policies;

/// <summary>
/// The decider reuses the allow answer it built for the same API key or cached token, policy set, tenant and policy:
/// a repeated caller must get exactly what a fresh build gives, and never an answer built for another caller, another
/// policy or an older policy file.
/// </summary>
public sealed class AllowAnswerCacheTests : IDisposable
{
    private readonly AuthzTestHost _host = new();

    private static CheckRequest KeyRequest(string key, string? policy = null, string path = "/orders") =>
        AuthzTestHost.Request(path: path, policy: policy, headers: new Dictionary<string, string> { ["x-api-key"] = key });

    private static string? Header(CheckResponse response, string name) =>
        response.OkResponse.Headers.FirstOrDefault(h => h.Header.Key == name)?.Header.Value;

    [Fact]
    public async Task RepeatedApiKey_GetsTheSameAnswerAsTheFirstCall()
    {
        var first = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));
        var second = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));

        Assert.Equal(0, first.Status.Code);
        Assert.Equal(first, second);
        Assert.Equal("billing", second.DynamicMetadata.Fields["client"].StringValue);
    }

    [Fact]
    public async Task TwoKeys_EachGetTheirOwnIdentity()
    {
        var acme = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));
        var globex = await _host.CheckAsync(AuthzTestHost.Request(host: "api.globex.example",
            headers: new Dictionary<string, string> { ["x-api-key"] = AuthzTestHost.GlobexKey.Key }));
        var acmeAgain = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));

        Assert.Equal("billing", acme.DynamicMetadata.Fields["client"].StringValue);
        Assert.Equal("globex-app", globex.DynamicMetadata.Fields["client"].StringValue);
        Assert.Equal("billing", acmeAgain.DynamicMetadata.Fields["client"].StringValue);
        Assert.Equal("acme", acmeAgain.DynamicMetadata.Fields["tenant"].StringValue);
    }

    [Fact]
    public async Task SameKey_UnderAnotherPolicy_NamesThatPolicy()
    {
        var byDefault = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));
        var readOnly = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key, policy: "read-only"));
        var byDefaultAgain = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));

        Assert.Equal("default", byDefault.DynamicMetadata.Fields["policy"].StringValue);
        Assert.Equal("read-only", readOnly.DynamicMetadata.Fields["policy"].StringValue);
        Assert.Equal("default", byDefaultAgain.DynamicMetadata.Fields["policy"].StringValue);
    }

    [Fact]
    public async Task SameKey_InTheQueryInsteadOfTheHeader_IsStrippedFromTheQuery()
    {
        var inHeader = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));
        var inQuery = await _host.CheckAsync(AuthzTestHost.Request(path: "/orders?api_key=" + AuthzTestHost.AcmeKey.Key));

        Assert.Contains("x-api-key", inHeader.OkResponse.HeadersToRemove);
        Assert.Empty(inHeader.OkResponse.QueryParametersToRemove);
        Assert.Contains("api_key", inQuery.OkResponse.QueryParametersToRemove);
        Assert.DoesNotContain("x-api-key", inQuery.OkResponse.HeadersToRemove);
    }

    [Fact]
    public async Task AfterAPolicyReload_TheNewIdentityHeadersApply()
    {
        var before = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));
        _host.WritePolicy(AuthzTestHost.DefaultPolicy + "\n  tenant: x-org\n");
        Assert.True(_host.Rules.Reload());
        var after = await _host.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key));

        Assert.NotNull(Header(before, "x-legate-tenant"));
        Assert.Null(Header(before, "x-org"));
        Assert.Equal("acme", Header(after, "x-org"));
    }

    [Fact]
    public async Task RepeatedToken_GetsItsOwnClaims_AndAnotherTokenItsOwn()
    {
        var alice = AuthzTestHost.Token(c => { c["sub"] = "alice"; c["email"] = "alice@acme.example"; });
        var bob = AuthzTestHost.Token(c => { c["sub"] = "bob"; c["email"] = "bob@acme.example"; });
        CheckRequest Bearer(string token) => AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });

        var a1 = await _host.CheckAsync(Bearer(alice));
        var b1 = await _host.CheckAsync(Bearer(bob));
        var a2 = await _host.CheckAsync(Bearer(alice));

        Assert.Equal(a1, a2);
        Assert.Equal("alice@acme.example", Header(a2, "x-legate-email"));
        Assert.Equal("bob", b1.DynamicMetadata.Fields["subject"].StringValue);
        Assert.Equal("bob@acme.example", Header(b1, "x-legate-email"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("0")]
    public async Task DistinctTokens_ShareTheTenantAndPolicyParts_AndKeepTheirOwnIdentity(string? tokenCache)
    {
        var settings = new Dictionary<string, string?>();
        if (tokenCache is not null)
            settings["Legate:Authz:TokenCacheCapacity"] = tokenCache;
        using var host = new AuthzTestHost(settings: settings);
        var decider = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Legate.Authz.Policies.AuthorizationDecider>(host.Service.Services);
        CheckRequest Bearer(string token) => AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + token });
        var alice = Bearer(AuthzTestHost.Token(c => { c["sub"] = "alice"; c["azp"] = "web"; c["email"] = "alice@acme.example"; }));
        var bob = Bearer(AuthzTestHost.Token(c => c["sub"] = "bob"));
        var ct = TestContext.Current.CancellationToken;

        var a1 = await decider.CheckAsync(alice, ct);
        var a1Bytes = a1.ToByteArray();
        var b1 = await decider.CheckAsync(bob, ct);
        var key = await decider.CheckAsync(KeyRequest(AuthzTestHost.AcmeKey.Key), ct);
        var a2 = await decider.CheckAsync(alice, ct);

        // Built once, shared by every answer of this tenant and policy; nothing in an answer was changed by the next one.
        Assert.Same(a1.DynamicMetadata.Fields["tenant"], b1.DynamicMetadata.Fields["tenant"]);
        Assert.Same(a1.OkResponse.Headers[0], b1.OkResponse.Headers[0]);
        Assert.Equal(a1Bytes, a1.ToByteArray());
        Assert.Equal(a1, a2);

        Assert.Equal(["acme", "alice", "web", "alice@acme.example"], a1.OkResponse.Headers.Select(h => h.Header.Value));
        Assert.Equal(["x-legate-tenant", "x-legate-subject", "x-legate-client", "x-legate-email"], a1.OkResponse.Headers.Select(h => h.Header.Key));
        Assert.Equal(["x-legate-client", "x-legate-email"], b1.OkResponse.HeadersToRemove);
        Assert.Equal("acme", Header(b1, "x-legate-tenant"));
        Assert.Equal("bob", Header(b1, "x-legate-subject"));
        Assert.Equal(["tenant", "policy", "credential", "client", "subject", "plan"], b1.DynamicMetadata.Fields.Keys);
        Assert.Equal(["acme", "default", "jwt", "anonymous", "bob", "free"], b1.DynamicMetadata.Fields.Values.Select(v => v.StringValue));
        Assert.Equal(["acme", "default", "jwt", "web", "alice", "free"], a1.DynamicMetadata.Fields.Values.Select(v => v.StringValue));
        Assert.Equal(["acme", "default", "api_key", "billing", "billing", "gold"], key.DynamicMetadata.Fields.Values.Select(v => v.StringValue));
        Assert.Equal(0, a1.Status.Code);
        Assert.Equal("", a1.Status.Message);
    }

    [Fact]
    public async Task AfterAPolicyReload_ATokenAnswer_TakesTheNewTenantHeaderAndPlan()
    {
        var token = AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + AuthzTestHost.Token() });
        var before = await _host.CheckAsync(token);
        _host.WritePolicy(AuthzTestHost.DefaultPolicy.Replace("plan: free", "plan: gold", StringComparison.Ordinal) + "\n  tenant: x-org\n");
        Assert.True(_host.Rules.Reload());
        var after = await _host.CheckAsync(token);

        Assert.Equal("acme", Header(before, "x-legate-tenant"));
        Assert.Equal("free", before.DynamicMetadata.Fields["plan"].StringValue);
        Assert.Null(Header(after, "x-legate-tenant"));
        Assert.Equal("acme", Header(after, "x-org"));
        Assert.Equal("gold", after.DynamicMetadata.Fields["plan"].StringValue);
    }

    public void Dispose() => _host.Dispose();
}
