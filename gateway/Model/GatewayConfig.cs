using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Model;

/// <summary>One loaded, validated gateway file: everything <c>legate render</c> needs, names already cross-checked.</summary>
internal sealed record GatewayConfig(
    string SourcePath,
    ServicesConfig Services,
    IReadOnlyList<ListenerConfig> Listeners,
    IReadOnlyList<BackendConfig> Backends,
    IReadOnlyList<RouteConfig> Routes,
    IReadOnlyList<TenantConfig> Tenants,
    IReadOnlyList<JwtProviderConfig> JwtProviders,
    IReadOnlyList<PolicyConfig> Policies,
    ApiKeysConfig? ApiKeys,
    YamlMappingNode? IdentityHeaders,
    bool? StripCredentials,
    bool? StripAuthorization,
    QuotaSet Quotas,
    IReadOnlyList<PlanConfig> Plans,
    string DefaultPolicy,
    YamlNode? ClientAddress = null,
    YamlMappingNode? Root = null)
{
    /// <summary>The route value that turns ext_authz off for a route.</summary>
    public const string NoAuth = "none";
}

/// <summary>Where Envoy finds the three services and how it calls them; <paramref name="Tls"/>: over TLS instead of h2c.</summary>
internal sealed record ServicesConfig(ServiceAddress Authz, TimeSpan AuthzTimeout, bool AuthzFailOpen,
    ServiceAddress RateLimit, TimeSpan RateLimitTimeout, bool RateLimitFailClosed, string RateLimitDomain,
    ServiceAddress StatSink, TimeSpan StatsFlushInterval, ServiceLinkTls? Tls = null)
{
    public static ServicesConfig Default { get; } = new(
        new("authz", 9001), TimeSpan.FromMilliseconds(250), false,
        new("ratelimit", 9002), TimeSpan.FromMilliseconds(100), false, "edge",
        new("statsink", 9003), TimeSpan.FromSeconds(10));
}

/// <summary>
/// TLS on Envoy's links to authz, ratelimit and statsink (<c>services.tls</c>). File paths are Envoy's (absolute, as
/// Envoy sees them), never read or copied by render, like a listener's.
/// </summary>
/// <param name="CaFile">The PEM CA bundle the services' certificates must chain to.</param>
/// <param name="Client">Envoy's client certificate and key (mutual TLS), or none.</param>
/// <param name="AuthzSni">The name authz's certificate must carry and Envoy sends as SNI; null: the address's host.</param>
internal sealed record ServiceLinkTls(string CaFile, TlsCertificateFiles? Client, string? AuthzSni = null, string? RateLimitSni = null, string? StatSinkSni = null);

internal readonly record struct ServiceAddress(string Host, int Port)
{
    public override string ToString() => $"{Host}:{Port}";
}

/// <summary>
/// A public listener: plain HTTP, HTTPS (<paramref name="Tls"/>), or plain HTTP answering every request with a redirect
/// to https on <paramref name="HttpsRedirectPort"/> (never both).
/// </summary>
internal sealed record ListenerConfig(string Name, string Address, int Port, ListenerTlsConfig? Tls = null, int? HttpsRedirectPort = null)
{
    public bool Redirects => HttpsRedirectPort is not null;
}

/// <summary>
/// TLS termination on a listener. The file paths are Envoy's (absolute, as Envoy sees them): render neither reads nor
/// copies them, so private keys never enter the rendered output and Envoy itself re-reads rotated files.
/// </summary>
/// <param name="Certificates">In order; Envoy picks one per connection by SNI against each certificate's DNS names; the first is the default.</param>
/// <param name="ClientCaFile">When set, clients must present a certificate issued by this CA bundle (mutual TLS).</param>
internal sealed record ListenerTlsConfig(IReadOnlyList<TlsCertificateFiles> Certificates, TlsVersion MinVersion, string? ClientCaFile);

