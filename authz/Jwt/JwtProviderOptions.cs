namespace Legate.Authz.Jwt;

/// <summary>
/// One JWT issuer a route trusts. Exactly one key source: <see cref="JwksUri"/>, <see cref="OidcDiscoveryUri"/>,
/// <see cref="InlineJwks"/> or <see cref="JwksFile"/>. Remote URLs must be https; plain http is accepted only for a
/// loopback host (127.0.0.0/8, ::1, localhost), which tests and same-host sidecars use.
/// </summary>
public sealed record JwtProviderOptions
{
    public required string Name { get; init; }

    /// <summary>Exact <c>iss</c> value (ordinal compare, no trailing-slash leniency).</summary>
    public required string Issuer { get; init; }

    /// <summary>Accepted <c>aud</c> values; a token must name at least one (exact, ordinal).</summary>
    public IReadOnlyList<string> Audiences { get; init; } = [];

    /// <summary>Explicit allow-list, e.g. <c>["RS256","ES256"]</c>. Never empty, never "none", HS* never mixed with asymmetric.</summary>
    public IReadOnlyList<string> Algorithms { get; init; } = [];

    public Uri? JwksUri { get; init; }

    /// <summary>The issuer's <c>/.well-known/openid-configuration</c>; its <c>issuer</c> must equal <see cref="Issuer"/>.</summary>
    public Uri? OidcDiscoveryUri { get; init; }

    /// <summary>JWKS JSON text held in the configuration.</summary>
    public string? InlineJwks { get; init; }

    /// <summary>Path of a JWKS JSON file, re-read every <see cref="RefreshInterval"/>.</summary>
    public string? JwksFile { get; init; }

    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest accepted <c>exp - iat</c> (or <c>exp - nbf</c>, or <c>exp - now</c>); null = no limit.</summary>
    public TimeSpan? MaxLifetime { get; init; }

    /// <summary>Required <c>typ</c> header, e.g. "at+jwt" (case-insensitive, "application/" prefix optional); null = not checked.</summary>
    public string? RequireTyp { get; init; }

    public int MaxTokenBytes { get; init; } = 8 * 1024;

    /// <summary>
    /// The claim that names the caller's plan (authz's metadata <c>plan</c>): one member name, a top-level claim taken as
    /// written (<c>https://acme.example/plan</c> is one name, dots and slashes included), or the member names leading to
    /// it through nested objects (<c>["app_metadata", "plan"]</c>). Null: the plan is the tenant's.
    /// </summary>
    public IReadOnlyList<string>? PlanClaim { get; init; }

    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Each background refresh (and retry) comes up to this fraction of its period early, at random, so a fleet of
    /// replicas started together does not hit the issuer in lockstep. Never late: keys are at most RefreshInterval old.
    /// </summary>
    public double RefreshJitter { get; init; } = 0.1;

    /// <summary>Least time between two fetches triggered by requests (unknown <c>kid</c>, cold start).</summary>
    public TimeSpan MinRefetchInterval { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan HttpTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A JWKS (or discovery document) larger than this is a failed fetch.</summary>
    public int MaxJwksBytes { get; init; } = 256 * 1024;

    /// <summary>A JWKS with more keys than this is a failed fetch (bounds memory and key-selection work).</summary>
    public int MaxKeys { get; init; } = 32;
}

/// <summary>The JWS algorithms Legate verifies, and the key each needs.</summary>
public static class JwtAlgorithms
{
    public static bool IsSupported(string alg) => KeyKindOf(alg) != JwtKeyKind.None;

    public static bool IsSymmetric(string alg) => KeyKindOf(alg) == JwtKeyKind.Symmetric;

    internal static JwtKeyKind KeyKindOf(string alg) => alg switch
    {
        "RS256" or "RS384" or "RS512" or "PS256" or "PS384" or "PS512" => JwtKeyKind.Rsa,
        "ES256" => JwtKeyKind.EcP256,
        "ES384" => JwtKeyKind.EcP384,
        "ES512" => JwtKeyKind.EcP521,
        "HS256" or "HS384" or "HS512" => JwtKeyKind.Symmetric,
        _ => JwtKeyKind.None,
    };
}

internal enum JwtKeyKind
{
    None,
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Symmetric,
}

/// <summary>Checks provider options; every error names the field, e.g. <c>providers[0].algorithms: 'none' is not allowed</c>.</summary>
public static class JwtProviderOptionsValidator
{
    public static IReadOnlyList<string> Validate(JwtProviderOptions options, string path)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        void Error(string field, string message) => errors.Add($"{path}.{field}: {message}");

        if (string.IsNullOrWhiteSpace(options.Name))
            Error("name", "is required");
        if (string.IsNullOrWhiteSpace(options.Issuer))
            Error("issuer", "is required");
        if (options.Audiences is null || options.Audiences.Count == 0)
            Error("audiences", "at least one audience is required");
        else if (options.Audiences.Any(string.IsNullOrWhiteSpace))
            Error("audiences", "an audience is empty");

