using System.Collections.Frozen;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Legate.Authz.ApiKeys;
using Legate.Authz.Jwt;
using Legate.Hosting.Rules;
using static Legate.Hosting.Rules.YamlNodes;
using Microsoft.Extensions.Logging;
using YamlDotNet.RepresentationModel;

namespace Legate.Authz.Policies;

/// <summary>
/// Loads the authz policy file (<c>Legate:Rules:authz:Path</c>): <c>tenants</c>, <c>jwt_providers</c>, <c>policies</c>,
/// <c>api_keys</c>, <c>identity_headers</c>, <c>strip_credentials</c>, <c>strip_authorization</c>. Keys are strict;
/// every error names file:line:column and the field. A directory of files is merged (a name defined twice is an error).
/// The JWKS sources of a new set are started when it loads; a provider whose key source is unchanged keeps the previous
/// set's source and its keys (no fetch: a reload while the issuer is down loses no keys); the previous set's other
/// sources are disposed then (the hosting swaps in every set this loader returns).
/// </summary>
public sealed partial class AuthzPolicyLoader : IRulesLoader<AuthzPolicySet>, IDisposable
{
    private static readonly FrozenSet<string> TopFields = FrozenSet.Create(StringComparer.Ordinal,
        "tenants", "jwt_providers", "policies", "api_keys", "identity_headers", "strip_credentials", "strip_authorization", "client_address", "failure_throttle");
    private static readonly FrozenSet<string> TenantFields = FrozenSet.Create(StringComparer.Ordinal, "hosts", "plan", "jwt", "api_keys", "tokens_from", "routes");
    private static readonly FrozenSet<string> ProviderFields = FrozenSet.Create(StringComparer.Ordinal,
        "issuer", "audiences", "algorithms", "jwks_uri", "oidc_discovery_uri", "jwks", "jwks_file", "clock_skew", "max_lifetime", "typ", "tokens_from", "plan_claim");
    private static readonly FrozenSet<string> PolicyFields = FrozenSet.Create(StringComparer.Ordinal, "credentials", "scopes", "methods", "client_cidrs", "claims");
    private static readonly FrozenSet<string> ApiKeyFields = FrozenSet.Create(StringComparer.Ordinal, "file", "redis", "cache_ttl", "header", "query", "prefix");
    private static readonly FrozenSet<string> IdentityFields = FrozenSet.Create(StringComparer.Ordinal, "tenant", "subject", "client", "claims");

    private readonly TimeProvider _time;
    private readonly JwksMetrics? _jwksMetrics;
    private readonly ILoggerFactory? _loggers;
    private readonly HttpClient _http = new();
    private readonly ApiKeyStores _stores;
    private readonly bool _ownsStores;
    private AuthzPolicySet? _last;

    /// <param name="stores">The key stores (watched keys files, the Redis store); by default keys files are loaded but not watched and there is no Redis.</param>
    public AuthzPolicyLoader(TimeProvider time, JwksMetrics? jwksMetrics = null, ILoggerFactory? loggers = null, ApiKeyStores? stores = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _jwksMetrics = jwksMetrics;
        _loggers = loggers;
        _ownsStores = stores is null;
        _stores = stores ?? new ApiKeyStores(time);
    }

    public AuthzPolicySet Load(RulesFiles files)
    {
        ArgumentNullException.ThrowIfNull(files);
        AuthzPolicySet set;
        var previous = _last;
        try
        {
            set = Build(files.Files, previous);
        }
        catch
        {
            // A keys file named only by the refused policy is not watched any longer.
            _stores.Retain(KeysFiles(previous));
            throw;
        }
        set.Start();
        foreach (var provider in set.Providers)
        {
            if (previous?.Holds(provider.Keys) == true)
                provider.Keys.OnKeptByReload();
        }
        // Requests still holding the previous snapshot keep working: a disposed source keeps its last keys for a while.
        Interlocked.Exchange(ref _last, set)?.Retire(set);
        _stores.Retain(KeysFiles(set));
        return set;
    }

    private static string[] KeysFiles(AuthzPolicySet? set) => set?.ApiKeys?.File is { } file ? [file] : [];

    public void Dispose()
    {
        Interlocked.Exchange(ref _last, null)?.Dispose();
        _http.Dispose();
        if (_ownsStores)
            _stores.Dispose();
    }