/// <summary>A PEM certificate chain and its private key, both absolute paths as Envoy sees them.</summary>
internal sealed record TlsCertificateFiles(string CertFile, string KeyFile);

internal enum TlsVersion
{
    Tls12,
    Tls13,
}

internal sealed record BackendConfig(
    string Name,
    IReadOnlyList<ServiceAddress> Endpoints,
    bool Tls,
    string? Sni,
    string? CaFile,
    TimeSpan ConnectTimeout,
    bool Http2,
    HealthCheckConfig? HealthCheck,
    CircuitBreakersConfig? CircuitBreakers,
    OutlierDetectionConfig? OutlierDetection);

internal sealed record HealthCheckConfig(string Path, TimeSpan Interval, TimeSpan Timeout, int HealthyThreshold, int UnhealthyThreshold);

internal sealed record CircuitBreakersConfig(long? MaxConnections, long? MaxPendingRequests, long? MaxRequests, long? MaxRetries);

internal sealed record OutlierDetectionConfig(long Consecutive5xx, TimeSpan Interval, TimeSpan BaseEjectionTime, long MaxEjectionPercent);

internal enum PathMatchKind
{
    Prefix,
    Exact,
    Regex,
}

internal sealed record RouteMatch(
    PathMatchKind Kind,
    string Path,
    IReadOnlyList<string> Methods,
    IReadOnlyList<ValueCondition> Headers,
    IReadOnlyList<ValueCondition> Query,
    IReadOnlyList<string> Hosts)
{
    /// <summary>True when every request <paramref name="other"/> matches is also matched by this one (it shadows <paramref name="other"/>).</summary>
    public bool Covers(RouteMatch other)
    {
        if (Hosts.Count > 0 && (other.Hosts.Count == 0 || other.Hosts.Except(Hosts).Any()))
            return false;
        if (Methods.Count > 0 && (other.Methods.Count == 0 || other.Methods.Except(Methods).Any()))
            return false;
        // Each condition of this route must follow from one of the other's on the same name (none: it may be missing there).
        if (!Headers.All(c => other.Headers.Any(d => d.Implies(c))) || !Query.All(c => other.Query.Any(d => d.Implies(c))))
            return false;
        return (Kind, other.Kind) switch
        {
            (PathMatchKind.Prefix, PathMatchKind.Prefix or PathMatchKind.Exact) =>
                Path == "/" || other.Path == Path || other.Path.StartsWith(Path + "/", StringComparison.Ordinal),
            (PathMatchKind.Prefix, PathMatchKind.Regex) => Path == "/",
            (PathMatchKind.Exact, PathMatchKind.Exact) or (PathMatchKind.Regex, PathMatchKind.Regex) => Path == other.Path,
            _ => false,
        };
    }
}

/// <summary>How a header or query parameter condition compares the value.</summary>
internal enum ValueMatchKind
{
    Exact,
    Prefix,
    Suffix,
    Contains,
    Regex,
    Present,
    Absent,
}

/// <summary>
/// A condition on one header or query parameter, as Envoy evaluates it: case-sensitive comparisons of the whole value
/// (a header sent several times: its values joined with ','; a query parameter: its first value); a regex must match
/// the whole value. A string condition needs the value there, <paramref name="Invert"/>ed too (Envoy's
/// <c>invert_match</c> never matches a missing header): inverted, it means "there, and not matching".
/// </summary>
internal sealed record ValueCondition(string Name, ValueMatchKind Kind, string Value = "", bool Invert = false)
{
    public static ValueCondition Exactly(string name, string value) => new(name, ValueMatchKind.Exact, value);

