using System.Buffers;
using System.Globalization;
using System.Text;

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
    [ThreadStatic]
    private static StringBuilder? _builder;

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
        var builder = _builder ??= new StringBuilder(128);
        builder.Clear();
        builder.Append(prefix).Append('{');
        AppendEscaped(builder, domain);
        for (var i = 0; i < entries.Count; i++)
        {
            builder.Append('|');
            AppendEscaped(builder, entries[i].Key);
            builder.Append('=');
            AppendEscaped(builder, entries[i].Value);
        }
        builder.Append("}:").Append(unit).Append(':').Append(CultureInfo.InvariantCulture, $"{windowStart}");
        var key = builder.ToString();
        if (builder.Capacity > 1024)
            _builder = null; // do not keep a huge buffer alive for one odd request
        return key;
    }

    private static readonly SearchValues<char> Delimiters = SearchValues.Create("%|={}:");

    // Percent-encodes the delimiters (and '%' itself), so no value can imitate a boundary.
    private static void AppendEscaped(StringBuilder builder, string text)
    {
        if (!text.AsSpan().ContainsAny(Delimiters))
        {
            builder.Append(text); // the usual case: nothing to escape
            return;
        }
        foreach (var c in text)
        {
            switch (c)
            {
                case '%': builder.Append("%25"); break;
                case '|': builder.Append("%7C"); break;
                case '=': builder.Append("%3D"); break;
                case '{': builder.Append("%7B"); break;
                case '}': builder.Append("%7D"); break;
                case ':': builder.Append("%3A"); break;
                default: builder.Append(c); break;
            }
        }
    }
}
