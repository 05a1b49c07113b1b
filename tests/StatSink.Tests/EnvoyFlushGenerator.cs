using Envoy.Config.Core.V3;
using Envoy.Service.Metrics.V3;
using Io.Prometheus.Client;

namespace Legate.StatSink.Tests;

/// <summary>How Envoy emits histograms to the metrics service (<c>histogram_emit_mode</c>).</summary>
public enum HistogramEmitMode
{
    SummaryAndHistogram,
    Summary,
    Histogram,
}

/// <summary>
/// A simulated Envoy's metrics service sink, built from what Envoy's <c>grpc_metrics_service_impl</c> sends: one
/// family per stat with exactly one metric, one timestamp for the whole flush, counters cumulative or as deltas,
/// histograms as the interval's buckets over Envoy's 19 default bounds (no +Inf bucket), summaries of the interval
/// with Envoy's 10 quantiles (NaN when it had no samples), the same name twice in SUMMARY_AND_HISTOGRAM mode, tags
/// as labels (<c>envoy.cluster_name</c>, raw) or embedded in the stat name. Tests record traffic, then flush.
/// </summary>
public sealed class EnvoyFlushGenerator
{
    public static readonly double[] DefaultBounds = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
    public static readonly double[] EnvoyQuantiles = [0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1];

    private readonly Dictionary<string, Stat> _stats = new(StringComparer.Ordinal);
    private readonly List<Stat> _order = [];
    private bool _identified;

    public EnvoyFlushGenerator(string nodeId, string cluster = "edge", long startMs = 1_767_225_600_000)
    {
        NodeId = nodeId;
        Cluster = cluster;
        TimestampMs = startMs;
    }

    public string NodeId { get; }

    public string Cluster { get; }

    /// <summary><c>emit_tags_as_labels</c>.</summary>
    public bool TagsAsLabels { get; init; } = true;

    /// <summary><c>report_counters_as_deltas</c>.</summary>
    public bool DeltaCounters { get; init; }

    public HistogramEmitMode HistogramMode { get; init; } = HistogramEmitMode.SummaryAndHistogram;

    /// <summary>Milliseconds between flushes (<c>stats_flush_interval</c>).</summary>
    public int FlushIntervalMs { get; init; } = 5000;

    public long TimestampMs { get; private set; }

    /// <summary>Adds to a counter. Tags are (name, value) pairs with Envoy's raw tag names.</summary>
    public void Count(string name, double by, params (string Name, string Value)[] tags) => Get(name, tags, StatKind.Counter).Value += by;

    public void Set(string name, double value, params (string Name, string Value)[] tags) => Get(name, tags, StatKind.Gauge).Value = value;

    public void Record(string name, double value, params (string Name, string Value)[] tags) => Get(name, tags, StatKind.Histogram).Interval.Add(value);

    /// <summary>A request through a cluster, as the router counts it: <c>upstream_rq_total</c>, <c>upstream_rq{code}</c>, <c>upstream_rq_xx{class}</c>, <c>upstream_rq_time</c>.</summary>
    public void Request(string cluster, int code, double latencyMs)
    {
        var c = ("envoy.cluster_name", cluster);
        Count("cluster.upstream_rq_total", 1, c);
        Count("cluster.upstream_rq", 1, ("envoy.response_code", code.ToString(System.Globalization.CultureInfo.InvariantCulture)), c);
        Count("cluster.upstream_rq_xx", 1, ("envoy.response_code_class", (code / 100).ToString(System.Globalization.CultureInfo.InvariantCulture)), c);
        Record("cluster.upstream_rq_time", latencyMs, c);
    }

    /// <summary>The next flush as one message (the node identifier on the first message of a stream only).</summary>
    public StreamMetricsMessage Flush() => Flush(int.MaxValue)[0];

    /// <summary>The next flush in messages of at most <paramref name="batchSize"/> families (Envoy's <c>batch_size</c>).</summary>
    public IReadOnlyList<StreamMetricsMessage> Flush(int batchSize)
    {
        TimestampMs += FlushIntervalMs;
        var families = new List<MetricFamily>();
        foreach (var stat in _order)
            families.AddRange(Emit(stat));
        var messages = new List<StreamMetricsMessage>();
        for (var i = 0; i == 0 || i < families.Count; i += batchSize)
        {
            var message = new StreamMetricsMessage();
            message.EnvoyMetrics.AddRange(families.Skip(i).Take(batchSize));
            messages.Add(message);
        }
        if (!_identified)
        {
            messages[0].Identifier = new StreamMetricsMessage.Types.Identifier { Node = new Node { Id = NodeId, Cluster = Cluster } };
            _identified = true;
        }
        return messages;
    }