        if (options.Algorithms is null || options.Algorithms.Count == 0)
        {
            Error("algorithms", "an explicit list is required (there is no 'any')");
        }
        else
        {
            foreach (var alg in options.Algorithms)
            {
                if (string.Equals(alg, "none", StringComparison.OrdinalIgnoreCase))
                    Error("algorithms", "'none' is not allowed");
                else if (!JwtAlgorithms.IsSupported(alg))
                    Error("algorithms", $"'{alg}' is not supported (RS256/384/512, PS256/384/512, ES256/384/512, HS256/384/512)");
            }
            var symmetric = options.Algorithms.Any(JwtAlgorithms.IsSymmetric);
            var asymmetric = options.Algorithms.Any(a => JwtAlgorithms.IsSupported(a) && !JwtAlgorithms.IsSymmetric(a));
            if (symmetric && asymmetric)
                Error("algorithms", "HS* cannot be mixed with asymmetric algorithms in one provider (algorithm confusion)");
            if (symmetric && (options.JwksUri is not null || options.OidcDiscoveryUri is not null))
                Error("algorithms", "HS* keys are secrets and come only from inline or file JWKS, never a URL");
        }

        var sources = (options.JwksUri is null ? 0 : 1) + (options.OidcDiscoveryUri is null ? 0 : 1)
            + (options.InlineJwks is null ? 0 : 1) + (options.JwksFile is null ? 0 : 1);
        if (sources != 1)
            Error("jwks", "exactly one key source is required: jwks_uri, oidc_discovery_uri, jwks or jwks_file");
        if (options.JwksUri is not null && !IsAllowedRemote(options.JwksUri))
            Error("jwksUri", "must be an absolute https URL (http only for a loopback host)");
        if (options.OidcDiscoveryUri is not null && !IsAllowedRemote(options.OidcDiscoveryUri))
            Error("oidcDiscoveryUri", "must be an absolute https URL (http only for a loopback host)");
        if (options.InlineJwks is not null && options.Algorithms is { Count: > 0 }
            && !JwksParser.TryParse(options.InlineJwks, options, out _, out var inlineError))
            Error("inlineJwks", inlineError);
        if (options.JwksFile is not null && string.IsNullOrWhiteSpace(options.JwksFile))
            Error("jwksFile", "is empty");

        if (options.ClockSkew < TimeSpan.Zero || options.ClockSkew > TimeSpan.FromMinutes(5))
            Error("clockSkew", "must be between 0 and 5 minutes");
        if (options.MaxLifetime is { } max && max <= TimeSpan.Zero)
            Error("maxLifetime", "must be positive");
        if (options.RequireTyp is not null && string.IsNullOrWhiteSpace(options.RequireTyp))
            Error("requireTyp", "is empty");
        if (options.PlanClaim is not null && PlanClaimProblem(options.PlanClaim) is { } planClaimProblem)
            Error("planClaim", planClaimProblem);
        if (options.MaxTokenBytes is < 256 or > 64 * 1024)
            Error("maxTokenBytes", "must be between 256 and 65536");
        if (options.RefreshInterval < TimeSpan.FromSeconds(1))
            Error("refreshInterval", "must be at least 1 s");
        if (options.RefreshJitter is < 0 or > 0.5 || double.IsNaN(options.RefreshJitter))
            Error("refreshJitter", "must be between 0 and 0.5");
        if (options.MinRefetchInterval < TimeSpan.FromSeconds(1))
            Error("minRefetchInterval", "must be at least 1 s");
        if (options.HttpTimeout <= TimeSpan.Zero || options.HttpTimeout > TimeSpan.FromMinutes(1))
            Error("httpTimeout", "must be between 0 and 1 minute");
        if (options.MaxJwksBytes is < 1024 or > 4 * 1024 * 1024)
            Error("maxJwksBytes", "must be between 1 KiB and 4 MiB");
        if (options.MaxKeys is < 1 or > 1000)
            Error("maxKeys", "must be between 1 and 1000");
        return errors;
    }

    /// <summary>What a <see cref="JwtProviderOptions.PlanClaim"/> may be, for the messages of both loaders.</summary>
    public const string PlanClaimRule = "a claim name, or a list of 1 to 8 member names leading to the plan through nested objects (e.g. [app_metadata, plan]), each 1 to 256 characters";

    /// <summary>Why <paramref name="path"/> cannot be a plan claim, or null when it can (the gateway file's loader asks too).</summary>
    public static string? PlanClaimProblem(IReadOnlyList<string> path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Count == 0)
            return "names no claim";
        if (path.Count > MaxPlanClaimDepth)
            return $"names {path.Count} nested members, more than {MaxPlanClaimDepth}";
        for (var i = 0; i < path.Count; i++)
        {
            if (path[i] is not { Length: > 0 and <= 256 })
                return "a member name is empty or longer than 256 characters";
        }
        return null;
    }

    /// <summary>How deep a plan claim may be nested (a token's payload is read to a depth of 32 at most).</summary>
    public const int MaxPlanClaimDepth = 8;

    /// <summary>https anywhere; http only to a loopback host, so keys are never fetched in clear text over a network.</summary>
    public static bool IsAllowedRemote(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (!uri.IsAbsoluteUri || !string.IsNullOrEmpty(uri.UserInfo))
            return false;
        if (uri.Scheme == Uri.UriSchemeHttps)
            return true;
        return uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback;
    }
}
