using System.Collections.Frozen;
using Microsoft.IdentityModel.Tokens;

namespace Legate.Authz.Jwt;

/// <summary>
/// A validated provider configuration with its keys and the IdentityModel parameters built once from it. Every
/// permissive IdentityModel default is overridden here (research c.4); nothing is left to the library's defaults.
/// </summary>
public sealed class JwtProvider
{
    private static int s_nextId;

    public JwtProvider(JwtProviderOptions options, JwksSource keys)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(keys);
        var errors = JwtProviderOptionsValidator.Validate(options, $"providers[{options.Name}]");
        if (errors.Count > 0)
            throw new ArgumentException(string.Join("; ", errors), nameof(options));
        Options = options;
        Keys = keys;
        Id = Interlocked.Increment(ref s_nextId);
        Algorithms = options.Algorithms.ToFrozenSet(StringComparer.Ordinal);
        Audiences = options.Audiences.ToFrozenSet(StringComparer.Ordinal);
        Template = new TokenValidationParameters
        {
            ValidateIssuer = true,
            ValidIssuer = options.Issuer,
            ValidIssuers = null,
            ValidateAudience = true,
            RequireAudience = true,
            ValidAudiences = options.Audiences.ToArray(),
            IgnoreTrailingSlashWhenValidatingAudience = false,
            IgnoreCaseWhenValidatingAudience = false,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            ClockSkew = options.ClockSkew,
            // IdentityModel would compare exp/nbf with the wall clock; this validator only demands exp, and
            // JwtValidator checks exp/nbf/iat against the injected TimeProvider after the signature.
            LifetimeValidator = static (_, expires, _, _) => expires.HasValue,
            RequireSignedTokens = true,
            ValidAlgorithms = options.Algorithms.ToArray(),
            ValidateIssuerSigningKey = true,
            TryAllIssuerSigningKeys = false,
            ConfigurationManager = null,
            RefreshBeforeValidation = false,
            ValidateWithLKG = false,
            ValidateActor = false,
            ValidateTokenReplay = false,
            SaveSigninToken = false,
            LogTokenId = false,
            LogValidationExceptions = false,
            IncludeTokenOnFailedValidation = false,
        };
    }

    public JwtProviderOptions Options { get; }

    public JwksSource Keys { get; }

    public string Name => Options.Name;

    internal int Id { get; }

    internal FrozenSet<string> Algorithms { get; }

    internal FrozenSet<string> Audiences { get; }

    internal TokenValidationParameters Template { get; }
}
