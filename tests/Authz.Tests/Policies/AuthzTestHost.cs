using Envoy.Service.Auth.V3;
using Legate.Authz.ApiKeys;
using Legate.Authz.Policies;
using Legate.Authz.Tests.ApiKeys;
using Legate.Authz.Tests.Jwt;
using Legate.Hosting.Rules;
using Legate.Testing;
using Microsoft.Extensions.DependencyInjection;
using AuthorizationClient = Envoy.Service.Auth.V3.Authorization.AuthorizationClient;

namespace Legate.Authz.Tests.Policies;

/// <summary>The authz service in process, on a policy file and keys file written to a temp folder.</summary>
internal sealed class AuthzTestHost : IDisposable
{
    public static readonly GeneratedApiKey AcmeKey = TestKeys.New("acme", "billing", ["orders:read"]);
    public static readonly GeneratedApiKey GlobexKey = TestKeys.New("globex", "globex-app", ["orders:read", "orders:write"]);

    public static string Jwks => JwtTestKit.Jwks(JwtTestKit.Rsa(JwtTestKit.Rsa1, "k1"));

    public static string DefaultPolicy => $$"""
        tenants:
          acme:
            hosts: [api.acme.example, localhost]
            plan: free
            jwt: [idp]
            api_keys: true
          globex:
            hosts: [api.globex.example]
            api_keys: true
        jwt_providers:
          idp:
            issuer: {{JwtTestKit.Issuer}}
            audiences: [{{JwtTestKit.Audience}}]
            algorithms: [RS256]
            jwks: '{{Jwks}}'
        policies:
          default:
            credentials: [api_key, jwt]
          orders-write:
            credentials: [api_key, jwt]
            scopes: [orders:write]
          read-only:
            credentials: [api_key, jwt]
            methods: [GET, HEAD]
          public:
            credentials: [none]
        api_keys:
          file: keys.yaml
          query: api_key
        identity_headers:
          claims:
            email: x-legate-email
        """;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "legate-authz-" + Guid.NewGuid().ToString("N"));

    /// <param name="keys">Keys stored beside the two above, written before the service starts.</param>
    public AuthzTestHost(string? policy = null, IDictionary<string, string?>? settings = null, IEnumerable<GeneratedApiKey>? keys = null)
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(KeysPath, ApiKeyFileWriter.Serialize([AcmeKey.Record, GlobexKey.Record, .. (keys ?? []).Select(k => k.Record)]));
        WritePolicy(policy ?? DefaultPolicy);
        Service = new LegateServiceFactory<Program>(new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>())
        {
            ["Legate:Rules:authz:Path"] = PolicyPath,
        });
    }

    public string PolicyPath => Path.Combine(_dir, "policies.yaml");

    public string KeysPath => Path.Combine(_dir, "keys.yaml");

    public LegateServiceFactory<Program> Service { get; }

    public AuthorizationClient Client => new(Service.Channel);

    public RulesProvider<AuthzPolicySet> Rules => Service.Services.GetRequiredService<RulesProvider<AuthzPolicySet>>();

    public void WritePolicy(string text) => File.WriteAllText(PolicyPath, text);

    public Task<CheckResponse> CheckAsync(CheckRequest request) => Client.CheckAsync(request, cancellationToken: TestContext.Current.CancellationToken).ResponseAsync;

    public static CheckRequest Request(string host = "api.acme.example", string method = "GET", string path = "/orders",
        IDictionary<string, string>? headers = null, string? tenant = null, string? policy = null)
    {
        var http = new AttributeContext.Types.HttpRequest { Method = method, Path = path, Host = host };
        http.Headers[":authority"] = host;
        http.Headers[":method"] = method;
        http.Headers[":path"] = path;
        foreach (var (k, v) in headers ?? new Dictionary<string, string>())
            http.Headers[k] = v;
        var request = new CheckRequest { Attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } } };
        if (tenant is not null)
            request.Attributes.ContextExtensions["tenant"] = tenant;
        if (policy is not null)
            request.Attributes.ContextExtensions["policy"] = policy;
        return request;
    }

    /// <summary>
    /// Loads a policy (beside the usual keys.yaml) with the service's loader, outside a host, and returns the error.
    /// Start-up failures are asserted this way: through the test server, a failed start sometimes surfaces as
    /// WebApplicationFactory's own ObjectDisposedException instead of the loader's error.
    /// </summary>
    public static RulesException? LoadError(string policy)
    {
        using var host = new AuthzTestHost(policy);
        using var loader = new AuthzPolicyLoader(TimeProvider.System);
        try
        {
            loader.Load(RulesFiles.Read(host.PolicyPath)).Dispose();
            return null;
        }
        catch (RulesException e)
        {
            return e;
        }
    }

    public static string Token(Action<Dictionary<string, object?>>? claims = null) => JwtTestKit.Token(DateTimeOffset.UtcNow, claims);

    public void Dispose()
    {
        Service.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
