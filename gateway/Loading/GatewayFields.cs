using System.Collections.Frozen;

namespace Legate.Gateway.Loading;

/// <summary>
/// The field names of every section of the gateway file, keyed by the section's <c>$defs</c> name in
/// <c>schema/gateway.schema.json</c> (<c>""</c> = the top level). The loader checks keys against these sets, and a test
/// checks that the schema declares exactly the same names, so editor completion and <c>legate validate</c> agree.
/// </summary>
internal static class GatewayFields
{
    public static readonly FrozenSet<string> Top = Set("services", "listeners", "backends", "routes", "tenants", "jwt_providers",
        "policies", "api_keys", "identity_headers", "strip_credentials", "strip_authorization", "client_address", "quotas", "plans", "default_policy");
    public static readonly FrozenSet<string> Services = Set("authz", "ratelimit", "statsink", "tls");
    public static readonly FrozenSet<string> ServicesTls = Set("ca_file", "cert_file", "key_file");
    public static readonly FrozenSet<string> AuthzService = Set("address", "timeout", "failure_mode", "sni");
    public static readonly FrozenSet<string> RateLimitService = Set("address", "timeout", "failure_mode", "domain", "sni");
    public static readonly FrozenSet<string> StatSinkService = Set("address", "flush_interval", "sni");
    public static readonly FrozenSet<string> Listener = Set("name", "address", "port", "tls", "https_redirect");
    public static readonly FrozenSet<string> ListenerTls = Set("certificates", "min_version", "client_ca_file");
    public static readonly FrozenSet<string> TlsCertificate = Set("cert_file", "key_file");
    public static readonly FrozenSet<string> HttpsRedirect = Set("port");
    public static readonly FrozenSet<string> Backend = Set("urls", "connect_timeout", "http2", "tls", "health_check", "circuit_breakers", "outlier_detection");
    public static readonly FrozenSet<string> BackendTls = Set("sni", "ca_file");
    public static readonly FrozenSet<string> HealthCheck = Set("path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold");
    public static readonly FrozenSet<string> CircuitBreakers = Set("max_connections", "max_pending_requests", "max_requests", "max_retries");
    public static readonly FrozenSet<string> OutlierDetection = Set("consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent");
    public static readonly FrozenSet<string> Route = Set("name", "match", "backend", "backends", "rewrite", "timeout", "retries", "cors", "auth", "tenant", "rate_limits",
        "request_headers", "response_headers", "rewrite_host");
    public static readonly FrozenSet<string> Match = Set("prefix", "path", "regex", "methods", "headers", "query", "hosts");
    public static readonly FrozenSet<string> HeaderEdits = Set("set", "add", "remove");
    public static readonly FrozenSet<string> ValueCondition = Set("exact", "prefix", "suffix", "contains", "regex", "present", "invert");
    public static readonly FrozenSet<string> WeightedBackend = Set("name", "weight");
    public static readonly FrozenSet<string> Retries = Set("attempts", "on", "per_try_timeout");
    public static readonly FrozenSet<string> Cors = Set("origins", "methods", "headers", "expose_headers", "max_age", "credentials");
    public static readonly FrozenSet<string> RouteLimit = Set("by", "requests", "per");
    public static readonly FrozenSet<string> Quota = Set("requests", "per");
    public static readonly FrozenSet<string> Quotas = Set("tenant", "client", "source");
    public static readonly FrozenSet<string> TenantQuotas = Set("tenant", "client");
    public static readonly FrozenSet<string> Plan = Set("tenant", "client");
    public static readonly FrozenSet<string> Tenant = Set("hosts", "plan", "jwt", "api_keys", "tokens_from", "quotas");
    public static readonly FrozenSet<string> Policy = Set("credentials", "scopes", "methods", "client_cidrs", "claims");
    public static readonly FrozenSet<string> JwtProvider = Set("issuer", "audiences", "algorithms", "jwks_uri", "oidc_discovery_uri", "jwks", "jwks_file", "clock_skew", "max_lifetime", "typ", "tokens_from", "plan_claim");
    public static readonly FrozenSet<string> ApiKeys = Set("file", "redis", "cache_ttl", "header", "query", "prefix");
    public static readonly FrozenSet<string> IdentityHeaders = Set("tenant", "subject", "client", "claims");

    /// <summary>Schema <c>$defs</c> name (<c>""</c> for the root) → the fields the loader accepts there.</summary>
    public static readonly FrozenDictionary<string, FrozenSet<string>> BySchemaDefinition = new Dictionary<string, FrozenSet<string>>
    {
        [""] = Top,
        ["services"] = Services,
        ["servicesTls"] = ServicesTls,
        ["authzService"] = AuthzService,
        ["ratelimitService"] = RateLimitService,
        ["statsinkService"] = StatSinkService,
        ["listener"] = Listener,
        ["listenerTls"] = ListenerTls,
        ["tlsCertificate"] = TlsCertificate,
        ["httpsRedirect"] = HttpsRedirect,
        ["backend"] = Backend,
        ["backendTls"] = BackendTls,
        ["healthCheck"] = HealthCheck,
        ["circuitBreakers"] = CircuitBreakers,
        ["outlierDetection"] = OutlierDetection,
        ["route"] = Route,
        ["match"] = Match,
        ["valueCondition"] = ValueCondition,
        ["headerEdits"] = HeaderEdits,
        ["weightedBackend"] = WeightedBackend,
        ["retries"] = Retries,
        ["cors"] = Cors,
        ["routeLimit"] = RouteLimit,
        ["quota"] = Quota,
        ["quotas"] = Quotas,
        ["tenantQuotas"] = TenantQuotas,
        ["plan"] = Plan,
        ["tenant"] = Tenant,
        ["policy"] = Policy,
        ["jwtProvider"] = JwtProvider,
        ["apiKeys"] = ApiKeys,
        ["identityHeaders"] = IdentityHeaders,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static FrozenSet<string> Set(params string[] names) => names.ToFrozenSet(StringComparer.Ordinal);
}
