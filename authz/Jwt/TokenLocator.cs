namespace Legate.Authz.Jwt;

public enum TokenSourceKind
{
    /// <summary><c>authorization: Bearer &lt;token&gt;</c> (scheme case-insensitive).</summary>
    Bearer,
    Header,
    Query,
    Cookie,
}

/// <summary>Where a token may be: <see cref="Name"/> is the header (lower-case), query parameter or cookie name; unused for Bearer.</summary>
public sealed record TokenSource(TokenSourceKind Kind, string Name = "authorization")
{
    public static TokenSource Bearer { get; } = new(TokenSourceKind.Bearer);
}

public enum TokenLookupStatus
{
    Found,
    Missing,

    /// <summary>Two different tokens (two Authorization headers merged by Envoy, a repeated parameter, two locations).</summary>
    Ambiguous,

    /// <summary>A value is present where a token is expected but is not a single token (e.g. "Bearer" with nothing after it).</summary>
    Malformed,
}

/// <param name="Value">The token where it was found: a slice of the header, path or cookie (no copy); empty unless found.</param>
public readonly record struct TokenLookup(TokenLookupStatus Status, ReadOnlyMemory<char> Value)
{
    public static TokenLookup Missing => new(TokenLookupStatus.Missing, default);

    public static TokenLookup Ambiguous => new(TokenLookupStatus.Ambiguous, default);

    public static TokenLookup Malformed => new(TokenLookupStatus.Malformed, default);

    /// <summary>The token as a string (a copy), or null when none was found.</summary>
    public string? Token => Status == TokenLookupStatus.Found ? Value.ToString() : null;
}

/// <summary>
/// Finds the bearer token in an Envoy CheckRequest's headers (lower-case names, duplicates joined with ",") and raw
/// path (the query string is inside it). Every configured location is inspected: when several hold a token they must
/// all hold the same one, otherwise the request is <see cref="TokenLookupStatus.Ambiguous"/> (deterministic, never
/// "first wins": a valid header beside a different query token is refused). A location holding something that is not
/// exactly one token is <see cref="TokenLookupStatus.Malformed"/>. An Authorization header with another scheme
/// (e.g. Basic) is not a bearer token and counts as absent.
/// </summary>
public sealed class TokenLocator
{
    private readonly TokenSource[] _sources;

    public TokenLocator(IReadOnlyList<TokenSource> sources)
    {
        ArgumentNullException.ThrowIfNull(sources);
        if (sources.Count == 0)
            throw new ArgumentException("at least one token source is required", nameof(sources));
        foreach (var source in sources)
        {
            if (string.IsNullOrEmpty(source.Name))
                throw new ArgumentException("a token source has no name", nameof(sources));
        }
        _sources = [.. sources];
    }

    public static TokenLocator Default { get; } = new([TokenSource.Bearer]);

    public TokenLookup Locate(IReadOnlyDictionary<string, string> headers, string? path)
    {
        ArgumentNullException.ThrowIfNull(headers);
        TokenLookup? found = null;
        foreach (var source in _sources)
        {
            var lookup = source.Kind switch
            {
                TokenSourceKind.Bearer => FromBearer(headers),
                TokenSourceKind.Header => FromHeader(headers, source.Name),
                TokenSourceKind.Query => FromQuery(path, source.Name),
                TokenSourceKind.Cookie => FromCookie(headers, source.Name),
                _ => TokenLookup.Missing,
            };
            switch (lookup.Status)
            {
                case TokenLookupStatus.Missing:
                    continue;
                case TokenLookupStatus.Found:
                    if (found is { } earlier && !earlier.Value.Span.SequenceEqual(lookup.Value.Span))
                        return TokenLookup.Ambiguous;
                    found = lookup;
                    break;
                default:
                    return lookup;
            }
        }
        return found ?? TokenLookup.Missing;
    }

    private static TokenLookup FromBearer(IReadOnlyDictionary<string, string> headers)
    {
        if (!headers.TryGetValue("authorization", out var value) || value.Length == 0)
            return TokenLookup.Missing;
        var span = value.AsSpan().Trim(' ');
        var space = span.IndexOf(' ');
        var scheme = space < 0 ? span : span[..space];
        if (!scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            // "Bearer a,Bearer b" has scheme "Bearer"; "Basic x,Bearer y" is two credentials: ambiguous, not absent.
            return value.Contains(',', StringComparison.Ordinal) ? TokenLookup.Ambiguous : TokenLookup.Missing;
        }
        if (space < 0)
            return TokenLookup.Malformed;
        return Single(value, span[(space + 1)..].TrimStart(' '));
    }

