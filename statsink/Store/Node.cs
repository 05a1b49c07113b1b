using System.Text;

namespace Legate.StatSink.Store;

/// <summary>
/// One Envoy (by <c>node.id</c>) and its series. Everything here changes under <see cref="Lock"/>: a flush is applied
/// as one unit, streams come and go, the sweeper expires series.
/// </summary>
internal sealed class Node
{
    private readonly List<object> _streams = [];

    public Node(string id, string cluster, StatSinkOptions options)
    {
        Id = id;
        SetCluster(cluster, options);
        Lookup = Series.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public string Id { get; }

    public string Cluster { get; private set; } = "";

    public Lock Lock { get; } = new();

    /// <summary>Series by their raw key (Envoy name, type, labels), looked up without allocating.</summary>
    public Dictionary<string, Series> Series { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, Series>.AlternateLookup<ReadOnlySpan<char>> Lookup { get; }

    /// <summary>Served series by exposed identity, to find two raw series that sanitize to the same one.</summary>
    public Dictionary<ExposedKey, Series> Exposed { get; } = [];

    /// <summary><c>envoy_node_id="…",envoy_node_cluster="…"</c>, appended to every series' labels.</summary>
    public byte[] NodeLabels { get; private set; } = [];

    /// <summary>Scratch space for building keys; used only under <see cref="Lock"/>.</summary>
    public char[] KeyBuffer { get; set; } = new char[256];

    /// <summary>The stream whose flushes count: the newest one still open.</summary>
    public object? Owner { get; private set; }

    public bool Connected => _streams.Count > 0;

    public long DisconnectedAt { get; private set; }

    /// <summary>Envoy's timestamp of the first flush statsink saw from this node (0 until one carries a timestamp).</summary>
    public long FirstFlushMs { get; set; }

    /// <summary>Set once the sweeper has dropped the node; a stream arriving after that makes a new one.</summary>
    public bool Removed { get; set; }

    /// <summary>Where the node is in finding out which series its new owner still sends (see <c>SeriesStore.Resync</c>).</summary>
    public ResyncStage Resync { get; set; }

    /// <summary>The timestamp of the owner's flush being applied, while <see cref="Resync"/> runs.</summary>
    public long ResyncFlushMs { get; set; }

    /// <summary>Moves on when a whole flush of a new owner begins; a series sent since carries it.</summary>
    public int Epoch { get; set; }

    public void SetCluster(string cluster, StatSinkOptions options)
    {
        Cluster = cluster;
        var labels = new List<byte>(64);
        AppendLabel(labels, options.NodeIdLabel, Id);
        if (options.NodeClusterLabel.Length > 0 && cluster.Length > 0)
        {
            labels.Add((byte)',');
            AppendLabel(labels, options.NodeClusterLabel, cluster);
        }
        NodeLabels = [.. labels];
    }

    private static void AppendLabel(List<byte> output, string name, string value)
    {
        output.AddRange(Encoding.UTF8.GetBytes(name));
        output.Add((byte)'=');
        output.Add((byte)'"');
        EnvoyNames.AppendEscapedUtf8(output, value);
        output.Add((byte)'"');
    }

    public void Attach(object stream)
    {
        _streams.Add(stream);
        SetOwner(stream);
    }

    public void Detach(object stream, long now)
    {
        _streams.Remove(stream);
        if (ReferenceEquals(Owner, stream))
            SetOwner(_streams.Count > 0 ? _streams[^1] : null);
        if (_streams.Count == 0)
            DisconnectedAt = now;
    }

    private void SetOwner(object? stream)
    {
        Owner = stream;
        // Another stream's flushes count now, perhaps another Envoy process's: which series it still sends is to be seen.
        if (stream is not null && Series.Count > 0)
        {
            Resync = ResyncStage.Started;
            ResyncFlushMs = 0;
        }
    }
}

/// <summary>How far a node is in checking which series a new owning stream still sends.</summary>
internal enum ResyncStage
{
    None,

    /// <summary>No flush from the new owner yet.</summary>
    Started,

    /// <summary>In its first flush, which may be the rest of one begun on the previous stream.</summary>
    FirstFlush,

    /// <summary>In its second flush, a whole one: when it ends, series it did not carry go.</summary>
    WholeFlush,
}

/// <summary>A series as Prometheus identifies it within one node: its family and its rendered labels.</summary>
internal readonly struct ExposedKey(Family family, byte[] labels) : IEquatable<ExposedKey>
{
    public Family Family { get; } = family;

    public byte[] Labels { get; } = labels;

    public bool Equals(ExposedKey other) => ReferenceEquals(Family, other.Family) && Labels.AsSpan().SequenceEqual(other.Labels);

    public override bool Equals(object? obj) => obj is ExposedKey other && Equals(other);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Family);
        hash.AddBytes(Labels);
        return hash.ToHashCode();
    }
}