    /// <summary>
    /// True when every request meeting this condition also meets <paramref name="c"/>. Sound, not complete: regexes are
    /// compared by their text only (RE2 and .NET differ on what a pattern matches, so .NET cannot be asked), so an
    /// answer of false may still hide an implication, never the other way round.
    /// </summary>
    public bool Implies(ValueCondition c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (Name != c.Name)
            return false;
        if (this == c)
            return true;
        switch (c.Kind)
        {
            case ValueMatchKind.Present:
                return Kind != ValueMatchKind.Absent;
            case ValueMatchKind.Absent:
                return false;
        }
        if (Kind is ValueMatchKind.Present or ValueMatchKind.Absent)
            return false;
        if (!c.Invert)
            return !Invert && Within(this, c);
        // c: there and outside c's values. An inverted this: outside a set holding all of c's values; else inside a
        // set sharing none of them.
        return Invert ? Within(c, this) : Disjoint(this, c);
    }

    /// <summary>Every value <paramref name="a"/> accepts (ignoring inversion) <paramref name="b"/> accepts too.</summary>
    private static bool Within(ValueCondition a, ValueCondition b) => (a.Kind, b.Kind) switch
    {
        (ValueMatchKind.Regex, ValueMatchKind.Regex) => a.Value == b.Value,
        (_, ValueMatchKind.Regex) or (ValueMatchKind.Regex, _) => false,
        (ValueMatchKind.Exact, _) => Accepts(b, a.Value),
        (ValueMatchKind.Prefix, ValueMatchKind.Prefix) => a.Value.StartsWith(b.Value, StringComparison.Ordinal),
        (ValueMatchKind.Suffix, ValueMatchKind.Suffix) => a.Value.EndsWith(b.Value, StringComparison.Ordinal),
        (ValueMatchKind.Prefix or ValueMatchKind.Suffix or ValueMatchKind.Contains, ValueMatchKind.Contains) => a.Value.Contains(b.Value, StringComparison.Ordinal),
        _ => false,
    };

    /// <summary>No value is accepted by both (ignoring inversion); false when that cannot be told.</summary>
    private static bool Disjoint(ValueCondition a, ValueCondition b) => (a.Kind, b.Kind) switch
    {
        (ValueMatchKind.Regex, _) or (_, ValueMatchKind.Regex) => false,
        (ValueMatchKind.Exact, _) => !Accepts(b, a.Value),
        (_, ValueMatchKind.Exact) => !Accepts(a, b.Value),
        (ValueMatchKind.Prefix, ValueMatchKind.Prefix) => !a.Value.StartsWith(b.Value, StringComparison.Ordinal) && !b.Value.StartsWith(a.Value, StringComparison.Ordinal),
        (ValueMatchKind.Suffix, ValueMatchKind.Suffix) => !a.Value.EndsWith(b.Value, StringComparison.Ordinal) && !b.Value.EndsWith(a.Value, StringComparison.Ordinal),
        _ => false,
    };

    private static bool Accepts(ValueCondition m, string value) => m.Kind switch
    {
        ValueMatchKind.Exact => value == m.Value,
        ValueMatchKind.Prefix => value.StartsWith(m.Value, StringComparison.Ordinal),
        ValueMatchKind.Suffix => value.EndsWith(m.Value, StringComparison.Ordinal),
        ValueMatchKind.Contains => value.Contains(m.Value, StringComparison.Ordinal),
        _ => false,
    };
}

internal sealed record WeightedBackend(string Name, int Weight);

internal sealed record RetryConfig(int Attempts, IReadOnlyList<string> On, TimeSpan? PerTryTimeout);

internal sealed record CorsConfig(IReadOnlyList<string> Origins, IReadOnlyList<string> Methods, IReadOnlyList<string> Headers,
    IReadOnlyList<string> ExposeHeaders, TimeSpan? MaxAge, bool Credentials);

/// <summary>What a route limit counts by: the route as a whole, per source address, per tenant or per (tenant, client).</summary>
internal enum LimitScope
{
    Route,
    Source,
    Tenant,
    Client,
}

internal sealed record Quota(long Requests, QuotaUnit Per);

internal enum QuotaUnit
{
    Second,
    Minute,
    Hour,
    Day,
}

