using System.Text.Json;
using Envoy.Service.Auth.V3;
using GrpcStatusCode = Grpc.Core.StatusCode;

namespace Legate.Authz.Tests.Policies;

/// <summary>Policies that require token claims: scalar and array claims, any-of values, all claims required, JWT only.</summary>
public sealed class ClaimPolicyTests : IDisposable
{
    private static readonly string Policy = AuthzTestHost.DefaultPolicy.Replace("""
          public:
            credentials: [none]
        """, """
          public:
            credentials: [none]
          admins:
            credentials: [jwt]
            claims:
              role: [admin, owner]
              groups: ops
              email_verified: true
              level: [5, "7"]
        """, StringComparison.Ordinal);

    private readonly AuthzTestHost _host = new(Policy);

    private static List<string> List(params string[] values) => [.. values];

    public void Dispose() => _host.Dispose();

    private Task<CheckResponse> CheckAsync(Action<Dictionary<string, object?>> claims) =>
        _host.CheckAsync(AuthzTestHost.Request(policy: "admins", headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + AuthzTestHost.Token(claims) }));

    private static void AssertMissingClaim(CheckResponse response)
    {
        Assert.Equal((int)GrpcStatusCode.PermissionDenied, response.Status.Code);
        using var body = JsonDocument.Parse(response.DeniedResponse.Body);
        Assert.Equal("missing claim", body.RootElement.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("admin")]
    [InlineData("owner")]
    public async Task EveryClaimMet_ScalarOrArray_AnyListedValue_IsAllowed(string role)
    {
        var response = await CheckAsync(c => { c["role"] = role; c["groups"] = List("dev", "ops"); c["email_verified"] = true; c["level"] = 5; });

        Assert.Equal(0, response.Status.Code);
    }

    [Fact]
    public async Task AnArrayClaim_MayAlsoBeAString()
    {
        var response = await CheckAsync(c => { c["role"] = List("viewer", "owner"); c["groups"] = "ops"; c["email_verified"] = true; c["level"] = "7"; });

        Assert.Equal(0, response.Status.Code);
    }

    [Fact]
    public async Task AWrongValue_IsForbidden()
        => AssertMissingClaim(await CheckAsync(c => { c["role"] = "viewer"; c["groups"] = List("ops"); c["email_verified"] = true; c["level"] = 5; }));

    [Fact]
    public async Task AMissingClaim_IsForbidden()
        => AssertMissingClaim(await CheckAsync(c => { c["role"] = "admin"; c["groups"] = List("ops"); c["level"] = 5; }));

    [Fact]
    public async Task AnArrayWithoutTheValue_IsForbidden()
        => AssertMissingClaim(await CheckAsync(c => { c["role"] = "admin"; c["groups"] = List("dev", "opsx"); c["email_verified"] = true; c["level"] = 5; }));

    [Fact]
    public async Task AnotherValue_DoesNotMatch()
        => AssertMissingClaim(await CheckAsync(c => { c["role"] = "admin"; c["groups"] = "ops"; c["email_verified"] = false; c["level"] = 5; }));

    // The policy's unquoted true and 5 are a boolean and a number; its quoted "7" is a string. A claim a user can set
    // as free text must not satisfy a boolean or number requirement by its spelling.
    [Theory]
    [InlineData("email_verified", "true")]
    [InlineData("level", "5")]
    [InlineData("level", 7)]
    public async Task AValueOfAnotherJsonType_DoesNotMatch(string claim, object value)
        => AssertMissingClaim(await CheckAsync(c => { c["role"] = "admin"; c["groups"] = "ops"; c["email_verified"] = true; c["level"] = 5; c[claim] = value; }));

    [Fact]
    public async Task AnArrayClaim_MatchesByTypeToo()
    {
        Assert.Equal(0, (await CheckAsync(c => { c["role"] = "admin"; c["groups"] = "ops"; c["email_verified"] = true; c["level"] = new object[] { "x", 5 }; })).Status.Code);
        AssertMissingClaim(await CheckAsync(c => { c["role"] = "admin"; c["groups"] = "ops"; c["email_verified"] = true; c["level"] = new object[] { "5", 7 }; }));
    }

    [Theory]
    [InlineData("credentials: [jwt, api_key]\n    claims: {role: admin}", "claims are JWT claims: a policy that requires them accepts only jwt credentials")]
    [InlineData("credentials: [jwt, none]\n    claims: {role: admin}", "accepts only jwt credentials")]
    [InlineData("credentials: [jwt]\n    claims: {}", "is empty")]
    [InlineData("credentials: [jwt]\n    claims: {role: []}", "needs a value")]
    [InlineData("credentials: [jwt]\n    claims: [role]", "is a mapping of claim name")]
    public void BadClaims_AreLoadErrors_NamingTheField(string policy, string expected)
    {
        var text = AuthzTestHost.DefaultPolicy.Replace("  public:\n    credentials: [none]", "  public:\n    " + policy, StringComparison.Ordinal);

        var error = AuthzTestHost.LoadError(text);

        Assert.NotNull(error);
        Assert.Contains("policies.public.claims", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
