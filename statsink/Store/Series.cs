using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Legate.StatSink.Store;

internal enum SeriesKind : byte
{
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

/// <summary>
/// One exposed metric family (a name and a type) across every node. Its series list is what a scrape walks;
/// it changes only when a series is created or removed, under <see cref="Lock"/>.
/// </summary>
internal sealed class Family
{
    public Family(string name, SeriesKind kind)
    {
        Name = name;
        Kind = kind;
        NameUtf8 = Encoding.UTF8.GetBytes(name);
        // OpenMetrics names a counter family without "_total" and its sample with it; a counter without the
        // suffix is declared "unknown" there, so the stored series name stays Envoy's (prometheus-net does the same).
        OpenMetricsCounter = kind == SeriesKind.Counter && name.EndsWith("_total", StringComparison.Ordinal);
    }

    public string Name { get; }

    public SeriesKind Kind { get; }

    public byte[] NameUtf8 { get; }

    public bool OpenMetricsCounter { get; }

    public Lock Lock { get; } = new();

    /// <summary>Guarded by <see cref="Lock"/>.</summary>
    public List<Series> Series { get; } = [];

    /// <summary>Every series name this family writes, which no other family may write too.</summary>
    public IEnumerable<string> Claims()
    {
        yield return Name;
        switch (Kind)
        {
            case SeriesKind.Histogram:
                yield return Name + "_bucket";
                yield return Name + "_sum";
                yield return Name + "_count";
                break;
            case SeriesKind.Summary:
                yield return Name + "_sum";
                yield return Name + "_count";
                break;
        }
    }
}

/// <summary>
/// One exposed series of one node. Counter, gauge and untyped values are single doubles (atomic to read);
/// histogram and summary state changes under the series' own lock, so a scrape sees buckets, sum and count of one update.
/// </summary>
internal sealed class Series(Family? family, Node node, string key, byte[] labels)
{
    public Family? Family { get; } = family;

    public Node Node { get; } = node;

    /// <summary>The node's key of this series (raw Envoy name, type and labels).</summary>
    public string Key { get; } = key;

    /// <summary><c>a="x",b="y"</c> with the node labels, UTF-8 and escaped, without braces.</summary>
    public byte[] Labels { get; } = labels;

    /// <summary>Set for a placeholder that remembers why the raw series is not served, so the decision is not remade each flush.</summary>
    public DropReason Dropped { get; init; }

    /// <summary>For a conflict's placeholder: the store's count of removed series when it was refused (see <see cref="SeriesStore"/>).</summary>
    public int Removals { get; init; }

    /// <summary>
    /// Set on a series served once a conflict that refused it has gone: Envoy was sending it all along, so its first
    /// counter value is not an increase (it is not a stat Envoy just began to use).
    /// </summary>
    public bool RefusedBefore { get; set; }

    /// <summary>Position in <see cref="Family"/>'s list, for O(1) removal.</summary>
    public int Index { get; set; }

    public long LastSeen { get; set; }

    /// <summary>The node's <see cref="Node.Epoch"/> when the series was last sent.</summary>
    public int Epoch { get; set; }

    public long LastTimestampMs { get; set; }

    /// <summary>Set once a sample was applied; until then the series is not written.</summary>
#pragma warning disable CA1051 // a field, for Volatile.Read
    public bool HasValue;
#pragma warning restore CA1051

    public double Value { get; set; }

    public Lock Lock { get; } = new();

    public BoundSet? Bounds { get; set; }

    public ulong[]? Buckets { get; set; }

    public QuantileSet? Quantiles { get; set; }

    public double[]? QuantileValues { get; set; }

    public ulong Count { get; set; }

    public double Sum { get; set; }
}

/// <summary>A histogram's bucket bounds with their <c>le="…"</c> label text, shared by every series with the same bounds.</summary>
internal sealed class BoundSet
{
    private static readonly ConcurrentDictionary<string, BoundSet> Interned = new(StringComparer.Ordinal);

    private BoundSet(double[] values)
    {
        Values = values;
        Le = values.Select(v => Encoding.UTF8.GetBytes($"le=\"{Format(v)}\"")).ToArray();
    }

    public double[] Values { get; }

    public byte[][] Le { get; }

    public static BoundSet Get(double[] values)
    {
        var key = string.Join(',', values.Select(Format));
        if (Interned.TryGetValue(key, out var set))
            return set;
        // Producers choose bounds from their configuration: few distinct sets; a cap keeps a hostile one bounded.
        return Interned.Count < 1024 ? Interned.GetOrAdd(key, _ => new BoundSet(values)) : new BoundSet(values);
    }

    internal static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>A summary's quantiles with their <c>quantile="…"</c> label text.</summary>
internal sealed class QuantileSet
{
    private static readonly ConcurrentDictionary<string, QuantileSet> Interned = new(StringComparer.Ordinal);

    private QuantileSet(double[] values)
    {
        Values = values;
        Labels = values.Select(v => Encoding.UTF8.GetBytes($"quantile=\"{BoundSet.Format(v)}\"")).ToArray();
    }

    public double[] Values { get; }

    public byte[][] Labels { get; }

    public static QuantileSet Get(double[] values)
    {
        var key = string.Join(',', values.Select(BoundSet.Format));
        if (Interned.TryGetValue(key, out var set))
            return set;
        return Interned.Count < 1024 ? Interned.GetOrAdd(key, _ => new QuantileSet(values)) : new QuantileSet(values);
    }
}
