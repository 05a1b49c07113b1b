using System.Collections.Frozen;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Legate.Gateway.Loading;

/// <summary>
/// Whether Envoy can compile a regular expression. Envoy uses RE2, which lacks several constructs .NET parses
/// (look-around, back-references, atomic groups, conditionals, ...): a pattern using one passes a .NET check, and Envoy
/// then refuses the whole listener update. RE2 also has forms .NET lacks (<c>\pL</c>, <c>\p{Greek}</c>,
/// <c>\Q…\E</c>, <c>\x{41}</c>, <c>\C</c>, the <c>U</c> flag): those are checked here as RE2 reads them and written in
/// a .NET form, which .NET then parses; a scan last looks for the .NET-only constructs.
/// </summary>
internal static class Re2Syntax
{
    /// <summary>RE2's Unicode general categories (its table has no <c>Cn</c> or <c>LC</c>).</summary>
    private static readonly FrozenSet<string> Categories = FrozenSet.Create(StringComparer.Ordinal,
        "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd", "Nl", "No",
        "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs");

    /// <summary>RE2's POSIX classes (<c>[[:alpha:]]</c>, <c>[[:^digit:]]</c>).</summary>
    private static readonly FrozenSet<string> PosixClasses = FrozenSet.Create(StringComparer.Ordinal,
        "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "word", "xdigit");

    /// <summary>
    /// RE2's scripts: Unicode 15's (RE2 since 2022; Envoy's RE2 is newer). A script added later is refused here until
    /// this list has it, which is the safe side: accepted, Envoy's older RE2 could refuse the listener.
    /// </summary>
    private static readonly FrozenSet<string> Scripts = FrozenSet.Create(StringComparer.Ordinal,
        "Adlam", "Ahom", "Anatolian_Hieroglyphs", "Arabic", "Armenian", "Avestan", "Balinese", "Bamum", "Bassa_Vah",
        "Batak", "Bengali", "Bhaiksuki", "Bopomofo", "Brahmi", "Braille", "Buginese", "Buhid", "Canadian_Aboriginal",
        "Carian", "Caucasian_Albanian", "Chakma", "Cham", "Cherokee", "Chorasmian", "Common", "Coptic", "Cuneiform",
        "Cypriot", "Cypro_Minoan", "Cyrillic", "Deseret", "Devanagari", "Dives_Akuru", "Dogra", "Duployan",
        "Egyptian_Hieroglyphs", "Elbasan", "Elymaic", "Ethiopic", "Georgian", "Glagolitic", "Gothic", "Grantha", "Greek",
        "Gujarati", "Gunjala_Gondi", "Gurmukhi", "Han", "Hangul", "Hanifi_Rohingya", "Hanunoo", "Hatran", "Hebrew",
        "Hiragana", "Imperial_Aramaic", "Inherited", "Inscriptional_Pahlavi", "Inscriptional_Parthian", "Javanese",
        "Kaithi", "Kannada", "Katakana", "Kawi", "Kayah_Li", "Kharoshthi", "Khitan_Small_Script", "Khmer", "Khojki",
        "Khudawadi", "Lao", "Latin", "Lepcha", "Limbu", "Linear_A", "Linear_B", "Lisu", "Lycian", "Lydian", "Mahajani",
        "Makasar", "Malayalam", "Mandaic", "Manichaean", "Marchen", "Masaram_Gondi", "Medefaidrin", "Meetei_Mayek",
        "Mende_Kikakui", "Meroitic_Cursive", "Meroitic_Hieroglyphs", "Miao", "Modi", "Mongolian", "Mro", "Multani",
        "Myanmar", "Nabataean", "Nag_Mundari", "Nandinagari", "New_Tai_Lue", "Newa", "Nko", "Nushu",
        "Nyiakeng_Puachue_Hmong", "Ogham", "Ol_Chiki", "Old_Hungarian", "Old_Italic", "Old_North_Arabian", "Old_Permic",
        "Old_Persian", "Old_Sogdian", "Old_South_Arabian", "Old_Turkic", "Old_Uyghur", "Oriya", "Osage", "Osmanya",
        "Pahawh_Hmong", "Palmyrene", "Pau_Cin_Hau", "Phags_Pa", "Phoenician", "Psalter_Pahlavi", "Rejang", "Runic",
        "Samaritan", "Saurashtra", "Sharada", "Shavian", "Siddham", "SignWriting", "Sinhala", "Sogdian", "Sora_Sompeng",
        "Soyombo", "Sundanese", "Syloti_Nagri", "Syriac", "Tagalog", "Tagbanwa", "Tai_Le", "Tai_Tham", "Tai_Viet",
        "Takri", "Tamil", "Tangsa", "Tangut", "Telugu", "Thaana", "Thai", "Tibetan", "Tifinagh", "Tirhuta", "Toto",
        "Ugaritic", "Vai", "Vithkuqi", "Wancho", "Warang_Citi", "Yezidi", "Yi", "Zanabazar_Square");

    /// <summary>Why Envoy would refuse <paramref name="pattern"/>, or null when it compiles in both engines.</summary>
    public static string? Problem(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var translated = ToDotNet(pattern, out var refused);
        if (refused is not null)
            return refused;
        try
        {
            // RE2's (?P<name>...) is .NET's (?<name>...).
            _ = new Regex(translated.Replace("(?P<", "(?<", StringComparison.Ordinal), RegexOptions.None, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
        return DotNetOnly(translated);
    }

    /// <summary>
    /// The pattern with RE2's own forms written as .NET parses them (the same structure, not always the same meaning:
    /// a script becomes a category, which is enough to check the syntax), or why RE2 refuses one of them.
    /// </summary>
    private static string ToDotNet(string pattern, out string? problem)
    {
        problem = null;
        if (!pattern.Contains('\\', StringComparison.Ordinal) && !pattern.Contains("(?", StringComparison.Ordinal) && !pattern.Contains("[:", StringComparison.Ordinal))
            return pattern;
        var output = new StringBuilder(pattern.Length + 16);
        var inClass = false;
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                var next = pattern[i + 1];
                if (!inClass && next == 'Q')
                {
                    // \Q…\E: literal text up to \E or the end of the pattern (outside a class only).
                    var end = pattern.IndexOf("\\E", i + 2, StringComparison.Ordinal);
                    foreach (var literal in end < 0 ? pattern.AsSpan(i + 2) : pattern.AsSpan(i + 2, end - i - 2))
                        AppendLiteral(output, literal);
                    i = end < 0 ? pattern.Length : end + 1;
                }
                else if (!inClass && next == 'E')
                {
                    problem = "\\E without \\Q before it is not RE2 syntax";
                    return pattern;
                }
                else if (inClass && next is 'Q' or 'E' or 'C')
                {
                    problem = $"\\{next} is not RE2 syntax in a character class";
                    return pattern;
                }
                else if (!inClass && next == 'C')
                {
                    // Any byte: any character will do for the syntax.
                    output.Append("(?s:.)");
                    i++;
                }
                else if (next is 'p' or 'P')
                {
                    if ((problem = UnicodeClass(pattern, ref i, output)) is not null)
                        return pattern;
                }
                else if (next == 'x' && i + 2 < pattern.Length && pattern[i + 2] == '{')
                {
                    if ((problem = CodePoint(pattern, ref i, inClass, output)) is not null)
                        return pattern;
                }
                else
                {
                    output.Append(c).Append(next);
                    i++;
                }
                continue;
            }
            if (inClass)
            {
                if (c == '[' && PosixClassEnd(pattern, i) is var posix and > 0)
                {
                    var name = pattern[(i + 2)..(posix - 1)];
                    if (!PosixClasses.Contains(name.TrimStart('^')))
                    {
                        problem = $"[:{name}:] is not a POSIX class RE2 knows (alnum, alpha, digit, word, ...)";
                        return pattern;
                    }
                    output.Append(pattern, i, posix - i + 1);
                    i = posix;
                    continue;
                }
                inClass = c != ']';
                output.Append(c);
                continue;
            }
            if (c == '[')
            {
                inClass = true;
                output.Append(c);
                // A ']' right after '[' or '[^' is a literal in both engines, not the end of the class.
                if (i + 1 < pattern.Length && pattern[i + 1] == '^')
                    output.Append(pattern[++i]);
                if (i + 1 < pattern.Length && pattern[i + 1] == ']')
                    output.Append(pattern[++i]);
                continue;
            }
            if (c == '(' && i + 2 < pattern.Length && pattern[i + 1] == '?' && UngreedyFlags(pattern, ref i, output, out problem))
            {
                if (problem is not null)
                    return pattern;
                continue;
            }
            output.Append(c);
        }
        return output.ToString();
    }

    // Punctuation escaped, the rest as it is: \Q.*\E is \.\*, in both engines.
    private static void AppendLiteral(StringBuilder output, char c)
    {
        if (char.IsAscii(c) && !char.IsAsciiLetterOrDigit(c) && c != '_' && !char.IsWhiteSpace(c) && !char.IsControl(c))
            output.Append('\\');
        output.Append(c);
    }

    /// <summary>\pL, \p{Greek}, \p{^Greek}, \PL: a class RE2 knows, written as a .NET category.</summary>
    private static string? UnicodeClass(string pattern, ref int i, StringBuilder output)
    {
        var negated = pattern[i + 1] == 'P';
        var at = i + 2;
        if (at >= pattern.Length)
            return $"\\{pattern[i + 1]} without a Unicode class name is not RE2 syntax";
        string name;
        int last;
        if (pattern[at] == '{')
        {
            var close = pattern.IndexOf('}', at + 1);
            if (close < 0)
                return $"\\{pattern[i + 1]}{{ without a closing }} is not RE2 syntax";
            name = pattern[(at + 1)..close];
            last = close;
        }
        else
        {
            // One letter (RE2 takes one character): \pL.
            var length = char.IsSurrogatePair(pattern, at) ? 2 : 1;
            name = pattern.Substring(at, length);
            last = at + length - 1;
        }
        var written = name;
        if (name.StartsWith('^'))
        {
            negated = !negated;
            name = name[1..];
        }
        if (!Categories.Contains(name) && !Scripts.Contains(name) && name != "Any")
            return $"\\p{{{written}}} is not a Unicode class RE2 knows (a general category such as L or Lu, a script such as Greek, or Any)";
        output.Append(negated ? "\\P{" : "\\p{").Append(Categories.Contains(name) ? name : "L").Append('}');
        i = last;
        return null;
    }

    /// <summary>\x{41}: a code point up to 10FFFF, written as .NET reads one.</summary>
    private static string? CodePoint(string pattern, ref int i, bool inClass, StringBuilder output)
    {
        var close = pattern.IndexOf('}', i + 3);
        var digits = close < 0 ? pattern[(i + 3)..] : pattern[(i + 3)..close];
        if (close < 0 || digits.Length == 0 || !digits.All(char.IsAsciiHexDigit))
            return $"\\x{{{digits}{(close < 0 ? "" : "}")} needs hex digits and a closing }}";
        var value = digits.TrimStart('0') is { Length: <= 6 } significant
            ? int.Parse(significant.Length == 0 ? "0" : significant, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture)
            : int.MaxValue;
        if (value > 0x10FFFF)
            return $"\\x{{{digits}}} is not a code point (at most \\x{{10FFFF}})";
        if (value <= 0xFF)
            output.Append("\\x").Append(value.ToString("X2", CultureInfo.InvariantCulture));
        else if (value <= 0xFFFF)
            output.Append((char)value);
        else if (!inClass)
            output.Append(char.ConvertFromUtf32(value));
        else
            // .NET classes hold UTF-16 units: U+FFFF keeps a range from the BMP in order (a reversed range of two
            // code points past U+FFFF is the one thing this does not see).
            output.Append('\uFFFF');
        i = close;
        return null;
    }