    private sealed class Draft
    {
        public readonly Dictionary<string, (RulesFile File, YamlMappingNode Node, YamlNode Key)> Tenants = new(StringComparer.Ordinal);
        public readonly Dictionary<string, (RulesFile File, YamlMappingNode Node, YamlNode Key)> Providers = new(StringComparer.Ordinal);
        public readonly Dictionary<string, AccessPolicy> Policies = new(StringComparer.Ordinal);
        public readonly Dictionary<string, YamlNode> Seen = new(StringComparer.Ordinal);
        public ApiKeySettings? ApiKeys;
        public IdentityHeaders Identity = IdentityHeaders.Default;
        public bool StripCredentials = true;
        public bool StripAuthorization;
        public ClientAddressSettings ClientAddress = ClientAddressSettings.Default;
        public FailureThrottleSettings? FailureThrottle;
    }

    /// <param name="previous">The set in use: a provider whose key source is unchanged keeps that set's source (and keys).</param>
    private AuthzPolicySet Build(IEnumerable<RulesFile> files, AuthzPolicySet? previous)
    {
        var draft = new Draft();
        RulesFile? firstFile = null;
        foreach (var file in files)
        {
            firstFile ??= file;
            foreach (var document in YamlRules.Parse(file).Documents)
            {
                if (IsNull(document.RootNode))
                    continue;
                if (document.RootNode is not YamlMappingNode root)
                    throw YamlRules.Error(file, document.RootNode, "", "a policy file is a mapping (tenants, jwt_providers, policies, ...)");
                ReadTop(file, root, draft);
            }
        }

        var created = new List<JwtProvider>();
        try
        {
            var providers = new Dictionary<string, JwtProvider>(StringComparer.Ordinal);
            var providerSources = new Dictionary<string, IReadOnlyList<TokenSource>>(StringComparer.Ordinal);
            // Claims are read from tokens with their types (arrays included) only where a policy requires them.
            var policyClaims = draft.Policies.Values.SelectMany(p => p.Claims).Select(c => c.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var (name, (file, node, key)) in draft.Providers)
            {
                var provider = ReadProvider(file, name, node, key, previous, policyClaims);
                created.Add(provider);
                providers.Add(name, provider);
                if (Field(node, "tokens_from") is { } from)
                    providerSources.Add(name, ReadTokenSources(file, from, $"jwt_providers.{name}.tokens_from", draft.ApiKeys, draft.Identity));
            }

            var tenants = new Dictionary<string, TenantPolicy>(StringComparer.Ordinal);
            var byHost = new Dictionary<string, TenantPolicy>(StringComparer.Ordinal);
            var hostNodes = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, (file, node, _)) in draft.Tenants)
            {
                var tenant = ReadTenant(file, name, node, providers, providerSources, draft, out var hostList);
                tenants.Add(name, tenant);
                foreach (var (host, hostNode) in hostList)
                {
                    if (hostNodes.TryGetValue(host, out var other))
                        throw YamlRules.Error(file, hostNode, $"tenants.{name}.hosts", $"host '{host}' already belongs to tenant '{other}'");
                    hostNodes.Add(host, name);
                    byHost.Add(host, tenant);
                }
            }
            if (tenants.Count == 0 && firstFile is not null)
                throw new RulesException(firstFile.Path, null, null, "tenants", "at least one tenant is required (every request would be denied)");

