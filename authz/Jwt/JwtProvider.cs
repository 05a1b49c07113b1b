using System.Collections.Frozen;

namespace Legate.Authz.Jwt;

/// <summary>
/// A validated provider configuration with its keys. IdentityModel is used only for signature providers
/// (<see cref="JwksKey"/>); every claim check is <see cref="JwtValidator"/>'s own, so no permissive library default
/// (research c.4) is in play.
/// </summary>
public sealed class JwtProvider
{
    private static int s_nextId;

    /// <param name="policyClaims">Claims that policies require: read from tokens with their JSON types (see <see cref="JwtIdentity.PolicyClaims"/>).</param>
    public JwtProvider(JwtProviderOptions options, JwksSource keys, IEnumerable<string>? policyClaims = null)
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
        PolicyClaims = (policyClaims ?? []).ToFrozenSet(StringComparer.Ordinal);
        PlanClaim = options.PlanClaim is { } plan ? [.. plan] : null;
    }

    public JwtProviderOptions Options { get; }

    public JwksSource Keys { get; }

    public string Name => Options.Name;

    internal int Id { get; }

    internal FrozenSet<string> Algorithms { get; }

    internal FrozenSet<string> Audiences { get; }

    /// <summary>
    /// Whether a provider made from <paramref name="options"/> and <paramref name="policyClaims"/> would judge every token
    /// as this one does (its key source aside): then a policy reload keeps this provider, and with it the tokens the
    /// validated-token cache holds for it.
    /// </summary>
    internal bool ValidatesAs(JwtProviderOptions options, IEnumerable<string> policyClaims)
    {
        var mine = Options;
        return mine.Issuer == options.Issuer
            && Audiences.SetEquals(options.Audiences)
            && Algorithms.SetEquals(options.Algorithms)
            && mine.ClockSkew == options.ClockSkew
            && mine.MaxLifetime == options.MaxLifetime
            && string.Equals(mine.RequireTyp, options.RequireTyp, StringComparison.Ordinal)
            && mine.MaxTokenBytes == options.MaxTokenBytes
            && (PlanClaim is null) == (options.PlanClaim is null)
            && (PlanClaim ?? []).SequenceEqual(options.PlanClaim ?? [], StringComparer.Ordinal)
            && PolicyClaims.SetEquals(policyClaims);
    }

    /// <summary>The claims policies require: read from tokens, with their JSON types, into <see cref="JwtIdentity.PolicyClaims"/>.</summary>
    internal FrozenSet<string> PolicyClaims { get; }

    /// <summary>The plan claim's member names (<see cref="JwtProviderOptions.PlanClaim"/>), an array for reading by index; null when none.</summary>
    internal string[]? PlanClaim { get; }
}
