using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Legate.RateLimit.Config;

/// <summary>What a YAML scalar means.</summary>
internal enum ScalarKind
{
    String,
    Null,
    Bool,

    /// <summary>An integer that fits a long.</summary>
    Int,

    /// <summary>An integer above long.MaxValue (its value in <see cref="Scalar.Float"/>): not an <c>int</c> to the reference, so not a valid leaf.</summary>
    BigInt,
    Float,
}

/// <summary>
/// Resolves plain scalars the way envoyproxy/ratelimit's YAML library (go-yaml v2, YAML 1.1) does, so the same files
/// are accepted and rejected: <c>yes</c>/<c>on</c>/<c>y</c> are booleans, <c>~</c> and the empty scalar are null,
/// underscores are ignored in numbers, <c>0x</c>/<c>0o</c>/<c>0b</c>/leading-zero integers are read by base. Quoted,
/// block and <c>!!str</c> scalars are strings.
/// </summary>
internal static class YamlScalars
{
    private const string YamlTag = "tag:yaml.org,2002:";

    public readonly record struct Scalar(ScalarKind Kind, string Text, bool Bool = false, long Int = 0, double Float = 0);

    public static Scalar Resolve(YamlScalarNode node)
    {
        var text = node.Value ?? "";
        var tag = node.Tag.IsEmpty ? "" : node.Tag.Value;
        if (tag == "!" || tag == YamlTag + "str" || (tag.Length == 0 && node.Style is not (ScalarStyle.Plain or ScalarStyle.Any)))
            return new Scalar(ScalarKind.String, text);
        if (tag.Length > 0 && !tag.StartsWith(YamlTag, StringComparison.Ordinal))
            return new Scalar(ScalarKind.String, text);
        return ResolvePlain(text);
    }

    public static Scalar ResolvePlain(string text)
    {
        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return new Scalar(ScalarKind.Null, text);
            case "y" or "Y" or "yes" or "Yes" or "YES" or "true" or "True" or "TRUE" or "on" or "On" or "ON":
                return new Scalar(ScalarKind.Bool, text, Bool: true);
            case "n" or "N" or "no" or "No" or "NO" or "false" or "False" or "FALSE" or "off" or "Off" or "OFF":
                return new Scalar(ScalarKind.Bool, text, Bool: false);
            case ".nan" or ".NaN" or ".NAN":
                return new Scalar(ScalarKind.Float, text, Float: double.NaN);
            case ".inf" or ".Inf" or ".INF" or "+.inf" or "+.Inf" or "+.INF":
                return new Scalar(ScalarKind.Float, text, Float: double.PositiveInfinity);
            case "-.inf" or "-.Inf" or "-.INF":
                return new Scalar(ScalarKind.Float, text, Float: double.NegativeInfinity);
        }

        var first = text[0];
        if (first == '.')
        {
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && IsYamlFloat(text)
                ? new Scalar(ScalarKind.Float, text, Float: f)
                : new Scalar(ScalarKind.String, text);
        }
        if (first is not ('+' or '-') && !char.IsAsciiDigit(first))
            return new Scalar(ScalarKind.String, text);

        var plain = text.Replace("_", "", StringComparison.Ordinal);
        if (TryParseInteger(plain, out var negative, out var magnitude))
        {
            if (!negative && magnitude <= long.MaxValue)
                return new Scalar(ScalarKind.Int, text, Int: (long)magnitude);
            if (negative && magnitude <= (ulong)long.MaxValue + 1)
                return new Scalar(ScalarKind.Int, text, Int: magnitude == (ulong)long.MaxValue + 1 ? long.MinValue : -(long)magnitude);
            if (!negative && plain[0] != '+')
                return new Scalar(ScalarKind.BigInt, text, Float: magnitude);
        }
        if (IsYamlFloat(plain) && double.TryParse(plain, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            return new Scalar(ScalarKind.Float, text, Float: value);
        return new Scalar(ScalarKind.String, text);
    }

    /// <summary>How the reference prints a scalar in messages (Go's <c>%v</c>).</summary>
    public static string Display(Scalar scalar) => scalar.Kind switch
    {
        ScalarKind.Null => "<nil>",
        ScalarKind.Bool => scalar.Bool ? "true" : "false",
        ScalarKind.Int => scalar.Int.ToString(CultureInfo.InvariantCulture),
        _ => scalar.Text,
    };

    // Go's strconv.ParseInt/ParseUint with base 0: optional sign, then 0x, 0o, 0b or a leading 0 (octal) prefix.
    private static bool TryParseInteger(string text, out bool negative, out ulong magnitude)
    {
        magnitude = 0;
        var s = text.AsSpan();
        negative = s.Length > 0 && s[0] == '-';
        if (s.Length > 0 && s[0] is '+' or '-')
            s = s[1..];
        if (s.Length == 0)
            return false;
        var radix = 10u;
        if (s.Length > 1 && s[0] == '0')
        {
            radix = s[1] switch
            {
                'x' or 'X' => 16u,
                'o' or 'O' => 8u,
                'b' or 'B' => 2u,
                _ => 0u,
            };
            // A leading zero without a letter is octal: "0755".
            s = radix == 0 ? s[1..] : s[2..];
            radix = radix == 0 ? 8u : radix;
            if (s.Length == 0)
                return false;
        }
        foreach (var c in s)
        {
            var digit = c switch
            {
                >= '0' and <= '9' => (uint)(c - '0'),
                >= 'a' and <= 'f' => (uint)(c - 'a' + 10),
                >= 'A' and <= 'F' => (uint)(c - 'A' + 10),
                _ => uint.MaxValue,
            };
            if (digit >= radix)
                return false;
            if (magnitude > (ulong.MaxValue - digit) / radix)
                return false;
            magnitude = (magnitude * radix) + digit;
        }
        return true;
    }

    // go-yaml v2's float syntax: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    private static bool IsYamlFloat(string text)
    {
        var s = text.AsSpan();
        if (s.Length > 0 && s[0] is '+' or '-')
            s = s[1..];
        var digits = CountDigits(s);
        if (digits > 0)
        {
            s = s[digits..];
            if (s.Length > 0 && s[0] == '.')
                s = s[(1 + CountDigits(s[1..]))..];
        }
        else
        {
            if (s.Length < 2 || s[0] != '.' || !char.IsAsciiDigit(s[1]))
                return false;
            s = s[(1 + CountDigits(s[1..]))..];
        }
        if (s.Length == 0)
            return true;
        if (s[0] is not ('e' or 'E'))
            return false;
        s = s[1..];
        if (s.Length > 0 && s[0] is '+' or '-')
            s = s[1..];
        var exponent = CountDigits(s);
        return exponent > 0 && exponent == s.Length;
    }

    private static int CountDigits(ReadOnlySpan<char> s)
    {
        var n = 0;
        while (n < s.Length && char.IsAsciiDigit(s[n]))
            n++;
        return n;
    }
}
