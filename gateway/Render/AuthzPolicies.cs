using Legate.Gateway.Model;
using YamlDotNet.RepresentationModel;
using static Legate.Hosting.Rules.YamlNodes;

namespace Legate.Gateway.Render;

/// <summary>
/// The authz policy file (authz/Policies/AuthzPolicyLoader.cs format): tenants, JWT providers, policies, API key
/// settings and identity headers from the gateway file. Files it names (the API key store, JWKS files) are copied
/// beside it so the output folder is complete wherever it is mounted.
/// </summary>
internal static class AuthzPolicies
{
    public const string KeysFileName = "keys.yaml";

    public static string Render(GatewayConfig config, string header)
    {
        ArgumentNullException.ThrowIfNull(config);
        var tenants = Yaml.Map();
        foreach (var tenant in config.Tenants)
        {
            tenants.Add(tenant.Name, Yaml.Map(
                ("hosts", tenant.Hosts.Count == 0 ? null : tenant.Hosts.ToList()),
                ("plan", tenant.Plan),
                ("jwt", tenant.Jwt.Count == 0 ? null : tenant.Jwt.ToList()),
                ("api_keys", tenant.ApiKeys ? true : null),
                ("tokens_from", tenant.TokensFrom is { } from ? Yaml.FromNode(from) : null)));
        }

        var providers = Yaml.Map();
        foreach (var provider in config.JwtProviders)
        {
            var map = (OrderedDictionary<string, object>)Yaml.FromNode(provider.Node);
            // A field written as null (plan_claim: ~, typ:) is absent to the gateway loader: left out, not passed on as
            // the text "~", "null" or "" (a plan claim named "null", a typ no token has).
            foreach (var (key, value) in provider.Node.Children)
            {
                if (IsNull(value))
                    map.Remove(((YamlScalarNode)key).Value ?? "");
            }
            if (provider.JwksFile is not null)
                map["jwks_file"] = JwksFileName(provider.Name);
            providers.Add(provider.Name, map);
        }

        var policies = Yaml.Map();
        foreach (var policy in config.Policies)
        {
            policies.Add(policy.Name, Yaml.Map(
                ("credentials", policy.Credentials.ToList()),
                ("scopes", policy.Scopes.Count == 0 ? null : policy.Scopes.ToList()),
                ("methods", policy.Methods.Count == 0 ? null : policy.Methods.ToList()),
                ("client_cidrs", policy.ClientCidrs is { } cidrs ? Yaml.FromNode(cidrs) : null),
                ("claims", policy.Claims is { } claims ? Yaml.FromNode(claims) : null)));
        }

        var document = Yaml.Map(
            ("tenants", tenants),
            ("jwt_providers", providers.Count == 0 ? null : providers),
            ("policies", policies),
            ("api_keys", config.ApiKeys is { } keys
                ? Yaml.Map(("file", keys.File is null ? null : KeysFileName), ("redis", keys.Redis ? true : null), ("cache_ttl", keys.CacheTtl),
                    ("header", keys.Header), ("query", keys.Query), ("prefix", keys.Prefix))
                : null),
            ("identity_headers", config.IdentityHeaders is { } identity && !IsNull(identity) ? Yaml.FromNode(identity) : null),
            ("strip_credentials", config.StripCredentials),
            ("strip_authorization", config.StripAuthorization),
            ("client_address", config.ClientAddress is { } address ? Yaml.FromNode(address) : null));
        return header + Yaml.Serialize(document);
    }

    public static string JwksFileName(string provider) => $"{provider}.jwks.json";
}