    private static TokenLookup FromHeader(IReadOnlyDictionary<string, string> headers, string name)
        => headers.TryGetValue(name, out var value) && value.Length > 0 ? Single(value, value.AsSpan().Trim(' ')) : TokenLookup.Missing;

    private static TokenLookup FromQuery(string? path, string name)
    {
        if (path is null)
            return TokenLookup.Missing;
        var question = path.IndexOf('?', StringComparison.Ordinal);
        if (question < 0)
            return TokenLookup.Missing;
        var query = path.AsSpan(question + 1);
        var fragment = query.IndexOf('#');
        if (fragment >= 0)
            query = query[..fragment];
        TokenLookup? found = null;
        foreach (var range in query.Split('&'))
        {
            var pair = query[range];
            var equals = pair.IndexOf('=');
            var key = equals < 0 ? pair : pair[..equals];
            // The raw name, never decoded: Envoy strips query parameters by raw name, so only a token it can strip is read.
            if (!key.SequenceEqual(name))
                continue;
            if (equals < 0)
                return TokenLookup.Malformed;
            // Tokens are base64url and need no escaping; an escaped or otherwise odd value is not decoded but refused.
            var lookup = Single(path, pair[(equals + 1)..]);
            if (lookup.Status != TokenLookupStatus.Found)
                return lookup;
            if (found is { } earlier && !earlier.Value.Span.SequenceEqual(lookup.Value.Span))
                return TokenLookup.Ambiguous;
            found = lookup;
        }
        return found ?? TokenLookup.Missing;
    }

    private static TokenLookup FromCookie(IReadOnlyDictionary<string, string> headers, string name)
    {
        if (!headers.TryGetValue("cookie", out var value))
            return TokenLookup.Missing;
        TokenLookup? found = null;
        var span = value.AsSpan();
        // Envoy joins several cookie headers with "; " or ","; both separate cookie pairs here.
        foreach (var range in span.SplitAny(';', ','))
        {
            var pair = span[range].Trim(' ');
            var equals = pair.IndexOf('=');
            if (equals < 0 || !pair[..equals].Trim(' ').SequenceEqual(name))
                continue;
            var raw = pair[(equals + 1)..].Trim(' ');
            if (raw.Length >= 2 && raw[0] == '"' && raw[^1] == '"')
                raw = raw[1..^1];
            var lookup = Single(value, raw);
            if (lookup.Status != TokenLookupStatus.Found)
                return lookup;
            if (found is { } earlier && !earlier.Value.Span.SequenceEqual(lookup.Value.Span))
                return TokenLookup.Ambiguous;
            found = lookup;
        }
        return found ?? TokenLookup.Missing;
    }

    /// <summary>
    /// Exactly one RFC 6750 b64token (letters, digits, "-._~+/", trailing "="): a comma means merged duplicates;
    /// anything else (whitespace, '%'-escapes, '!' from Envoy's non-UTF-8 substitution) is refused, never decoded or repaired.
    /// </summary>
    // RFC 6750 token68: base64url / base64 characters, then '=' padding only at the end.
    private static readonly System.Buffers.SearchValues<char> Token68 =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");

    /// <param name="source">The string <paramref name="value"/> is a slice of: the token refers into it instead of being copied.</param>
    private static TokenLookup Single(string source, ReadOnlySpan<char> value)
    {
        if (value.IsEmpty)
            return TokenLookup.Malformed;
        if (value.Contains(','))
            return TokenLookup.Ambiguous;
        var end = value.IndexOfAnyExcept(Token68);
        if (end >= 0 && value[end..].ContainsAnyExcept('='))
            return TokenLookup.Malformed;
        if (!source.AsSpan().Overlaps(value, out var offset))
            throw new ArgumentException("the token must be a slice of its source", nameof(value));
        return new TokenLookup(TokenLookupStatus.Found, source.AsMemory(offset, value.Length));
    }
}
