namespace Legate.Authz.ApiKeys;

/// <summary>Whether a request carries a key where one is configured.</summary>
public enum ApiKeyLocateStatus
{
    /// <summary>No key in the configured places (for the authorization header: none with our scheme).</summary>
    Missing,
    Found,

    /// <summary>More than one key: comma-joined header values, a query parameter given twice, or both a header and a parameter. Refused, never guessed.</summary>
    Ambiguous,

    /// <summary>Present but unusable: empty, or longer than any key.</summary>
    Invalid,
}

/// <summary>Where a key came from, so the caller can strip it before the request goes upstream (<c>headers_to_remove</c> / <c>query_parameters_to_remove</c>).</summary>
public enum ApiKeySource
{
    None,
    Header,
    QueryParameter,
}

/// <summary>The result of looking for a key: the key text, and the header or query parameter it was in.</summary>
public readonly record struct ApiKeyLocation(ApiKeyLocateStatus Status, string? Key, ApiKeySource Source, string? Name)
{
    public override string ToString() => $"{Status} {Source} {Name}"; // never the key
}

/// <summary>
/// Finds the API key in an Envoy ext_authz request: a named header (<c>x-api-key</c>), the authorization header with a
/// scheme (<c>Authorization: ApiKey &lt;key&gt;</c>), and/or a query parameter. Envoy gives header names in lower case
/// and joins repeated headers with <c>,</c>; keys never contain a comma, so a comma means several values: refused.
/// </summary>
public sealed class ApiKeyLocator
{
    // Anything longer is not a key; refused before decoding or copying.
    private const int MaxValueLength = 1024;

    private readonly string? _header;
    private readonly string? _scheme;
    private readonly string? _queryParameter;

    /// <param name="headerName">Header to read (any case; matched lower-case), or null.</param>
    /// <param name="scheme">When set, the header value must be <c>{scheme} {key}</c> (scheme matched case-insensitively); other schemes are not ours.</param>
    /// <param name="queryParameter">Query parameter to read (its raw name, exact: no percent-decoding), or null.</param>
    public ApiKeyLocator(string? headerName = "x-api-key", string? scheme = null, string? queryParameter = null)
    {
        if (headerName is null && queryParameter is null)
            throw new ArgumentException("Configure a header, a query parameter, or both.", nameof(headerName));
        if (string.IsNullOrWhiteSpace(scheme) && scheme is not null)
            throw new ArgumentException("A scheme cannot be blank.", nameof(scheme));
        _header = headerName?.ToLowerInvariant();
        _scheme = scheme;
        _queryParameter = queryParameter;
    }

    /// <summary>Looks in <paramref name="headers"/> (Envoy's lower-case map) and <paramref name="path"/> (with its query string).</summary>
    public ApiKeyLocation Locate(IReadOnlyDictionary<string, string> headers, string? path)
    {
        ArgumentNullException.ThrowIfNull(headers);
        var fromHeader = _header is not null && headers.TryGetValue(_header, out var value) ? FromHeader(value) : Missing;
        var fromQuery = _queryParameter is not null && path is not null ? FromQuery(path) : Missing;
        if (fromHeader.Status == ApiKeyLocateStatus.Missing)
            return fromQuery;
        if (fromQuery.Status == ApiKeyLocateStatus.Missing)
            return fromHeader;
        // Two places, two keys (even equal ones): which identity did the client mean?
        return new ApiKeyLocation(ApiKeyLocateStatus.Ambiguous, null, ApiKeySource.None, null);
    }

    private static ApiKeyLocation Missing => default;

    private ApiKeyLocation FromHeader(string raw)
    {
        if (raw.Length > MaxValueLength)
            return Invalid(ApiKeySource.Header, _header);
        var value = raw.AsSpan().Trim(" \t");
        if (_scheme is not null)
        {
            // "ApiKey <key>"; "Bearer …" belongs to someone else (the JWT path), so it is not an error here.
            if (value.Length <= _scheme.Length || !value.StartsWith(_scheme, StringComparison.OrdinalIgnoreCase) || value[_scheme.Length] is not (' ' or '\t'))
                return value.Contains(',') && value.StartsWith(_scheme, StringComparison.OrdinalIgnoreCase) ? Ambiguous(ApiKeySource.Header, _header) : Missing;
            value = value[_scheme.Length..].TrimStart(" \t");
        }
        if (value.Contains(','))
            return Ambiguous(ApiKeySource.Header, _header);
        if (value.IsEmpty)
            return Invalid(ApiKeySource.Header, _header);
        return new ApiKeyLocation(ApiKeyLocateStatus.Found, value.Length == raw.Length ? raw : new string(value), ApiKeySource.Header, _header);
    }

    private ApiKeyLocation FromQuery(string path)
    {
        var start = path.IndexOf('?', StringComparison.Ordinal);
        if (start < 0)
            return Missing;
        var query = path.AsSpan(start + 1);
        var fragment = query.IndexOf('#');
        if (fragment >= 0)
            query = query[..fragment];

        string? found = null;
        var count = 0;
        foreach (var range in query.Split('&'))
        {
            var pair = query[range];
            var equals = pair.IndexOf('=');
            var rawName = equals < 0 ? pair : pair[..equals];
            // The raw name, never decoded: Envoy's query_parameters_to_remove matches raw names, so a key accepted under
            // api%5Fkey could not be stripped and would reach the upstream. An encoded spelling is not a credential but
            // just another parameter, like apikey or API_KEY (no key: 401 where one is required); refusing it instead
            // would single out one of many spellings authz never reads. The JWT query source does the same.
            if (!rawName.SequenceEqual(_queryParameter))
                continue;
            if (++count > 1)
                return Ambiguous(ApiKeySource.QueryParameter, _queryParameter);
            var rawValue = equals < 0 ? [] : pair[(equals + 1)..];
            if (rawValue.Length > MaxValueLength)
                return Invalid(ApiKeySource.QueryParameter, _queryParameter);
            found = Decode(rawValue);
        }
        if (count == 0)
            return Missing;
        return found is null or "" ? Invalid(ApiKeySource.QueryParameter, _queryParameter)
            : found.Contains(',', StringComparison.Ordinal) ? Ambiguous(ApiKeySource.QueryParameter, _queryParameter)
            : new ApiKeyLocation(ApiKeyLocateStatus.Found, found, ApiKeySource.QueryParameter, _queryParameter);
    }

    // Form-style decoding: '+' is a space (then refused by the key format), %XX is a byte of UTF-8; bad escapes stay as they are.
    private static string Decode(ReadOnlySpan<char> raw)
    {
        var text = raw.Contains('+') ? raw.ToString().Replace('+', ' ') : raw.ToString();
        return text.Contains('%', StringComparison.Ordinal) ? Uri.UnescapeDataString(text) : text;
    }

    private static ApiKeyLocation Invalid(ApiKeySource source, string? name) => new(ApiKeyLocateStatus.Invalid, null, source, name);

    private static ApiKeyLocation Ambiguous(ApiKeySource source, string? name) => new(ApiKeyLocateStatus.Ambiguous, null, source, name);
}
