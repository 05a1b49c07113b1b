using Envoy.Config.Core.V3;
using Envoy.Service.Metrics.V3;
using Io.Prometheus.Client;

namespace Legate.Bench.StatSink;

/// <summary>
/// One Envoy's stats as its metrics service sink sends them (emit_tags_as_labels: true, cumulative counters,
/// HISTOGRAM mode): per upstream cluster 14 counters, 5 gauges and one request-time histogram over Envoy's 19
/// default bounds; one family per stat, one timestamp per flush. 20 stats a cluster.
/// </summary>
internal sealed class SimulatedEnvoy
{
    public const int StatsPerCluster = 20;
    private static readonly double[] Bounds = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
    private static readonly (string Name, (string, string)? Tag)[] Counters =
    [
        ("cluster.upstream_rq_total", null), ("cluster.upstream_rq", ("envoy.response_code", "200")), ("cluster.upstream_rq", ("envoy.response_code", "503")),
        ("cluster.upstream_rq_xx", ("envoy.response_code_class", "2")), ("cluster.upstream_rq_xx", ("envoy.response_code_class", "5")),
        ("cluster.upstream_cx_total", null), ("cluster.upstream_cx_destroy", null), ("cluster.upstream_rq_retry", null), ("cluster.upstream_rq_timeout", null),
        ("cluster.upstream_cx_connect_fail", null), ("cluster.membership_change", null), ("cluster.lb_healthy_panic", null),
        ("cluster.upstream_cx_rx_bytes_total", null), ("cluster.upstream_cx_tx_bytes_total", null),
    ];
    private static readonly string[] Gauges = ["cluster.upstream_cx_active", "cluster.upstream_rq_active", "cluster.membership_healthy", "cluster.membership_total", "cluster.circuit_breakers.default.cx_open"];

    private readonly string _id;
    private readonly LabelPair[][] _clusterLabels;
    private readonly LabelPair[][][] _counterLabels;
    private readonly double[] _counters;
    private readonly Random _random;
    private long _timestampMs = 1_767_225_600_000;
    private bool _identified;

    public SimulatedEnvoy(int index, int stats)
    {
        _id = $"envoy-{index:D3}";
        _random = new Random(index);
        var clusters = Math.Max(1, stats / StatsPerCluster);
        _clusterLabels = new LabelPair[clusters][];
        _counterLabels = new LabelPair[clusters][][];
        for (var c = 0; c < clusters; c++)
        {
            var cluster = new LabelPair { Name = "envoy.cluster_name", Value = $"outbound|8080||service-{c:D4}.default.svc.cluster.local" };
            _clusterLabels[c] = [cluster];
            _counterLabels[c] = Counters.Select(k => k.Tag is { } t ? new[] { new LabelPair { Name = t.Item1, Value = t.Item2 }, cluster } : new[] { cluster }).ToArray();
        }
        _counters = new double[clusters * Counters.Length];
    }

    public int Stats => _clusterLabels.Length * StatsPerCluster;

    /// <summary>The next flush: counters grow, gauges move, each histogram gets the interval's few samples.</summary>
    public StreamMetricsMessage Flush(bool timestamps = true)
    {
        _timestampMs += 5000;
        var ts = timestamps ? _timestampMs : 0;
        var message = new StreamMetricsMessage();
        if (!_identified)
        {
            message.Identifier = new StreamMetricsMessage.Types.Identifier { Node = new Node { Id = _id, Cluster = "bench" } };
            _identified = true;
        }
        var families = message.EnvoyMetrics;
        for (var c = 0; c < _clusterLabels.Length; c++)
        {
            for (var k = 0; k < Counters.Length; k++)
            {
                var i = c * Counters.Length + k;
                _counters[i] += _random.Next(0, 50);
                families.Add(Family(Counters[k].Name, MetricType.Counter, _counterLabels[c][k], ts, m => m.Counter = new Counter { Value = _counters[i] }));
            }
            foreach (var gauge in Gauges)
                families.Add(Family(gauge, MetricType.Gauge, _clusterLabels[c], ts, m => m.Gauge = new Gauge { Value = _random.Next(0, 100) }));
            var samples = (ulong)_random.Next(0, 40);
            var histogram = new Histogram { SampleCount = samples, SampleSum = samples * 12.5 };
            ulong cumulative = 0;
            foreach (var bound in Bounds)
            {
                if (bound >= 5 && cumulative < samples)
                    cumulative = Math.Min(samples, cumulative + (ulong)_random.Next(0, (int)samples + 1));
                histogram.Bucket.Add(new Bucket { UpperBound = bound, CumulativeCount = cumulative });
            }
            families.Add(Family("cluster.upstream_rq_time", MetricType.Histogram, _clusterLabels[c], ts, m => m.Histogram = histogram));
        }
        return message;
    }

    private static MetricFamily Family(string name, MetricType type, LabelPair[] labels, long ts, Action<Metric> fill)
    {
        var metric = new Metric { TimestampMs = ts };
        metric.Label.AddRange(labels);
        fill(metric);
        return new MetricFamily { Name = name, Type = type, Metric = { metric } };
    }
}
