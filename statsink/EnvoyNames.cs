using System.Globalization;
using System.Text;

namespace Legate.StatSink;

/// <summary>
/// Envoy's own Prometheus naming (admin <c>/stats/prometheus</c>), so that dashboards written against Envoy work
/// unchanged: <c>envoy_</c> + the tag-extracted name with every byte outside <c>[a-zA-Z0-9_]</c> turned into <c>_</c>;
/// tag names sanitized the same way; label values escaped only when written.
/// </summary>
internal static class EnvoyNames
{
    public const string Prefix = "envoy_";

    /// <summary><c>envoy_</c> + sanitized name, or null when nothing is left of the name.</summary>
    public static string? MetricName(string envoyName)
    {
        if (envoyName.Length == 0)
            return null;
        var builder = new StringBuilder(Prefix.Length + envoyName.Length);
        builder.Append(Prefix);
        AppendSanitized(builder, envoyName);
        return builder.ToString();
    }

    /// <summary>A tag name as a Prometheus label name, or null when it cannot be one (empty).</summary>
    public static string? LabelName(string tagName)
    {
        if (tagName.Length == 0)
            return null;
        var builder = new StringBuilder(tagName.Length + 1);
        // Envoy's tags never start with a digit; a foreign producer's might, and Prometheus refuses those.
        if (char.IsAsciiDigit(tagName[0]))
            builder.Append('_');
        AppendSanitized(builder, tagName);
        return builder.ToString();
    }

    public static bool IsValidLabelName(string name) =>
        name.Length > 0 && !char.IsAsciiDigit(name[0]) && !name.StartsWith("__", StringComparison.Ordinal) && name.All(IsNameChar);

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    // Per UTF-8 byte, as Envoy does: "é" (two bytes) becomes "__".
    private static void AppendSanitized(StringBuilder builder, string name)
    {
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (IsNameChar(c))
            {
                builder.Append(c);
            }
            else if (c < 0x80)
            {
                builder.Append('_');
            }
            else
            {
                var isPair = char.IsHighSurrogate(c) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1]);
                var bytes = isPair ? 4 : c < 0x800 ? 2 : 3;
                if (isPair)
                    i++;
                builder.Append('_', bytes);
            }
        }
    }

    /// <summary>Appends a label value in UTF-8 with the exposition format's escapes (<c>\\</c>, <c>\"</c>, <c>\n</c>).</summary>
    public static void AppendEscapedUtf8(List<byte> output, string value)
    {
        Span<byte> scratch = stackalloc byte[4];
        foreach (var rune in value.EnumerateRunes())
        {
            switch (rune.Value)
            {
                case '\\':
                    output.Add((byte)'\\');
                    output.Add((byte)'\\');
                    break;
                case '"':
                    output.Add((byte)'\\');
                    output.Add((byte)'"');
                    break;
                case '\n':
                    output.Add((byte)'\\');
                    output.Add((byte)'n');
                    break;
                default:
                    // Lone surrogates (from a producer's invalid UTF-8 or UTF-16) enumerate as U+FFFD: always valid UTF-8 out.
                    var n = rune.EncodeToUtf8(scratch);
                    for (var i = 0; i < n; i++)
                        output.Add(scratch[i]);
                    break;
            }
        }
    }

    /// <summary>A sample value as Prometheus writes it: shortest round-trip form, <c>NaN</c>, <c>+Inf</c>, <c>-Inf</c>.</summary>
    public static int FormatValue(double value, Span<byte> destination)
    {
        if (double.IsNaN(value))
            return Copy("NaN"u8, destination);
        if (double.IsPositiveInfinity(value))
            return Copy("+Inf"u8, destination);
        if (double.IsNegativeInfinity(value))
            return Copy("-Inf"u8, destination);
        value.TryFormat(destination, out var written, default, CultureInfo.InvariantCulture);
        return written;
    }

    public static int FormatValue(ulong value, Span<byte> destination)
    {
        value.TryFormat(destination, out var written, default, CultureInfo.InvariantCulture);
        return written;
    }

    private static int Copy(ReadOnlySpan<byte> text, Span<byte> destination)
    {
        text.CopyTo(destination);
        return text.Length;
    }
}