    /// <summary>The index of the ']' of a POSIX class ([:alpha:]) starting at <paramref name="at"/> in a class, or -1.</summary>
    private static int PosixClassEnd(string pattern, int at)
    {
        if (at + 1 >= pattern.Length || pattern[at + 1] != ':')
            return -1;
        var end = pattern.IndexOf(":]", at + 2, StringComparison.Ordinal);
        return end < 0 ? -1 : end + 1;
    }

    /// <summary>(?U), (?i-U:…): RE2's ungreedy flag, which .NET lacks, left out (it changes no syntax).</summary>
    private static bool UngreedyFlags(string pattern, ref int i, StringBuilder output, out string? problem)
    {
        problem = null;
        var end = pattern.AsSpan(i + 2).IndexOfAny(':', ')');
        if (end < 0)
            return false;
        var flags = pattern.AsSpan(i + 2, end);
        if (!flags.Contains('U') || flags.ContainsAnyExcept("imsU-"))
            return false;
        if ((problem = NegationProblem(flags)) is not null)
            return true;
        var dash = flags.IndexOf('-');
        var on = (dash < 0 ? flags : flags[..dash]).ToString().Replace("U", "", StringComparison.Ordinal);
        var off = dash < 0 ? "" : flags[(dash + 1)..].ToString().Replace("U", "", StringComparison.Ordinal);
        var kept = off.Length > 0 ? on + "-" + off : on;
        var terminator = pattern[i + 2 + end];
        if (kept.Length > 0)
            output.Append("(?").Append(kept).Append(terminator);
        else if (terminator == ':')
            output.Append("(?:");
        i += 2 + end;
        return true;
    }

