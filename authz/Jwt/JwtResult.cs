namespace Legate.Authz.Jwt;

/// <summary>Why a token was refused. Stable: policies and metrics map these to 401 reasons.</summary>
public enum JwtFailureReason
{
    None,
    Missing,
    Malformed,
    TooLarge,
    BadAlgorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    WrongIssuer,
    WrongAudience,
    CritHeader,
    WrongType,
    KeysUnavailable,
}

/// <summary>
/// The outcome of validating one token. Failures are shared immutable instances (no allocation); their
/// <see cref="Description"/> is fixed text that never contains token material, so it may go into logs and deny bodies.
/// </summary>
public sealed class JwtResult
{
    private static readonly JwtResult[] Failures = Enum.GetValues<JwtFailureReason>().Select(r => new JwtResult(r, DescriptionOf(r), null)).ToArray();

    private JwtResult(JwtFailureReason failure, string description, JwtIdentity? identity)
    {
        Failure = failure;
        Description = description;
        Identity = identity;
    }

    public bool Succeeded => Failure == JwtFailureReason.None;

    public JwtFailureReason Failure { get; }

    public string Description { get; }

    /// <summary>Set when <see cref="Succeeded"/>.</summary>
    public JwtIdentity? Identity { get; }

    public static JwtResult Success(JwtIdentity identity) => new(JwtFailureReason.None, "valid", identity ?? throw new ArgumentNullException(nameof(identity)));

    public static JwtResult Fail(JwtFailureReason reason)
        => reason == JwtFailureReason.None ? throw new ArgumentOutOfRangeException(nameof(reason)) : Failures[(int)reason];

    public override string ToString() => Succeeded ? "valid" : $"{Failure}: {Description}";

    private static string DescriptionOf(JwtFailureReason reason) => reason switch
    {
        JwtFailureReason.None => "valid",
        JwtFailureReason.Missing => "no token",
        JwtFailureReason.Malformed => "malformed token",
        JwtFailureReason.TooLarge => "token too large",
        JwtFailureReason.BadAlgorithm => "algorithm not allowed",
        JwtFailureReason.UnknownKey => "no matching signing key",
        JwtFailureReason.BadSignature => "invalid signature",
        JwtFailureReason.Expired => "token expired or without expiry",
        JwtFailureReason.NotYetValid => "token not yet valid",
        JwtFailureReason.IssuedInFuture => "token issued in the future",
        JwtFailureReason.LifetimeTooLong => "token lifetime too long",
        JwtFailureReason.WrongIssuer => "issuer not accepted",
        JwtFailureReason.WrongAudience => "audience not accepted",
        JwtFailureReason.CritHeader => "critical header not supported",
        JwtFailureReason.WrongType => "token type not accepted",
        JwtFailureReason.KeysUnavailable => "signing keys unavailable",
        _ => "invalid token",
    };
}

/// <summary>What a valid token says. Immutable and shared by every request presenting the same token (cache).</summary>
public sealed class JwtIdentity
{
    public JwtIdentity(string? subject, string issuer, string audience, DateTimeOffset expiresAt,
        IReadOnlyList<string> scopes, IReadOnlyDictionary<string, string> claims, IReadOnlyDictionary<string, IReadOnlyList<string>>? policyClaims = null,
        string? plan = null, bool planInvalid = false)
    {
        Subject = subject;
        Issuer = issuer;
        Audience = audience;
        ExpiresAt = expiresAt;
        Scopes = scopes;
        Claims = claims;
        PolicyClaims = policyClaims;
        Plan = planInvalid ? null : plan;
        PlanInvalid = planInvalid;
    }

    public string? Subject { get; }

    public string Issuer { get; }

    /// <summary>The configured audience the token matched.</summary>
    public string Audience { get; }

    public DateTimeOffset ExpiresAt { get; }

    /// <summary>From <c>scope</c> (space-separated string) or else <c>scp</c> (array or string).</summary>
    public IReadOnlyList<string> Scopes { get; }

    /// <summary>Top-level claims with a scalar value, as text (strings as-is, numbers and booleans as JSON text); arrays, objects and nulls are left out.</summary>
    public IReadOnlyDictionary<string, string> Claims { get; }

    /// <summary>
    /// The claims that a policy requires (see <see cref="JwtProvider.PolicyClaims"/>), each as its typed values (see
    /// <see cref="TypedClaim"/>): a scalar claim gives one, an array claim its scalar elements. Null when none is present.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>>? PolicyClaims { get; }

    /// <summary>
    /// The plan the provider's plan claim (<see cref="JwtProviderOptions.PlanClaim"/>) names, a string that holds to
    /// <see cref="ApiKeys.ApiKeyRecordRules.PlanRule"/>; null when the provider reads none or the token lacks the claim
    /// (the tenant's plan then applies).
    /// </summary>
    public string? Plan { get; }

    /// <summary>
    /// The token carries the plan claim, but not as a plan: not a string (a number, boolean, null, array or object, or a
    /// path through something other than an object), a string against the plan rule, or named twice in one object. The
    /// decider refuses such a token (403) rather than guess a plan.
    /// </summary>
    public bool PlanInvalid { get; }

    /// <summary>
    /// The authorization decider's last answer for this identity (its own type; this class never reads it). A field
    /// rather than a weak table: with the token cache off every call brings a new identity, and a weak-table entry
    /// (a GC dependent handle) per call cost more than the answer it saved.
    /// </summary>
    internal object? AnswerCache;
}

/// <summary>
/// A token's top-level scalar claims in document order (names are unique: a payload with a duplicate is refused). Looked
/// up by a linear search, which for the dozen claims of a usual token is cheaper to build and to query than a hash table.
/// </summary>
internal sealed class JwtClaims : IReadOnlyDictionary<string, string>
{
    private readonly KeyValuePair<string, string>[] _claims;

    public JwtClaims(KeyValuePair<string, string>[] claims) => _claims = claims;

    public string this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"No claim '{key}'.");

    public IEnumerable<string> Keys => _claims.Select(c => c.Key);

    public IEnumerable<string> Values => _claims.Select(c => c.Value);

    public int Count => _claims.Length;

    public bool ContainsKey(string key) => TryGetValue(key, out _);

    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        foreach (var claim in _claims)
        {
            if (string.Equals(claim.Key, key, StringComparison.Ordinal))
            {
                value = claim.Value;
                return true;
            }
        }
        value = null;
        return false;
    }

    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, string>>)_claims).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>
/// A claim value with its JSON type, so that a policy's <c>true</c> never matches the string "true", nor its <c>5</c>
/// the string "5": <c>s:</c> and the text for a string, <c>n:</c> and the number as written for a number, <c>b:true</c>
/// or <c>b:false</c>.
/// </summary>
public static class TypedClaim
{
    public static string OfString(string value) => "s:" + value;

    public static string OfNumber(string text) => "n:" + text;

    public static string OfBoolean(bool value) => value ? "b:true" : "b:false";
}
