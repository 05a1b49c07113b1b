using Microsoft.Extensions.Options;

namespace Legate.StatSink;

/// <summary>How statsink turns Envoy's stats streams into Prometheus series. Bound from <c>Legate:StatSink</c>.</summary>
public sealed class StatSinkOptions
{
    public const string SectionName = "Legate:StatSink";

    /// <summary>
    /// What Envoy's counters carry: <c>cumulative</c> (Envoy's default, <c>report_counters_as_deltas: false</c>) or
    /// <c>delta</c> (<c>report_counters_as_deltas: true</c>). The stream cannot tell, so it must match Envoy's setting.
    /// </summary>
    public string CounterMode { get; set; } = "cumulative";

    /// <summary>Label carrying the Envoy's <c>node.id</c> on every series. Required: it keeps the fleet's series apart.</summary>
    public string NodeIdLabel { get; set; } = "envoy_node_id";

    /// <summary>Label carrying the Envoy's <c>node.cluster</c>; empty leaves it out.</summary>
    public string NodeClusterLabel { get; set; } = "envoy_node_cluster";

    /// <summary>How long a disconnected Envoy's series stay served (it reconnects at its next flush) before they are dropped.</summary>
    public TimeSpan DisconnectGracePeriod { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A series Envoy has not sent for this long is dropped. Must exceed Envoy's <c>stats_flush_interval</c> (at most 300 s).</summary>
    public TimeSpan SeriesTtl { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How often expired series and disconnected nodes are looked for.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Most series one Envoy may have; beyond it new series are dropped and counted.</summary>
    public int MaxSeriesPerNode { get; set; } = 200_000;

    /// <summary>Most series in total; beyond it new series are dropped and counted.</summary>
    public int MaxSeries { get; set; } = 2_000_000;

    /// <summary>Longest label value accepted; a series with a longer one is dropped and counted.</summary>
    public int MaxLabelValueLength { get; set; } = 2048;

    /// <summary>
    /// Longest series accepted, in characters: its Envoy name and every label's name and value together. A longer one
    /// is dropped and counted, and nothing of it is kept: this bounds a series' memory as the series limits bound their
    /// number (Envoy's stat names and tags can carry a cluster's or route's name, which the configuration chooses).
    /// </summary>
    public int MaxSeriesLength { get; set; } = 4096;

    /// <summary>Optional DogStatsD forwarding of every flush.</summary>
    public DogStatsdOptions DogStatsd { get; set; } = new();

    internal bool DeltaCounters => CounterMode == "delta";
}

/// <summary>Forwards each Envoy flush as DogStatsD datagrams over UDP, for Datadog agents.</summary>
public sealed class DogStatsdOptions
{
    public bool Enabled { get; set; }

    /// <summary>Agent address: an IP address or a host name, resolved at start.</summary>
    public string Host { get; set; } = "127.0.0.1";

    public int Port { get; set; } = 8125;

    /// <summary>Prefix of every metric name (<c>envoy.cluster.upstream_rq</c>).</summary>
    public string Prefix { get; set; } = "envoy";

    /// <summary>Largest datagram, in bytes: 1432 fits an Ethernet MTU; raise it on loopback or for the agent's UDS.</summary>
    public int MaxDatagramSize { get; set; } = 1432;

    /// <summary>Datagrams waiting to be sent; when full, new ones are dropped and counted.</summary>
    public int QueueCapacity { get; set; } = 4096;
}

internal sealed class StatSinkOptionsValidator : IValidateOptions<StatSinkOptions>
{
    public ValidateOptionsResult Validate(string? name, StatSinkOptions options)
    {
        const string S = StatSinkOptions.SectionName;
        var errors = new List<string>();
        if (options.CounterMode is not ("cumulative" or "delta"))
            errors.Add($"{S}:CounterMode must be 'cumulative' or 'delta' (was '{options.CounterMode}').");
        if (!EnvoyNames.IsValidLabelName(options.NodeIdLabel))
            errors.Add($"{S}:NodeIdLabel '{options.NodeIdLabel}' is not a Prometheus label name; it is required.");
        if (options.NodeClusterLabel.Length > 0 && !EnvoyNames.IsValidLabelName(options.NodeClusterLabel))
            errors.Add($"{S}:NodeClusterLabel '{options.NodeClusterLabel}' is not a Prometheus label name (empty leaves it out).");
        if (options.NodeClusterLabel == options.NodeIdLabel)
            errors.Add($"{S}:NodeClusterLabel and {S}:NodeIdLabel must differ.");
        // Every bucket and quantile line carries these too: a label twice makes Prometheus refuse the whole scrape.
        foreach (var (key, label) in new[] { ("NodeIdLabel", options.NodeIdLabel), ("NodeClusterLabel", options.NodeClusterLabel) })
        {
            if (label is "le" or "quantile")
                errors.Add($"{S}:{key} '{label}' is written by histograms or summaries themselves; choose another name.");
        }
        if (options.DisconnectGracePeriod < TimeSpan.Zero)
            errors.Add($"{S}:DisconnectGracePeriod must not be negative (was {options.DisconnectGracePeriod}).");
        if (options.SeriesTtl < TimeSpan.FromSeconds(1))
            errors.Add($"{S}:SeriesTtl must be at least 1 s, and longer than Envoy's stats_flush_interval (was {options.SeriesTtl}).");
        if (options.SweepInterval < TimeSpan.FromMilliseconds(100))
            errors.Add($"{S}:SweepInterval must be at least 100 ms (was {options.SweepInterval}).");
        if (options.MaxSeriesPerNode < 1)
            errors.Add($"{S}:MaxSeriesPerNode must be at least 1 (was {options.MaxSeriesPerNode}).");
        if (options.MaxSeries < 1)
            errors.Add($"{S}:MaxSeries must be at least 1 (was {options.MaxSeries}).");
        if (options.MaxLabelValueLength < 16)
            errors.Add($"{S}:MaxLabelValueLength must be at least 16 (was {options.MaxLabelValueLength}).");
        if (options.MaxSeriesLength < 256)
            errors.Add($"{S}:MaxSeriesLength must be at least 256 (was {options.MaxSeriesLength}).");
        var d = options.DogStatsd;
        if (d.Enabled)
        {
            if (string.IsNullOrWhiteSpace(d.Host))
                errors.Add($"{S}:DogStatsd:Host is required when DogStatsD forwarding is enabled.");
            if (d.Port is < 1 or > 65535)
                errors.Add($"{S}:DogStatsd:Port must be between 1 and 65535 (was {d.Port}).");
            if (d.MaxDatagramSize is < 512 or > 65_000)
                errors.Add($"{S}:DogStatsd:MaxDatagramSize must be between 512 and 65000 (was {d.MaxDatagramSize}).");
            if (d.QueueCapacity < 1)
                errors.Add($"{S}:DogStatsd:QueueCapacity must be at least 1 (was {d.QueueCapacity}).");
            if (d.Prefix.Any(c => c is ':' or '|' or '@' or '#' or ' ' or '\n'))
                errors.Add($"{S}:DogStatsd:Prefix '{d.Prefix}' must not contain ':', '|', '@', '#', spaces or newlines.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
