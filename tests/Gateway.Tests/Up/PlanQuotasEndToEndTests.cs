using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Auth.V3;
using Envoy.Service.Ratelimit.V3;
using Google.Protobuf.WellKnownTypes;
using Grpc.Net.Client;
using Legate.Gateway.Tests.Keys;
using Legate.Gateway.Up;
using YamlDotNet.RepresentationModel;
using AuthorizationClient = Envoy.Service.Auth.V3.Authorization.AuthorizationClient;
using RateLimitClient = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceClient;

namespace Legate.Gateway.Tests.Up;

/// <summary>
/// Per-plan quotas through the real services, as <c>legate up</c> runs them on a rendered gateway file: authz checks
/// each API key or JWT (a JWT's plan from its provider's plan_claim) and answers with its metadata, the descriptors are built from that metadata exactly as the rendered
/// route's <c>rate_limits</c> actions tell Envoy to, and ratelimit decides on the rendered rules. Envoy itself is the one
/// part played by the test (the actions are read from lds.yaml, not written here).
/// </summary>
public sealed class PlanQuotasEndToEndTests : IDisposable
{
    private const string Issuer = "https://idp.acme.example";

    // The issuer's signing key: its public half is the provider's inline JWKS.
    private static readonly RSA IssuerKey = RSA.Create(2048);

    private static readonly RSAParameters IssuerPublicKey = IssuerKey.ExportParameters(false);

    // Per minute, so that a run crossing a window boundary is rare; the test allows for it anyway (see CountAllowed).
    private static readonly string Gateway = $$"""
        backends:
          api: { urls: [http://127.0.0.1:9999] }
        tenants:
          acme: { hosts: [api.acme.example], plan: free, api_keys: true, jwt: [idp] }
        jwt_providers:
          idp:
            issuer: {{Issuer}}
            audiences: [orders-api]
            algorithms: [RS256]
            jwks: { keys: [{ kty: RSA, kid: k1, alg: RS256, n: {{Base64Url.EncodeToString(IssuerPublicKey.Modulus)}}, e: {{Base64Url.EncodeToString(IssuerPublicKey.Exponent)}} }] }
            plan_claim: [app_metadata, plan]
        policies:
          default: { credentials: [api_key, jwt] }
        api_keys: { file: keys.yaml }
        plans:
          free: { client: { requests: 3, per: minute } }
          gold: { client: { requests: 6, per: minute } }
        quotas:
          client: { requests: 2, per: minute }
        routes:
          - { name: api, match: { prefix: / }, backend: api }
        """;

    private readonly TempDir _dir = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _dir.Dispose();

    private string CreateKey(string client, string? plan)
    {
        string[] args = ["create", "--tenant", "acme", "--client", client, "--file", _dir.File("keys.yaml")];
        var (exitCode, stdout, stderr) = KeysCommandTests.Run(TimeProvider.System, plan is null ? args : [.. args, "--plan", plan]);
        Assert.True(exitCode == Cli.Ok, stderr);
        return stdout.Trim();
    }

