using System.Buffers;
using System.Globalization;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Builds counter keys: <c>{prefix}{domain|key=value|key=value}:{unit}:{window start}</c>.
/// Unlike envoyproxy/ratelimit's <c>domain_key_value_..._start</c>, the parts are escaped and delimited, so two
/// different descriptors can never share a counter (<c>("a_b","c")</c> and <c>("a","b_c")</c> differ), and the unit is
/// in the key, so a SECOND and a MINUTE window starting at the same instant never collide. The braces are a Redis
/// Cluster hash tag: every window of one counter lives on one shard, and different counters spread over all.
/// </summary>
public static class CounterKey
{
    /// <summary>The key of one counter window.</summary>
    /// <param name="prefix">Namespace for every key of this deployment (e.g. <c>legate:rl:</c>); not escaped.</param>
    /// <param name="domain">The rate limit domain.</param>
    /// <param name="entries">The descriptor's entries, or the shared entries of a <c>share_threshold</c> rule.</param>
    /// <param name="unit">Window unit code, e.g. <c>s</c>, <c>m</c>, <c>h</c>.</param>
    /// <param name="windowStart">Unix seconds at which the window starts.</param>
    public static string Build<TEntries>(string prefix, string domain, TEntries entries, string unit, long windowStart)
        where TEntries : IReadOnlyList<KeyValuePair<string, string>>
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(unit);
        // Measured first and written once into the string: no builder, no copy (this runs per descriptor per call).
        var length = prefix.Length + 1 + EscapedLength(domain) + 2 + unit.Length + 1 + Digits(windowStart);
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            length += 2 + EscapedLength(entry.Key) + EscapedLength(entry.Value);
        }
        return string.Create(length, (prefix, domain, entries, unit, windowStart), static (span, state) =>
        {
            var at = Write(span, 0, state.prefix);
            span[at++] = '{';
            at = WriteEscaped(span, at, state.domain);
            for (var i = 0; i < state.entries.Count; i++)
            {
                var entry = state.entries[i];
                span[at++] = '|';
                at = WriteEscaped(span, at, entry.Key);
                span[at++] = '=';
                at = WriteEscaped(span, at, entry.Value);
            }
            span[at++] = '}';
            span[at++] = ':';
            at = Write(span, at, state.unit);
            span[at++] = ':';
            state.windowStart.TryFormat(span[at..], out _, default, CultureInfo.InvariantCulture);
        });
    }

    private static readonly SearchValues<char> Delimiters = SearchValues.Create("%|={}:");

    private static int Digits(long value)
    {
        if (value < 0)
            return value.ToString(CultureInfo.InvariantCulture).Length;
        var digits = 1;
        for (; value >= 10; value /= 10)
            digits++;
        return digits;
    }

    // A delimiter (or '%' itself) takes three characters: percent-encoded, so no value can imitate a boundary.
    private static int EscapedLength(string text)
    {
        var span = text.AsSpan();
        var first = span.IndexOfAny(Delimiters);
        if (first < 0)
            return text.Length; // the usual case: nothing to escape
        var length = text.Length;
        foreach (var c in span[first..])
        {
            if (Delimiters.Contains(c))
                length += 2;
        }
        return length;
    }

    private static int Write(Span<char> span, int at, string text)
    {
        text.CopyTo(span[at..]);
        return at + text.Length;
    }

    private static int WriteEscaped(Span<char> span, int at, string text)
    {
        if (!text.AsSpan().ContainsAny(Delimiters))
            return Write(span, at, text);
        foreach (var c in text)
        {
            var code = c switch
            {
                '%' => "%25",
                '|' => "%7C",
                '=' => "%3D",
                '{' => "%7B",
                '}' => "%7D",
                ':' => "%3A",
                _ => null,
            };
            if (code is null)
                span[at++] = c;
            else
                at = Write(span, at, code);
        }
        return at;
    }
}