            return new AuthzPolicySet(tenants.ToFrozenDictionary(StringComparer.Ordinal), byHost.ToFrozenDictionary(StringComparer.Ordinal),
                draft.Policies.ToFrozenDictionary(StringComparer.Ordinal), created, draft.ApiKeys, draft.Identity,
                draft.StripCredentials, draft.StripAuthorization, draft.ClientAddress, draft.FailureThrottle);
        }
        catch
        {
            // Only the sources made for the refused set: the kept ones still serve the set in use.
            foreach (var provider in created)
            {
                if (previous?.Holds(provider.Keys) != true)
                    provider.Keys.Dispose();
            }
            throw;
        }
    }

    private void ReadTop(RulesFile file, YamlMappingNode root, Draft draft)
    {
        foreach (var (keyNode, value) in root.Children)
        {
            var key = Key(file, keyNode, "");
            if (!TopFields.Contains(key))
                throw YamlRules.Error(file, keyNode, key, $"unknown field (expected one of {string.Join(", ", TopFields.Order(StringComparer.Ordinal))})");
            if (key is not ("tenants" or "jwt_providers" or "policies"))
            {
                if (draft.Seen.TryGetValue(key, out _))
                    throw YamlRules.Error(file, keyNode, key, "is defined in more than one file");
                draft.Seen.Add(key, keyNode);
            }
            switch (key)
            {
                case "tenants":
                    foreach (var (name, node, nameNode) in NamedMaps(file, value, key))
                    {
                        CheckName(file, nameNode, key, name);
                        if (!draft.Tenants.TryAdd(name, (file, node, nameNode)))
                            throw YamlRules.Error(file, nameNode, $"{key}.{name}", "is defined twice");
                    }
                    break;
                case "jwt_providers":
                    foreach (var (name, node, nameNode) in NamedMaps(file, value, key))
                    {
                        CheckName(file, nameNode, key, name);
                        if (!draft.Providers.TryAdd(name, (file, node, nameNode)))
                            throw YamlRules.Error(file, nameNode, $"{key}.{name}", "is defined twice");
                    }
                    break;
                case "policies":
                    foreach (var (name, node, nameNode) in NamedMaps(file, value, key))
                    {
                        CheckName(file, nameNode, key, name);
                        if (!draft.Policies.TryAdd(name, ReadPolicy(file, name, node)))
                            throw YamlRules.Error(file, nameNode, $"{key}.{name}", "is defined twice");
                    }
                    break;
                case "api_keys":
                    draft.ApiKeys = ReadApiKeys(file, value);
                    break;
                case "identity_headers":
                    draft.Identity = ReadIdentity(file, value);
                    break;
                case "strip_credentials":
                    draft.StripCredentials = Bool(file, value, key);
                    break;
                case "strip_authorization":
                    draft.StripAuthorization = Bool(file, value, key);
                    break;
                case "client_address":
                    draft.ClientAddress = ReadClientAddress(file, value);
                    break;
                case "failure_throttle":
                    draft.FailureThrottle = ReadFailureThrottle(file, value);
                    break;
            }
        }
    }

    private static AccessPolicy ReadPolicy(RulesFile file, string name, YamlMappingNode node)
    {
        var path = $"policies.{name}";
        CheckFields(file, node, path, PolicyFields);
        bool jwt = false, apiKey = false, none = false;
        var credentials = Field(node, "credentials") ?? throw YamlRules.Error(file, node, path + ".credentials", "is required (any of jwt, api_key, none)");
        foreach (var (value, valueNode) in Strings(file, credentials, path + ".credentials"))
        {
            switch (value)
            {
                case "jwt": jwt = true; break;
                case "api_key": apiKey = true; break;
                case "none": none = true; break;
                default: throw YamlRules.Error(file, valueNode, path + ".credentials", $"unknown credential '{value}' (jwt, api_key, none)");
            }
        }
        if (!jwt && !apiKey && !none)
            throw YamlRules.Error(file, credentials, path + ".credentials", "at least one of jwt, api_key, none is required");
        var scopes = Field(node, "scopes") is { } s ? Strings(file, s, path + ".scopes").Select(x => x.Value).ToArray() : [];
        if (none && scopes.Length > 0)
            throw YamlRules.Error(file, node, path + ".scopes", "a policy accepting 'none' cannot require scopes");
        var methods = new HashSet<string>(StringComparer.Ordinal);
        if (Field(node, "methods") is { } m)
        {
            foreach (var (value, valueNode) in Strings(file, m, path + ".methods"))
            {
                if (!MethodPattern().IsMatch(value))
                    throw YamlRules.Error(file, valueNode, path + ".methods", $"'{value}' is not an HTTP method (upper-case token, e.g. GET)");
                methods.Add(value);
            }
        }
        var cidrs = new List<System.Net.IPNetwork>();
        if (Field(node, "client_cidrs") is { } cc)
        {
            foreach (var (value, valueNode) in Strings(file, cc, path + ".client_cidrs"))
            {
                if (!System.Net.IPNetwork.TryParse(value, out var network))
                    throw YamlRules.Error(file, valueNode, path + ".client_cidrs", $"'{value}' is not a network in CIDR notation (10.0.0.0/8, 2001:db8::/32)");
                cidrs.Add(network);
            }
            if (cidrs.Count == 0)
                throw YamlRules.Error(file, cc, path + ".client_cidrs", "is empty (leave it out to allow any address)");
        }
        var claims = new List<ClaimRequirement>();
        if (Field(node, "claims") is { } cl)
        {
            // Claims are the token's: an API key or an anonymous caller has none, so a policy that lets them in could not
            // require any; refusing the combination keeps "claims: ..." from reading as a requirement it is not.
            if (apiKey || none)
                throw YamlRules.Error(file, cl, path + ".claims", "claims are JWT claims: a policy that requires them accepts only jwt credentials");
            foreach (var (claimKey, claimValue) in Mapping(file, cl, path + ".claims", "is a mapping of claim name to a value or a list of values").Children)
            {
                var claim = Key(file, claimKey, path + ".claims");
                var at = $"{path}.claims.{claim}";
                var values = claimValue is YamlSequenceNode ? Strings(file, claimValue, at).Select(x => x.Node).ToArray() : [claimValue];
                if (values.Length == 0 || values.Any(v => string.IsNullOrEmpty(Scalar(file, v, at))))
                    throw YamlRules.Error(file, claimValue, at, "needs a value, or a list of values (any of them matches)");
                claims.Add(new ClaimRequirement(claim, values.Select(v => TypedClaimValue((YamlScalarNode)v)).ToFrozenSet(StringComparer.Ordinal)));
            }
            if (claims.Count == 0)
                throw YamlRules.Error(file, cl, path + ".claims", "is empty (leave it out to require no claim)");
        }
        return new AccessPolicy(name, jwt, apiKey, none, scopes, methods.ToFrozenSet(StringComparer.Ordinal), cidrs, claims);
    }

    private JwtProvider ReadProvider(RulesFile file, string name, YamlMappingNode node, YamlNode keyNode, AuthzPolicySet? previous, IEnumerable<string> policyClaims)
    {
        var path = $"jwt_providers.{name}";
        CheckFields(file, node, path, ProviderFields);
        var issuer = Field(node, "issuer") is { } i ? Scalar(file, i, path + ".issuer") : "";
        var audiences = Field(node, "audiences") is { } a ? Strings(file, a, path + ".audiences").Select(x => x.Value).ToArray() : [];
        var algorithms = Field(node, "algorithms") is { } al ? Strings(file, al, path + ".algorithms").Select(x => x.Value).ToArray() : [];
        Uri? jwksUri = null;
        if (Field(node, "jwks_uri") is { } u && !Uri.TryCreate(Scalar(file, u, path + ".jwks_uri"), UriKind.Absolute, out jwksUri))
            throw YamlRules.Error(file, u, path + ".jwks_uri", "is not an absolute URL");
        Uri? discoveryUri = null;
        if (Field(node, "oidc_discovery_uri") is { } d && !Uri.TryCreate(Scalar(file, d, path + ".oidc_discovery_uri"), UriKind.Absolute, out discoveryUri))
            throw YamlRules.Error(file, d, path + ".oidc_discovery_uri", "is not an absolute URL");
        string? inline = Field(node, "jwks") is { } j ? (j is YamlScalarNode js ? js.Value : ToJson(j)) : null;
        string? jwksFile = Field(node, "jwks_file") is { } f ? RelativeTo(file, Scalar(file, f, path + ".jwks_file")) : null;
        var options = new JwtProviderOptions
        {
            Name = name,
            Issuer = issuer,
            Audiences = audiences,
            Algorithms = algorithms,
            JwksUri = jwksUri,
            OidcDiscoveryUri = discoveryUri,
            InlineJwks = inline,
            JwksFile = jwksFile,
            ClockSkew = Field(node, "clock_skew") is { } cs ? Duration(file, cs, path + ".clock_skew") : TimeSpan.FromSeconds(60),
            MaxLifetime = Field(node, "max_lifetime") is { } ml ? Duration(file, ml, path + ".max_lifetime") : null,
            RequireTyp = Field(node, "typ") is { } t ? Scalar(file, t, path + ".typ") : null,
            PlanClaim = Field(node, "plan_claim") is { } pc ? ReadPlanClaim(file, pc, path + ".plan_claim") : null,
        };
        var errors = JwtProviderOptionsValidator.Validate(options, path);
        if (errors.Count > 0)
        {
            // The validator names camelCase option fields; the first error is enough to fix one at a time.
            var error = errors[0];
            var fieldEnd = error.IndexOf(": ", StringComparison.Ordinal);
            var field = fieldEnd > 0 ? error[..fieldEnd] : path;
            var at = Field(node, SnakeField(field)) ?? keyNode;
            throw YamlRules.Error(file, at, field, fieldEnd > 0 ? error[(fieldEnd + 2)..] : error);
        }
        if (previous?.Providers.FirstOrDefault(p => p.Name == name && p.Keys.SameKeySource(options)) is { } same)
        {
            // Nothing a token is judged by changed either: the same provider, so its validated tokens stay cached.
            return same.ValidatesAs(options, policyClaims) ? same : new JwtProvider(options, same.Keys, policyClaims);
        }
        var http = jwksUri is null && discoveryUri is null ? null : _http;
        JwksSource source;
        try
        {
            source = new JwksSource(options, http, _time, _jwksMetrics, _loggers?.CreateLogger<JwksSource>());
        }
        catch (ArgumentException e)
        {
            throw YamlRules.Error(file, keyNode, path, e.Message);
        }
        return new JwtProvider(options, source, policyClaims);
    }

    /// <summary>
    /// <c>plan_claim: plan</c> (one claim name, as written: <c>https://acme.example/plan</c> is one name, dots and slashes
    /// included) or <c>plan_claim: [app_metadata, plan]</c> (member names through nested objects).
    /// </summary>
    private static string[] ReadPlanClaim(RulesFile file, YamlNode node, string path)
    {
        var names = Strings(file, node, path).Select(x => x.Value).ToArray();
        if (JwtProviderOptionsValidator.PlanClaimProblem(names) is { } problem)
            throw YamlRules.Error(file, node, path, $"{problem} (it is {JwtProviderOptionsValidator.PlanClaimRule})");
        return names;
    }

    private static string SnakeField(string field)
    {
        var leaf = field[(field.LastIndexOf('.') + 1)..];
        return leaf switch
        {
            "jwksUri" => "jwks_uri",
            "oidcDiscoveryUri" => "oidc_discovery_uri",
            "inlineJwks" or "jwks" => "jwks",
            "jwksFile" => "jwks_file",
            "clockSkew" => "clock_skew",
            "maxLifetime" => "max_lifetime",
            "requireTyp" => "typ",
            "planClaim" => "plan_claim",
            _ => leaf,
        };
    }

    // A policy's claim value with the JSON type a token's must have: unquoted true/false a boolean, an unquoted JSON
    // number a number (compared as written: 5 is not 5.0), anything else (quoted "true" or "5" included) a string.
    private static string TypedClaimValue(YamlScalarNode node)
    {
        var text = node.Value!;
        if (node.Style is not YamlDotNet.Core.ScalarStyle.Plain)
            return TypedClaim.OfString(text);
        if (text is "true" or "false")
            return TypedClaim.OfBoolean(text == "true");
        return JsonNumberPattern().IsMatch(text) ? TypedClaim.OfNumber(text) : TypedClaim.OfString(text);
    }

    private static TenantPolicy ReadTenant(RulesFile file, string name, YamlMappingNode node, Dictionary<string, JwtProvider> providers,
        Dictionary<string, IReadOnlyList<TokenSource>> providerSources, Draft draft, out List<(string Host, YamlNode Node)> hosts)
    {
        var path = $"tenants.{name}";
        CheckFields(file, node, path, TenantFields);
        hosts = [];
        if (Field(node, "hosts") is { } h)
        {
            foreach (var (value, valueNode) in Strings(file, h, path + ".hosts"))
            {
                var host = AuthorizationDecider.NormalizeHost(value);
                if (host.Length == 0)
                    throw YamlRules.Error(file, valueNode, path + ".hosts", "a host is empty");
                hosts.Add((host, valueNode));
            }
        }
        var plan = Field(node, "plan") is { } p ? Scalar(file, p, path + ".plan") : null;
        var jwt = new List<JwtProvider>();
        if (Field(node, "jwt") is { } j)
        {
            foreach (var (value, valueNode) in Strings(file, j, path + ".jwt"))
            {
                if (!providers.TryGetValue(value, out var provider))
                    throw YamlRules.Error(file, valueNode, path + ".jwt", $"no jwt_providers entry named '{value}'");
                jwt.Add(provider);
            }
        }
        var apiKeys = Field(node, "api_keys") is { } ak && Bool(file, ak, path + ".api_keys");
        // The tenant's own list wins; else every place one of its providers reads from (in order); else Bearer.
        IReadOnlyList<TokenSource> sources = Field(node, "tokens_from") is { } from
            ? ReadTokenSources(file, from, path + ".tokens_from", draft.ApiKeys, draft.Identity)
            : jwt.SelectMany(p => providerSources.GetValueOrDefault(p.Options.Name) ?? []).Distinct().ToArray() is { Length: > 0 } union ? union
            : [TokenSource.Bearer];
        var locator = sources is [{ Kind: TokenSourceKind.Bearer }] ? TokenLocator.Default : new TokenLocator(sources);
        var routes = new List<KeyValuePair<string, string>>();
        if (Field(node, "routes") is { } rs)
        {
            if (rs is not YamlMappingNode routeMap)
                throw YamlRules.Error(file, rs, path + ".routes", "is a mapping path prefix → policy (e.g. /admin: admin)");
            foreach (var (k, v) in routeMap.Children)
            {
                var prefix = Key(file, k, path + ".routes");
                var normalised = RequestPath.Normalize(prefix);
                if (normalised is null || !string.Equals(normalised, prefix, StringComparison.OrdinalIgnoreCase) || prefix.Length > 1 && prefix.EndsWith('/'))
                    throw YamlRules.Error(file, k, $"{path}.routes", $"'{prefix}' is not a plain path prefix (starts with /, no trailing /, no dot segments, escapes or ;)");
                var policyName = Scalar(file, v, $"{path}.routes.{prefix}");
                if (!draft.Policies.ContainsKey(policyName))
                    throw YamlRules.Error(file, v, $"{path}.routes.{prefix}", $"no policies entry named '{policyName}'");
                if (routes.Any(r => r.Key == normalised))
                    throw YamlRules.Error(file, k, $"{path}.routes", $"prefix '{prefix}' is listed twice (prefixes match case-insensitively)");
                routes.Add(new(normalised, policyName));
            }
        }
        routes.Sort((a, b) => b.Key.Length.CompareTo(a.Key.Length));
        return new TenantPolicy(name, hosts.Select(x => x.Host).ToArray(), plan, jwt, apiKeys, sources, locator, routes);
    }

    /// <summary>
    /// <c>tokens_from: [bearer, header:x-id-token, query:access_token, cookie:session]</c> (or <c>{header: x-id-token}</c>
    /// items). A place an API key is read from cannot also hold tokens: which credential was meant would be a guess.
    /// </summary>
    private static TokenSource[] ReadTokenSources(RulesFile file, YamlNode value, string path, ApiKeySettings? apiKeys, IdentityHeaders identity)
    {
        var sources = new List<TokenSource>();
        foreach (var item in Sequence(file, value, path))
        {
            string kind, name;
            if (item is YamlMappingNode map && map.Children.Count == 1)
            {
                var (k, v) = map.Children.First();
                kind = Key(file, k, path);
                name = Scalar(file, v, $"{path}.{kind}");
            }
            else
            {
                var text = Scalar(file, item, path);
                var colon = text.IndexOf(':', StringComparison.Ordinal);
                (kind, name) = colon < 0 ? (text, "") : (text[..colon].Trim(), text[(colon + 1)..].Trim());
            }
            TokenSource source = kind switch
            {
                "bearer" when name.Length == 0 => TokenSource.Bearer,
                "header" when HeaderPattern().IsMatch(name) && name is not ("host" or "authorization" or "cookie") => new(TokenSourceKind.Header, name),
                "query" when QueryNamePattern().IsMatch(name) => new(TokenSourceKind.Query, name),
                "cookie" when CookieNamePattern().IsMatch(name) => new(TokenSourceKind.Cookie, name),
                _ => throw YamlRules.Error(file, item, path,
                    "a token source is bearer, header:NAME (lower-case, not host/authorization/cookie), query:NAME or cookie:NAME"),
            };
            if (source.Kind == TokenSourceKind.Header && source.Name == apiKeys?.Header
                || source.Kind == TokenSourceKind.Query && source.Name == apiKeys?.Query)
            {
                throw YamlRules.Error(file, item, path, $"'{source.Name}' is where API keys are read (api_keys); a token cannot be read there too");
            }
            // authz sets identity headers on allow; a token read from one of them would be overwritten or removed.
            if (source.Kind == TokenSourceKind.Header
                && (source.Name == identity.Tenant || source.Name == identity.Subject || source.Name == identity.Client || identity.Claims.Any(c => c.Value == source.Name)))
            {
                throw YamlRules.Error(file, item, path, $"'{source.Name}' is an identity header (identity_headers); a token cannot be read there");
            }
            if (!sources.Contains(source))
                sources.Add(source);
        }
        if (sources.Count == 0)
            throw YamlRules.Error(file, value, path, "lists at least one place (e.g. bearer)");
        return [.. sources];
    }

    private ApiKeySettings ReadApiKeys(RulesFile file, YamlNode value)
    {
        if (value is not YamlMappingNode node)
            throw YamlRules.Error(file, value, "api_keys", "is a mapping (file or redis, header, query, prefix)");
        CheckFields(file, node, "api_keys", ApiKeyFields);
        var header = Field(node, "header") is { } h ? HeaderName(file, h, "api_keys.header") : "x-api-key";
        var query = Field(node, "query") is { } q ? Scalar(file, q, "api_keys.query") : null;
        if (query is { Length: 0 })
            throw YamlRules.Error(file, node, "api_keys.query", "is empty");
        // Matched and stripped by its raw name: one that needs percent-encoding could never be written as configured.
        if (query is not null && !QueryNamePattern().IsMatch(query))
            throw YamlRules.Error(file, Field(node, "query")!, "api_keys.query", $"'{query}' is not a plain query parameter name (letters, digits, - . _ ~)");
        // Keys are checked against one prefix: keys made with `legate keys create --prefix X` need prefix: X here.
        var format = ApiKeyFormat.Default;
        if (Field(node, "prefix") is { } p)
        {
            var prefix = Scalar(file, p, "api_keys.prefix");
            if (!ApiKeyFormat.IsPrefix(prefix))
                throw YamlRules.Error(file, p, "api_keys.prefix", $"'{prefix}' is not a key prefix: {ApiKeyFormat.PrefixRule} (the --prefix given to legate keys create)");
            format = new ApiKeyFormat(prefix);
        }
        var fileNode = Field(node, "file");
        var redis = Field(node, "redis") is { } r && Bool(file, r, "api_keys.redis");
        if ((fileNode is null) == !redis)
            throw YamlRules.Error(file, node, "api_keys", "needs exactly one store: file: keys.yaml (relative to this file) or redis: true");

        IApiKeyStore store;
        string? keysPath = null;
        if (redis)
        {
            if (!_stores.HasRedis)
                throw YamlRules.Error(file, Field(node, "redis"), "api_keys.redis", "needs the shared Redis connection: set Legate:Redis:Configuration");
            var ttl = Field(node, "cache_ttl") is { } c ? Duration(file, c, "api_keys.cache_ttl") : TimeSpan.FromSeconds(2);
            if (ttl > TimeSpan.FromMinutes(1))
                throw YamlRules.Error(file, Field(node, "cache_ttl"), "api_keys.cache_ttl", "is at most 1m (it bounds how late a revocation takes effect)");
            store = _stores.Redis(ttl);
        }
        else
        {
            if (Field(node, "cache_ttl") is { } c)
                throw YamlRules.Error(file, c, "api_keys.cache_ttl", "applies to the Redis store only (a keys file is reloaded when it changes)");
            keysPath = RelativeTo(file, Scalar(file, fileNode!, "api_keys.file"));
            try
            {
                store = _stores.File(keysPath);
            }
            catch (RulesException e)
            {
                throw YamlRules.Error(file, fileNode, "api_keys.file", e.Message);
            }
        }
        var validator = new ApiKeyValidator(store, _time, format, _loggers?.CreateLogger<ApiKeyValidator>());
        return new ApiKeySettings(validator, new ApiKeyLocator(header, queryParameter: query), header, query, keysPath);
    }

    /// <summary><c>client_address: source | x-envoy-external-address | x-forwarded-for</c>, or <c>{from: x-forwarded-for, trusted_hops: 1}</c>.</summary>
    private static ClientAddressSettings ReadClientAddress(RulesFile file, YamlNode value)
    {
        var fromNode = value;
        var hops = 0;
        if (value is YamlMappingNode map)
        {
            CheckFields(file, map, "client_address", FrozenSet.Create(StringComparer.Ordinal, "from", "trusted_hops"));
            fromNode = Field(map, "from") ?? throw YamlRules.Error(file, map, "client_address.from", "is required");
            if (Field(map, "trusted_hops") is { } h)
                hops = (int)WholeNumber(file, h, "client_address.trusted_hops", 0, 16);
        }
        var source = Scalar(file, fromNode, "client_address") switch
        {
            "source" => ClientAddressSource.Source,
            "x-envoy-external-address" => ClientAddressSource.EnvoyExternalAddress,
            "x-forwarded-for" => ClientAddressSource.ForwardedFor,
            var other => throw YamlRules.Error(file, fromNode, "client_address", $"'{other}' is not source, x-envoy-external-address or x-forwarded-for"),
        };
        if (hops > 0 && source != ClientAddressSource.ForwardedFor)
            throw YamlRules.Error(file, value, "client_address.trusted_hops", "applies to x-forwarded-for only");
        return new ClientAddressSettings(source, hops);
    }

    /// <summary><c>failure_throttle: {max_failures: 20, window: 1m}</c>.</summary>
    private static FailureThrottleSettings ReadFailureThrottle(RulesFile file, YamlNode value)
    {
        var map = Mapping(file, value, "failure_throttle", "is a mapping (max_failures, window)");
        CheckFields(file, map, "failure_throttle", FrozenSet.Create(StringComparer.Ordinal, "max_failures", "window"));
        var max = Field(map, "max_failures") ?? throw YamlRules.Error(file, map, "failure_throttle.max_failures", "is required");
        var window = Field(map, "window") ?? throw YamlRules.Error(file, map, "failure_throttle.window", "is required");
        var span = Duration(file, window, "failure_throttle.window");
        if (span < TimeSpan.FromSeconds(1) || span > TimeSpan.FromHours(1))
            throw YamlRules.Error(file, window, "failure_throttle.window", "is between 1s and 1h");
        return new FailureThrottleSettings((int)WholeNumber(file, max, "failure_throttle.max_failures", 1, 1_000_000), span);
    }

    private static IdentityHeaders ReadIdentity(RulesFile file, YamlNode value)
    {
        if (value is not YamlMappingNode node)
            throw YamlRules.Error(file, value, "identity_headers", "is a mapping (tenant, subject, client, claims)");
        CheckFields(file, node, "identity_headers", IdentityFields);
        var d = IdentityHeaders.Default;
        var tenant = Field(node, "tenant") is { } t ? HeaderName(file, t, "identity_headers.tenant") : d.Tenant;
        var subject = Field(node, "subject") is { } s ? HeaderName(file, s, "identity_headers.subject") : d.Subject;
        var client = Field(node, "client") is { } c ? HeaderName(file, c, "identity_headers.client") : d.Client;
        var claims = new List<KeyValuePair<string, string>>();
        var names = new HashSet<string>(StringComparer.Ordinal) { tenant, subject, client };
        if (names.Count != 3)
            throw YamlRules.Error(file, node, "identity_headers", "tenant, subject and client need three different headers");
        if (Field(node, "claims") is { } cl)
        {
            if (cl is not YamlMappingNode map)
                throw YamlRules.Error(file, cl, "identity_headers.claims", "is a mapping claim → header");
            foreach (var (k, v) in map.Children)
            {
                var claim = Key(file, k, "identity_headers.claims");
                var header = HeaderName(file, v, $"identity_headers.claims.{claim}");
                if (!names.Add(header))
                    throw YamlRules.Error(file, v, $"identity_headers.claims.{claim}", $"header '{header}' is used twice");
                claims.Add(new(claim, header));
            }
        }
        return new IdentityHeaders(tenant, subject, client, claims);
    }

    private static void CheckName(RulesFile file, YamlNode node, string path, string name)
    {
        if (!NamePattern().IsMatch(name))
            throw YamlRules.Error(file, node, path, $"name '{name}' must match [a-z0-9][a-z0-9._-]* (at most 64 characters)");
    }

    private static string HeaderName(RulesFile file, YamlNode node, string path)
    {
        var name = Scalar(file, node, path);
        if (!HeaderPattern().IsMatch(name) || name is "host" or "authorization")
            throw YamlRules.Error(file, node, path, $"'{name}' is not a usable header name (lower-case token, not host/authorization/pseudo-header)");
        return name;
    }

    /// <summary>An inline JWKS written as YAML, as JSON text (every scalar a string: JWK members are strings).</summary>
    private static string ToJson(YamlNode node)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
            Write(writer, node);
        return Encoding.UTF8.GetString(stream.ToArray());

        static void Write(Utf8JsonWriter writer, YamlNode node)
        {
            switch (node)
            {
                case YamlMappingNode map:
                    writer.WriteStartObject();
                    foreach (var (k, v) in map.Children)
                    {
                        writer.WritePropertyName(((YamlScalarNode)k).Value ?? "");
                        Write(writer, v);
                    }
                    writer.WriteEndObject();
                    break;
                case YamlSequenceNode seq:
                    writer.WriteStartArray();
                    foreach (var item in seq)
                        Write(writer, item);
                    writer.WriteEndArray();
                    break;
                case YamlScalarNode scalar:
                    writer.WriteStringValue(scalar.Value);
                    break;
                default:
                    writer.WriteNullValue();
                    break;
            }
        }
    }

    [GeneratedRegex("^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?\\z")]
    private static partial Regex JsonNumberPattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}\\z")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Z][A-Z0-9-]{0,31}\\z")]
    private static partial Regex MethodPattern();

    [GeneratedRegex("^[a-z0-9!#$%&'*+.^_`|~-]{1,128}\\z")]
    private static partial Regex HeaderPattern();

    [GeneratedRegex("^[A-Za-z0-9._~-]{1,128}\\z")]
    private static partial Regex QueryNamePattern();

    [GeneratedRegex("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}\\z")]
    private static partial Regex CookieNamePattern();
}
