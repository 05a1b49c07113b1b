using System.Text;

namespace Legate.Authz.Policies;

/// <summary>
/// The path a path rule is matched against (research E3: the authz point and the backend must not read one path two
/// ways). From Envoy's raw <c>:path</c>: the query is cut off, unreserved percent-escapes are decoded (<c>%61dmin</c> is
/// <c>/admin</c>), repeated slashes are merged, and letters are lower-cased for matching (a backend may ignore case).
/// Refused outright, because backends disagree on what they mean: an escaped slash or backslash (<c>%2F</c>, <c>%5C</c>),
/// a backslash, dot segments (<c>/../</c>, <c>/./</c>, also escaped), a <c>;</c> (path parameters: <c>/admin;x=1</c> is
/// <c>/admin</c> to some servers), a bad escape, control or non-ASCII characters, and anything not starting with <c>/</c>.
/// </summary>
public static class RequestPath
{
    /// <summary>The normalised path for matching, or null when the path is ambiguous and must be refused.</summary>
    public static string? Normalize(string? rawPath)
    {
        if (string.IsNullOrEmpty(rawPath) || rawPath[0] != '/')
            return null;
        var end = rawPath.AsSpan().IndexOfAny('?', '#');
        var raw = end < 0 ? rawPath.AsSpan() : rawPath.AsSpan(0, end);
        var path = new StringBuilder(raw.Length);
        for (var i = 0; i < raw.Length; i++)
        {
            var c = raw[i];
            if (c == '%')
            {
                if (i + 2 >= raw.Length || !char.IsAsciiHexDigit(raw[i + 1]) || !char.IsAsciiHexDigit(raw[i + 2]))
                    return null;
                var decoded = (char)Convert.ToInt32(raw.Slice(i + 1, 2).ToString(), 16);
                i += 2;
                if (char.IsAsciiLetterOrDigit(decoded) || decoded is '-' or '.' or '_' or '~')
                {
                    c = decoded;
                }
                else if (decoded is '/' or '\\' or ';' or '%' || decoded < 0x20 || decoded == 0x7f)
                {
                    return null;
                }
                else
                {
                    // Other escapes (a space, UTF-8 bytes) name the same thing everywhere: kept, in one spelling.
                    path.Append('%').Append(char.ToUpperInvariant(raw[i - 1])).Append(char.ToUpperInvariant(raw[i]));
                    continue;
                }
            }
            else if (c is '\\' or ';' || c < 0x20 || c >= 0x7f)
            {
                return null;
            }
            if (c == '/' && path.Length > 0 && path[^1] == '/')
                continue;
            path.Append(char.ToLowerInvariant(c));
        }
        var result = path.ToString();
        foreach (var segment in result.Split('/'))
        {
            if (segment is "." or "..")
                return null;
        }
        return result;
    }

    /// <summary>Whether <paramref name="path"/> is <paramref name="prefix"/> or below it (segment boundaries: /admin is not /administrator).</summary>
    public static bool IsUnder(string path, string prefix) =>
        prefix == "/" || path.StartsWith(prefix, StringComparison.Ordinal) && (path.Length == prefix.Length || path[prefix.Length] == '/');
}