    /// <summary>Envoy opened a new stream (reconnect): the next message carries the identifier again.</summary>
    public void NewStream() => _identified = false;

    /// <summary>Envoy restarted: every stat starts from zero.</summary>
    public void Restart()
    {
        foreach (var stat in _order)
        {
            stat.Value = 0;
            stat.Reported = 0;
            stat.Interval.Clear();
        }
        NewStream();
    }

    private IEnumerable<MetricFamily> Emit(Stat stat)
    {
        switch (stat.Kind)
        {
            case StatKind.Counter:
                var value = DeltaCounters ? stat.Value - stat.Reported : stat.Value;
                stat.Reported = stat.Value;
                yield return Family(stat, MetricType.Counter, m => m.Counter = new Counter { Value = value });
                break;
            case StatKind.Gauge:
                yield return Family(stat, MetricType.Gauge, m => m.Gauge = new Gauge { Value = stat.Value });
                break;
            default:
                var samples = stat.Interval.ToArray();
                stat.Interval.Clear();
                var sum = samples.Sum();
                if (HistogramMode != HistogramEmitMode.Histogram)
                {
                    var summary = new Summary { SampleCount = (ulong)samples.Length, SampleSum = sum };
                    foreach (var q in EnvoyQuantiles)
                        summary.Quantile.Add(new Quantile { Quantile_ = q, Value = QuantileOf(samples, q) });
                    yield return Family(stat, MetricType.Summary, m => m.Summary = summary);
                }
                if (HistogramMode != HistogramEmitMode.Summary)
                {
                    var histogram = new Histogram { SampleCount = (ulong)samples.Length, SampleSum = sum };
                    foreach (var bound in DefaultBounds)
                        histogram.Bucket.Add(new Bucket { UpperBound = bound, CumulativeCount = (ulong)samples.Count(s => s <= bound) });
                    yield return Family(stat, MetricType.Histogram, m => m.Histogram = histogram);
                }
                break;
        }
    }

    private MetricFamily Family(Stat stat, MetricType type, Action<Metric> fill)
    {
        var metric = new Metric { TimestampMs = TimestampMs };
        fill(metric);
        var family = new MetricFamily { Type = type, Metric = { metric } };
        if (TagsAsLabels)
        {
            family.Name = stat.Name;
            foreach (var (name, value) in stat.Tags)
                metric.Label.Add(new LabelPair { Name = name, Value = value });
        }
        else
        {
            family.Name = stat.FullName;
        }
        return family;
    }

    // Envoy interpolates within its circllhist bins; nearest rank is close enough for tests, which check NaN and order.
    private static double QuantileOf(double[] samples, double q)
    {
        if (samples.Length == 0)
            return double.NaN;
        var sorted = samples.Order().ToArray();
        return sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(q * sorted.Length))];
    }

    private Stat Get(string name, (string Name, string Value)[] tags, StatKind kind)
    {
        var key = name + "|" + string.Join('|', tags.Select(t => t.Name + "=" + t.Value));
        if (!_stats.TryGetValue(key, out var stat))
        {
            stat = new Stat(name, tags, kind);
            _stats.Add(key, stat);
            _order.Add(stat);
        }
        return stat;
    }

    private enum StatKind
    {
        Counter,
        Gauge,
        Histogram,
    }

    private sealed class Stat(string name, (string Name, string Value)[] tags, StatKind kind)
    {
        public string Name { get; } = name;

        public (string Name, string Value)[] Tags { get; } = tags;

        public StatKind Kind { get; } = kind;

        /// <summary>The stat's full name as Envoy has it before tag extraction: tag values put back after the first segment.</summary>
        public string FullName { get; } = tags.Length == 0 ? name
            : name.Insert(name.IndexOf('.', StringComparison.Ordinal) is var dot and > 0 ? dot : name.Length,
                string.Concat(tags.Select(t => "." + t.Value)));

        public double Value { get; set; }

        public double Reported { get; set; }

        public List<double> Interval { get; } = [];
    }
}
