using System.Text.RegularExpressions;

namespace Legate.Gateway.Loading;

/// <summary>
/// Whether Envoy can compile a regular expression. Envoy uses RE2, which lacks several constructs .NET parses
/// (look-around, back-references, atomic groups, conditionals, ...): a pattern using one passes a .NET check, and Envoy
/// then refuses the whole listener update. .NET parses the pattern first; a scan then looks for those constructs.
/// </summary>
internal static class Re2Syntax
{
    /// <summary>Why Envoy would refuse <paramref name="pattern"/>, or null when it compiles in both engines.</summary>
    public static string? Problem(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        try
        {
            // RE2's (?P<name>...) is .NET's (?<name>...).
            _ = new Regex(pattern.Replace("(?P<", "(?<", StringComparison.Ordinal), RegexOptions.None, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
        var inClass = false;
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                var escaped = pattern[++i];
                if (!inClass && (escaped is >= '1' and <= '9' or 'k'))
                    return "back-references are not RE2 syntax";
                if (!inClass && escaped is 'Z' or 'G')
                    return $"\\{escaped} is not RE2 syntax (\\z is the end of the text)";
                // .NET also knows \e, \cX, \uFFFF and, in a class, \b (backspace): RE2 refuses every letter it does not list.
                if (char.IsAsciiLetter(escaped) && !(inClass ? "dDsSwWpPxafnrtv" : "dDsSwWpPxafnrtvbBAzCQE").Contains(escaped, StringComparison.Ordinal))
                    return $"\\{escaped} is not RE2 syntax";
                continue;
            }
            if (inClass)
            {
                if (c == '-' && i + 1 < pattern.Length && pattern[i + 1] == '[')
                    return "character class subtraction is not RE2 syntax";
                inClass = c != ']';
                continue;
            }
            if (c == '[')
            {
                inClass = true;
                // A ']' right after '[' or '[^' is a literal in both engines, not the end of the class.
                if (i + 1 < pattern.Length && pattern[i + 1] == '^')
                    i++;
                if (i + 1 < pattern.Length && pattern[i + 1] == ']')
                    i++;
            }
            else if (c == '(' && i + 2 < pattern.Length && pattern[i + 1] == '?')
            {
                var group = pattern.AsSpan(i + 2);
                if (group.StartsWith("=") || group.StartsWith("!") || group.StartsWith("<=") || group.StartsWith("<!"))
                    return "look-around is not RE2 syntax";
                if (group.StartsWith("P<"))
                    continue;
                if (group[0] is '>' or '(' or '#' or '\'')
                    return $"(?{group[0]} is not RE2 syntax (no atomic groups, conditionals, comments or (?'name') groups)";
                // Inline flags: RE2 knows i, m and s (and U, which .NET does not).
                var end = group.IndexOfAny(':', ')');
                if ((char.IsAsciiLetter(group[0]) || group[0] == '-') && end > 0 && group[..end].ContainsAnyExcept("ims-"))
                    return $"the flags (?{group[..end]}) are not RE2 syntax, which knows i, m and s";
            }
        }
        return null;
    }
}
