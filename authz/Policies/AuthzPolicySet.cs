using System.Collections.Frozen;
using Legate.Authz.ApiKeys;
using Legate.Authz.Jwt;

namespace Legate.Authz.Policies;

/// <summary>One loaded policy file: tenants, JWT providers, access policies, API key settings, identity headers. Immutable.</summary>
public sealed class AuthzPolicySet : IDisposable
{
    internal AuthzPolicySet(
        FrozenDictionary<string, TenantPolicy> tenants,
        FrozenDictionary<string, TenantPolicy> tenantsByHost,
        FrozenDictionary<string, AccessPolicy> policies,
        IReadOnlyList<JwtProvider> providers,
        ApiKeySettings? apiKeys,
        IdentityHeaders identityHeaders,
        bool stripCredentials,
        bool stripAuthorization,
        ClientAddressSettings clientAddress,
        FailureThrottleSettings? failureThrottle)
    {
        ClientAddress = clientAddress;
        FailureThrottle = failureThrottle;
        Tenants = tenants;
        TenantsByHost = tenantsByHost;
        Policies = policies;
        Providers = providers;
        ApiKeys = apiKeys;
        IdentityHeaders = identityHeaders;
        StripCredentials = stripCredentials;
        StripAuthorization = stripAuthorization;
    }

    public FrozenDictionary<string, TenantPolicy> Tenants { get; }

    /// <summary>Normalised host (lower-case, no port, no trailing dot) → tenant.</summary>
    public FrozenDictionary<string, TenantPolicy> TenantsByHost { get; }

    public FrozenDictionary<string, AccessPolicy> Policies { get; }

    /// <summary>Every provider, for starting and disposing their key sources (a source may be kept by the next set).</summary>
    public IReadOnlyList<JwtProvider> Providers { get; }

    /// <summary>Null when no keys file is configured: API keys are then never accepted.</summary>
    public ApiKeySettings? ApiKeys { get; }

    public IdentityHeaders IdentityHeaders { get; }

    /// <summary>Remove the API key header / query parameter before the request goes upstream (default true).</summary>
    public bool StripCredentials { get; }

    /// <summary>Remove the JWT before the upstream after it was accepted, from every place the tenant reads tokens from (default false).</summary>
    public bool StripAuthorization { get; }

    /// <summary>Where a client's address is read for <c>client_cidrs</c> rules.</summary>
    public ClientAddressSettings ClientAddress { get; }

    /// <summary>Null when off (the default): then invalid credentials are not counted per address.</summary>
    public FailureThrottleSettings? FailureThrottle { get; }

    internal void Start()
    {
        foreach (var provider in Providers)
            provider.Keys.Start();
    }

    /// <summary>Disposes the key sources of every provider.</summary>
    public void Dispose() => Retire(null);

    /// <summary>
    /// This set was replaced by <paramref name="successor"/>: disposes the key sources that it did not keep (a provider
    /// removed, or its key source changed), so the kept ones go on serving their keys.
    /// </summary>
    internal void Retire(AuthzPolicySet? successor)
    {
        foreach (var provider in Providers)
        {
            if (successor?.Holds(provider.Keys) != true)
                provider.Keys.Dispose();
        }
    }

    /// <summary>Whether one of this set's providers has <paramref name="keys"/> (a source a reload kept).</summary>
    internal bool Holds(JwksSource keys) => Providers.Any(p => ReferenceEquals(p.Keys, keys));
}

/// <param name="TokenSources">Where this tenant's JWTs are looked for (the tenant's <c>tokens_from</c>, else its providers', else Bearer).</param>
/// <param name="Tokens">The locator over <paramref name="TokenSources"/>.</param>
/// <param name="Routes">Path prefix (normalised) → policy name, longest prefix first; used when Envoy names no policy.</param>
public sealed record TenantPolicy(string Name, IReadOnlyList<string> Hosts, string? Plan, IReadOnlyList<JwtProvider> JwtProviders, bool ApiKeys,
    IReadOnlyList<TokenSource> TokenSources, TokenLocator Tokens, IReadOnlyList<KeyValuePair<string, string>> Routes);

/// <summary>
/// Which credentials a route accepts (any of), the scopes all required, the methods allowed (empty = any), the client
/// networks allowed (empty = any), the token claims all required (only for a policy that accepts JWTs alone).
/// </summary>
public sealed record AccessPolicy(string Name, bool AllowJwt, bool AllowApiKey, bool AllowNone, IReadOnlyList<string> Scopes, FrozenSet<string> Methods,
    IReadOnlyList<System.Net.IPNetwork> ClientCidrs, IReadOnlyList<ClaimRequirement> Claims);

/// <summary>
/// A claim the token must carry with one of <paramref name="Values"/> (typed, see <see cref="Jwt.TypedClaim"/>): a scalar
/// claim equal to one, or an array claim with an element equal to one; type and value must both match.
/// </summary>
public sealed record ClaimRequirement(string Name, FrozenSet<string> Values)
{
    public bool IsMetBy(Jwt.JwtIdentity token)
    {
        if (token.PolicyClaims?.TryGetValue(Name, out var values) != true)
            return false;
        for (var i = 0; i < values!.Count; i++)
        {
            if (Values.Contains(values[i]))
                return true;
        }
        return false;
    }
}

/// <param name="File">The keys file (full path), or null for the Redis store.</param>
public sealed record ApiKeySettings(ApiKeyValidator Validator, ApiKeyLocator Locator, string? Header, string? Query, string? File);

/// <summary>Names of the headers the service sets on an allowed request (lower-case); claim name → header.</summary>
public sealed record IdentityHeaders(string Tenant, string Subject, string Client, IReadOnlyList<KeyValuePair<string, string>> Claims)
{
    public static IdentityHeaders Default { get; } = new("x-legate-tenant", "x-legate-subject", "x-legate-client", []);
}