internal sealed record RouteLimit(LimitScope By, Quota Quota);

internal sealed record RouteConfig(
    string Name,
    RouteMatch Match,
    IReadOnlyList<WeightedBackend> Backends,
    string? Rewrite,
    TimeSpan? Timeout,
    RetryConfig? Retries,
    CorsConfig? Cors,
    string Auth,
    string? Tenant,
    IReadOnlyList<RouteLimit> RateLimits,
    HeaderEdits? RequestHeaders = null,
    HeaderEdits? ResponseHeaders = null,
    string? HostRewrite = null,
    bool AutoHostRewrite = false)
{
    public bool AuthDisabled => Auth == GatewayConfig.NoAuth;
}

/// <summary>
/// A route's edits of the request headers the backend gets, or of the response headers the client gets: <paramref name="Set"/>
/// replaces a header (or adds it), <paramref name="Add"/> appends a value, <paramref name="Remove"/> drops it. Values
/// are literal (render escapes Envoy's <c>%</c>); each name appears in one list at most.
/// </summary>
internal sealed record HeaderEdits(IReadOnlyList<KeyValuePair<string, string>> Set, IReadOnlyList<KeyValuePair<string, string>> Add, IReadOnlyList<string> Remove)
{
    public IEnumerable<string> Names => Set.Select(h => h.Key).Concat(Add.Select(h => h.Key)).Concat(Remove);
}

/// <summary>Per-tenant quotas: all of the tenant's traffic, and each of its clients.</summary>
internal sealed record QuotaSet(Quota? Tenant, Quota? Client, Quota? Source)
{
    public static QuotaSet None { get; } = new(null, null, null);
}

/// <summary>
/// A plan's quotas: <paramref name="Quotas"/> <c>Tenant</c> for each tenant whose <c>plan:</c> it is, <c>Client</c> for each
/// client whose plan authz reports as this one (the API key's plan or a JWT's plan claim, else its
/// tenant's). <c>Source</c> is never set.
/// </summary>
internal sealed record PlanConfig(string Name, QuotaSet Quotas);

/// <summary>A tenant; <paramref name="TokensFrom"/> is authz's <c>tokens_from</c>, carried over as written.</summary>
internal sealed record TenantConfig(string Name, IReadOnlyList<string> Hosts, string? Plan, IReadOnlyList<string> Jwt, bool ApiKeys, QuotaSet Quotas,
    YamlNode? TokensFrom = null);

/// <summary>A JWT provider: the authz fields, carried over as written (authz validates their meaning).</summary>
internal sealed record JwtProviderConfig(string Name, YamlMappingNode Node, string? JwksFile);

/// <summary>An access policy; <paramref name="ClientCidrs"/> and <paramref name="Claims"/> are authz's <c>client_cidrs</c> and
/// <c>claims</c>, carried over as written (authz validates their meaning).</summary>
internal sealed record PolicyConfig(string Name, IReadOnlyList<string> Credentials, IReadOnlyList<string> Scopes, IReadOnlyList<string> Methods,
    YamlNode? ClientCidrs = null, YamlNode? Claims = null);

/// <summary>The API key store: a keys file (path resolved against the gateway file) or the shared Redis, header and query parameter, and the keys' prefix.</summary>
internal sealed record ApiKeysConfig(string? File, string? Header, string? Query, bool Redis = false, string? CacheTtl = null, string? Prefix = null);

internal static class QuotaUnits
{
    public static string Name(this QuotaUnit unit) => unit switch
    {
        QuotaUnit.Second => "second",
        QuotaUnit.Minute => "minute",
        QuotaUnit.Hour => "hour",
        _ => "day",
    };

    public static long Seconds(this QuotaUnit unit) => unit switch
    {
        QuotaUnit.Second => 1,
        QuotaUnit.Minute => 60,
        QuotaUnit.Hour => 3600,
        _ => 86400,
    };
}