    [Fact]
    public async Task ClientsOnDifferentPlans_GetTheirPlansLimits_EachOnItsOwnCounter()
    {
        File.WriteAllText(_dir.File("gateway.yaml"), Gateway);
        var gold1 = CreateKey("gold-1", "gold");
        var gold2 = CreateKey("gold-2", "gold");
        var free = CreateKey("free-1", null);           // no plan of its own: its tenant's, free
        var unlisted = CreateKey("odd-1", "platinum");  // a plan the file does not list: the quotas: default

        await using var gateway = await LocalGateway.StartAsync(_dir.File("gateway.yaml"), _dir.File("out"), freePorts: true, Ct);
        using var authzChannel = GrpcChannel.ForAddress(gateway.Services[0].Grpc);
        using var ratelimitChannel = GrpcChannel.ForAddress(gateway.Services[1].Grpc);
        var authz = new AuthorizationClient(authzChannel);
        var ratelimit = new RateLimitClient(ratelimitChannel);
        var actions = RateLimitActions(Path.Combine(gateway.OutputDir, "envoy", "dynamic", "lds.yaml"));

        var allowed = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, key) in new[] { ("gold-1", gold1), ("gold-2", gold2), ("free-1", free), ("odd-1", unlisted) })
            allowed[name] = await CountAllowed(authz, ratelimit, actions, ("x-api-key", key), expectedPlan: name switch { "free-1" => "free", "odd-1" => "platinum", _ => "gold" });
        // JWT callers: one whose token's plan claim (app_metadata.plan) says gold, one whose token has none (its tenant's, free).
        allowed["jwt-gold"] = await CountAllowed(authz, ratelimit, actions, ("authorization", "Bearer " + Token("jwt-gold", "gold")), expectedPlan: "gold");
        allowed["jwt-none"] = await CountAllowed(authz, ratelimit, actions, ("authorization", "Bearer " + Token("jwt-none", null)), expectedPlan: "free");

        Assert.Equal(6, allowed["gold-1"]);
        Assert.Equal(6, allowed["gold-2"]);     // not gold-1's counter: every gold client has 6 of its own
        Assert.Equal(3, allowed["free-1"]);
        Assert.Equal(2, allowed["odd-1"]);
        Assert.Equal(6, allowed["jwt-gold"]);   // gold's limit, on its own counter (client jwt-gold, its azp)
        Assert.Equal(3, allowed["jwt-none"]);
    }

    /// <summary>An RS256 token of the issuer for client <paramref name="client"/> (its azp), with <c>app_metadata.plan</c> when <paramref name="plan"/> is set.</summary>
    private static string Token(string client, string? plan)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var claims = new Dictionary<string, object> { ["iss"] = Issuer, ["aud"] = "orders-api", ["sub"] = client, ["azp"] = client, ["iat"] = now, ["exp"] = now + 600 };
        if (plan is not null)
            claims["app_metadata"] = new Dictionary<string, string> { ["plan"] = plan, ["region"] = "eu" };
        var input = Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(new { alg = "RS256", typ = "JWT", kid = "k1" }))
            + "." + Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(claims));
        return input + "." + Base64Url.EncodeToString(IssuerKey.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
    }

    /// <summary>
    /// Sends 10 requests of one credential as Envoy would (authz, then ratelimit with the descriptors the actions make of
    /// authz's metadata) and counts those ratelimit lets through. A minute boundary between them starts the counts over:
    /// then the key's requests are sent again, once.
    /// </summary>
    private static async Task<int> CountAllowed(AuthorizationClient authz, RateLimitClient ratelimit, IReadOnlyList<IReadOnlyList<YamlNode>> actions,
        (string Header, string Value) credential, string expectedPlan)
    {
        for (var attempt = 0; ; attempt++)
        {
            var minute = DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60;
            var allowed = 0;
            for (var i = 0; i < 10; i++)
            {
                var check = await authz.CheckAsync(Request(credential), cancellationToken: Ct);
                Assert.Equal(0, check.Status.Code);
                Assert.Equal(expectedPlan, check.DynamicMetadata.Fields["plan"].StringValue);
                var request = new RateLimitRequest { Domain = "edge" };
                request.Descriptors.AddRange(Descriptors(actions, check.DynamicMetadata));
                Assert.NotEmpty(request.Descriptors);
                var answer = await ratelimit.ShouldRateLimitAsync(request, cancellationToken: Ct);
                if (answer.OverallCode == RateLimitResponse.Types.Code.Ok)
                    allowed++;
            }
            if (DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60 == minute || attempt > 0)
                return allowed;
        }
    }

    private static CheckRequest Request((string Header, string Value) credential)
    {
        var http = new AttributeContext.Types.HttpRequest { Method = "GET", Path = "/orders", Host = "api.acme.example" };
        http.Headers[":authority"] = "api.acme.example";
        http.Headers[":method"] = "GET";
        http.Headers[":path"] = "/orders";
        http.Headers[credential.Header] = credential.Value;
        var attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } };
        attributes.ContextExtensions["policy"] = "default";
        return new CheckRequest { Attributes = attributes };
    }

    /// <summary>The rate_limits actions of the rendered route <c>api</c>, one list per descriptor.</summary>
    private static IReadOnlyList<YamlNode>[] RateLimitActions(string lds)
    {
        var hcm = GatewayFiles.Load(lds).Seq("resources")[0].Seq("filter_chains")[0].Seq("filters")[0].Get("typed_config")!;
        var route = hcm.Seq("route_config", "virtual_hosts").SelectMany(h => h.Seq("routes")).First(r => r.Str("name") == "api");
        return route.Seq("route", "rate_limits").Select(l => l.Seq("actions")).ToArray();
    }

    /// <summary>
    /// What Envoy makes of the actions for one request: each metadata action reads authz's dynamic metadata (namespace
    /// envoy.filters.http.ext_authz) at its path, falling back to its default_value; a descriptor with an entry that has
    /// neither is left out, as Envoy leaves it out.
    /// </summary>
    private static IEnumerable<RateLimitDescriptor> Descriptors(IReadOnlyList<IReadOnlyList<YamlNode>> actions, Struct metadata)
    {
        foreach (var descriptorActions in actions)
        {
            var descriptor = new RateLimitDescriptor();
            foreach (var action in descriptorActions)
            {
                var entry = action.Get("metadata") ?? throw new InvalidOperationException("the route has only authz metadata actions");
                Assert.Equal("envoy.filters.http.ext_authz", entry.Str("metadata_key", "key"));
                var field = entry.Seq("metadata_key", "path").Single().Str("key")!;
                var value = metadata.Fields.TryGetValue(field, out var v) && v.KindCase == Value.KindOneofCase.StringValue ? v.StringValue : entry.Str("default_value");
                if (value is null)
                {
                    descriptor = null;
                    break;
                }
                descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = entry.Str("descriptor_key")!, Value = value });
            }
            if (descriptor is not null)
                yield return descriptor;
        }
    }
}