    /// <summary>
    /// (?i-), (?-:…), (?i-m-s): .NET takes them, RE2 refuses a '-' that turns nothing off, and a second '-'.
    /// </summary>
    private static string? NegationProblem(ReadOnlySpan<char> flags)
    {
        var dash = flags.IndexOf('-');
        if (dash < 0)
            return null;
        var off = flags[(dash + 1)..];
        return off.IsEmpty || off.Contains('-')
            ? $"the flags (?{flags}) are not RE2 syntax: one '-', followed by the flags it turns off"
            : null;
    }

    /// <summary>What .NET parsed but RE2 refuses, in a pattern already in .NET's form.</summary>
    private static string? DotNetOnly(string pattern)
    {
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
                // .NET also knows \e, \cX, \uFFFF and, in a class, \b (backspace): RE2 refuses every letter it does not
                // list (its own \Q, \E and \C are gone by now).
                if (char.IsAsciiLetter(escaped) && !(inClass ? "dDsSwWpPxafnrtv" : "dDsSwWpPxafnrtvbBAz").Contains(escaped, StringComparison.Ordinal))
                    return $"\\{escaped} is not RE2 syntax";
                continue;
            }
            if (inClass)
            {
                if (c == '[' && PosixClassEnd(pattern, i) is var posix and > 0)
                {
                    i = posix;
                    continue;
                }
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
                // Inline flags: RE2 knows i, m and s (and U, left out of the .NET form).
                var end = group.IndexOfAny(':', ')');
                if ((char.IsAsciiLetter(group[0]) || group[0] == '-') && end > 0 && group[..end].ContainsAnyExcept("ims-"))
                    return $"the flags (?{group[..end]}) are not RE2 syntax, which knows i, m, s and U";
                if ((char.IsAsciiLetter(group[0]) || group[0] == '-') && end > 0 && NegationProblem(group[..end]) is { } negation)
                    return negation;
            }
        }
        return null;
    }
}
