using Envoy.Config.Core.V3;
using Envoy.Service.Metrics.V3;
using Io.Prometheus.Client;

namespace Legate.StatSink.Tests;

/// <summary>Envoy's stream to Prometheus series: naming, types, counters in both modes, histograms, summaries, bad input (research section c).</summary>
public sealed class TranslationTests : IDisposable
{
    private const string Node = "envoy_node_id=\"envoy-1\",envoy_node_cluster=\"edge\"";
    private readonly StatSinkHarness _sink;

    public TranslationTests() => _sink = new StatSinkHarness();

    public void Dispose() => _sink.Dispose();

    private static StreamMetricsMessage Identified(params MetricFamily[] families) => new()
    {
        Identifier = new StreamMetricsMessage.Types.Identifier { Node = new Node { Id = "envoy-1", Cluster = "edge" } },
        EnvoyMetrics = { families },
    };

    private static MetricFamily Fam(string name, MetricType? type, Metric metric)
    {
        var family = new MetricFamily { Name = name, Metric = { metric } };
        if (type is { } t)
            family.Type = t;
        return family;
    }

    private static Metric Counter(double value, long ts = 1000, params (string, string)[] labels) => Labels(new Metric { Counter = new Counter { Value = value }, TimestampMs = ts }, labels);

    private static Metric Gauge(double value, long ts = 1000, params (string, string)[] labels) => Labels(new Metric { Gauge = new Gauge { Value = value }, TimestampMs = ts }, labels);

    private static Metric Labels(Metric metric, (string Name, string Value)[] labels)
    {
        foreach (var (name, value) in labels)
            metric.Label.Add(new LabelPair { Name = name, Value = value });
        return metric;
    }

    [Fact]
    public async Task RealisticFlushes_TagsAsLabels_ServeEnvoysAdminNames()
    {
        var envoy = new EnvoyFlushGenerator("envoy-1");
        envoy.Request("backend", 200, 3);
        envoy.Request("backend", 200, 40);
        envoy.Request("backend", 503, 7000);
        envoy.Set("cluster.upstream_cx_active", 2, ("envoy.cluster_name", "backend"));
        envoy.Set("server.live", 1);
        await _sink.SendFlushAsync(envoy);
        envoy.Request("backend", 200, 0.2);
        await _sink.SendFlushAsync(envoy);

        var scrape = await _sink.ScrapeAsync();
        const string B = "envoy_cluster_name=\"backend\"," + Node;
        Assert.Equal("counter", scrape.Types["envoy_cluster_upstream_rq_total"]);
        Assert.Equal(4, scrape[$"envoy_cluster_upstream_rq_total{{{B}}}"]);
        Assert.Equal(3, scrape[$"envoy_cluster_upstream_rq{{envoy_response_code=\"200\",{B}}}"]);
        Assert.Equal(1, scrape[$"envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"5\",{B}}}"]);
        Assert.Equal("gauge", scrape.Types["envoy_cluster_upstream_cx_active"]);
        Assert.Equal(2, scrape[$"envoy_cluster_upstream_cx_active{{{B}}}"]);
        Assert.Equal(1, scrape[$"envoy_server_live{{{Node}}}"]);

        // Interval histograms accumulated into one cumulative histogram, as Envoy's admin endpoint shows it.
        Assert.Equal("histogram", scrape.Types["envoy_cluster_upstream_rq_time"]);
        Assert.Equal(1, scrape[$"envoy_cluster_upstream_rq_time_bucket{{{B},le=\"0.5\"}}"]);
        Assert.Equal(2, scrape[$"envoy_cluster_upstream_rq_time_bucket{{{B},le=\"5\"}}"]);
        Assert.Equal(3, scrape[$"envoy_cluster_upstream_rq_time_bucket{{{B},le=\"50\"}}"]);
        Assert.Equal(4, scrape[$"envoy_cluster_upstream_rq_time_bucket{{{B},le=\"10000\"}}"]);
        Assert.Equal(4, scrape[$"envoy_cluster_upstream_rq_time_bucket{{{B},le=\"3600000\"}}"]);
        Assert.Equal(4, scrape[$"envoy_cluster_upstream_rq_time_bucket{{{B},le=\"+Inf\"}}"]);
        Assert.Equal(4, scrape[$"envoy_cluster_upstream_rq_time_count{{{B}}}"]);
        Assert.Equal(7043.2, scrape[$"envoy_cluster_upstream_rq_time_sum{{{B}}}"], 6);
        Assert.Equal(20, scrape.SeriesOf("envoy_cluster_upstream_rq_time_bucket").Count());

        // The same name as a summary (SUMMARY_AND_HISTOGRAM): its own family, no type clash; quantiles of the last interval.
        Assert.Equal("summary", scrape.Types["envoy_cluster_upstream_rq_time_quantiles"]);
        Assert.Equal(0.2, scrape[$"envoy_cluster_upstream_rq_time_quantiles{{{B},quantile=\"0.5\"}}"]);
        Assert.Equal(4, scrape[$"envoy_cluster_upstream_rq_time_quantiles_count{{{B}}}"]);
    }

    [Fact]
    public async Task EmptyInterval_QuantilesAreNaN_HistogramStaysClean()
    {
        var envoy = new EnvoyFlushGenerator("envoy-1");
        envoy.Record("http.downstream_rq_time", 12, ("envoy.http_conn_manager_prefix", "ingress"));
        await _sink.SendFlushAsync(envoy);
        await _sink.SendFlushAsync(envoy);
        await _sink.SendFlushAsync(envoy);

        var scrape = await _sink.ScrapeAsync();
        const string L = "envoy_http_conn_manager_prefix=\"ingress\"," + Node;
        Assert.Equal("NaN", scrape.Samples[$"envoy_http_downstream_rq_time_quantiles{{{L},quantile=\"0.99\"}}"]);
        Assert.Equal(1, scrape[$"envoy_http_downstream_rq_time_count{{{L}}}"]);
        Assert.Equal(12, scrape[$"envoy_http_downstream_rq_time_sum{{{L}}}"]);
        Assert.Equal(12, scrape[$"envoy_http_downstream_rq_time_quantiles_sum{{{L}}}"]);
    }

    [Fact]
    public async Task TagsInNames_SanitizedLikeEnvoy()
    {
        var envoy = new EnvoyFlushGenerator("envoy-1") { TagsAsLabels = false, HistogramMode = HistogramEmitMode.Histogram };
        envoy.Request("outbound|9080||reviews.default.svc.cluster.local", 200, 3);
        await _sink.SendFlushAsync(envoy);

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(1, scrape[$"envoy_cluster_outbound_9080__reviews_default_svc_cluster_local_upstream_rq_total{{{Node}}}"]);
        Assert.Equal(1, scrape[$"envoy_cluster_outbound_9080__reviews_default_svc_cluster_local_upstream_rq_time_count{{{Node}}}"]);
        Assert.DoesNotContain(scrape.Types.Keys, k => k.EndsWith("_quantiles", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CumulativeCounters_DropIsAnEnvoyRestart_ServedAsEnvoysValue()
    {
        var envoy = new EnvoyFlushGenerator("envoy-1");
        envoy.Count("cluster.upstream_rq_total", 100, ("envoy.cluster_name", "b"));
        await _sink.SendFlushAsync(envoy);
        envoy.Count("cluster.upstream_rq_total", 5, ("envoy.cluster_name", "b"));
        await _sink.SendFlushAsync(envoy);
        var series = $"envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"b\",{Node}}}";
        Assert.Equal(105, (await _sink.ScrapeAsync())[series]);

        envoy.Restart();
        envoy.Count("cluster.upstream_rq_total", 3, ("envoy.cluster_name", "b"));
        await _sink.SendFlushAsync(envoy);

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(3, scrape[series]);
        Assert.Equal(1, scrape["legate_statsink_resets_total{kind=\"counter\"}"]);
    }

    [Fact]
    public async Task DeltaCounters_Accumulate_AcrossReconnectsAndEnvoyRestarts()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?> { ["Legate:StatSink:CounterMode"] = "delta" });
        var envoy = new EnvoyFlushGenerator("envoy-1") { DeltaCounters = true };
        envoy.Count("http.downstream_rq_total", 7);
        await sink.SendFlushAsync(envoy);
        envoy.Count("http.downstream_rq_total", 5);
        envoy.NewStream();
        await sink.SendFlushAsync(envoy);
        envoy.Restart();
        envoy.Count("http.downstream_rq_total", 2);
        await sink.SendFlushAsync(envoy);

        Assert.Equal(14, (await sink.ScrapeAsync())[$"envoy_http_downstream_rq_total{{{Node}}}"]);
    }

    [Fact]
    public async Task DuplicateDelivery_SameTimestamp_AppliedOnce()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?> { ["Legate:StatSink:CounterMode"] = "delta" });
        await sink.SendAsync(Identified(Fam("a", MetricType.Counter, Counter(5, ts: 77))), new StreamMetricsMessage { EnvoyMetrics = { Fam("a", MetricType.Counter, Counter(5, ts: 77)) } });
        await sink.SendAsync(Identified(Fam("a", MetricType.Counter, Counter(1, ts: 0))), new StreamMetricsMessage { EnvoyMetrics = { Fam("a", MetricType.Counter, Counter(1, ts: 0)) } });

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(7, scrape[$"envoy_a{{{Node}}}"]);
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"duplicate\"}"]);
    }

    [Fact]
    public async Task Names_Sanitized_CollisionsAndTypeConflictsDroppedAndCounted()
    {
        await _sink.SendAsync(Identified(
            Fam("a.b_c", MetricType.Counter, Counter(1)),
            Fam("a_b.c", MetricType.Counter, Counter(2)),                       // same name after sanitizing: dropped
            Fam("odd|name:with-~ chars.é", MetricType.Gauge, Gauge(3)),
            Fam("9lives", MetricType.Gauge, Gauge(4)),
            Fam("x", MetricType.Gauge, Gauge(5)),
            Fam("x", MetricType.Counter, Counter(6, labels: ("k", "v"))),     // x is a gauge already
            Fam("h", MetricType.Histogram, new Metric { Histogram = new Histogram { SampleCount = 1, SampleSum = 1, Bucket = { new Bucket { UpperBound = 1, CumulativeCount = 1 } } }, TimestampMs = 1 }),
            Fam("h_count", MetricType.Counter, Counter(7)),                   // the histogram writes h_count
            Fam("", MetricType.Counter, Counter(8))));

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(1, scrape[$"envoy_a_b_c{{{Node}}}"]);
        Assert.Equal(3, scrape[$"envoy_odd_name_with___chars___{{{Node}}}"]);
        Assert.Equal(4, scrape[$"envoy_9lives{{{Node}}}"]);
        Assert.Equal(5, scrape[$"envoy_x{{{Node}}}"]);
        Assert.Equal(1, scrape[$"envoy_h_count{{{Node}}}"]);
        Assert.Equal(2, scrape["legate_statsink_series_dropped_total{reason=\"name_collision\"}"]);
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"type_conflict\"}"]);
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"invalid\"}"]);
    }

    [Fact]
    public async Task Labels_SanitizedEscapedAndDeduplicated()
    {
        await _sink.SendAsync(Identified(
            Fam("g", MetricType.Gauge, Gauge(1, labels: [("envoy.cluster_name", "q\"uo\\te\nnl"), ("envoy_cluster_name", "dup"), ("__reserved", "r"), ("envoy_node_id", "spoof"), ("empty", ""), ("9d", "x")])),
            Fam("hist", MetricType.Histogram, Labels(new Metric { Histogram = new Histogram { SampleCount = 0 }, TimestampMs = 1 }, [("le", "mine")])),
            Fam("sum", MetricType.Summary, Labels(new Metric { Summary = new Summary { Quantile = { new Quantile { Quantile_ = 0.5, Value = 1 } } }, TimestampMs = 1 }, [("quantile", "mine")])),
            Fam("huge", MetricType.Gauge, Gauge(1, labels: ("k", new string('v', 3000))))));

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(1, scrape[$"envoy_g{{envoy_cluster_name=\"q\\\"uo\\\\te\\nnl\",exported___reserved=\"r\",exported_envoy_node_id=\"spoof\",_9d=\"x\",{Node}}}"]);
        Assert.Equal(0, scrape[$"envoy_hist_count{{exported_le=\"mine\",{Node}}}"]);
        Assert.Equal(1, scrape[$"envoy_sum_quantiles{{exported_quantile=\"mine\",{Node},quantile=\"0.5\"}}"]);
        Assert.Equal(2, scrape["legate_statsink_labels_dropped_total"]);
        // Longer than MaxLabelValueLength (2048): the series is refused.
        Assert.Empty(scrape.SeriesOf("envoy_huge"));
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"too_long\"}"]);
    }

    [Fact]
    public async Task Types_AbsentInferred_MismatchInvalid_UntypedServed_GaugeHistogramUnsupported()
    {
        await _sink.SendAsync(Identified(
            Fam("no_type_gauge", null, Gauge(2)),
            Fam("declared_counter_sent_gauge", MetricType.Counter, Gauge(3)),
            Fam("u", MetricType.Untyped, new Metric { Untyped = new Untyped { Value = 4 } }),
            Fam("gh", MetricType.GaugeHistogram, new Metric { Histogram = new Histogram() }),
            new MetricFamily { Name = "empty_family", Type = MetricType.Counter },
            new MetricFamily { Name = "two", Type = MetricType.Counter, Metric = { Counter(1, labels: ("k", "a")), Counter(2, labels: ("k", "b")) }, Unit = "seconds", Help = "help" }));

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal("gauge", scrape.Types["envoy_no_type_gauge"]);
        Assert.Equal(2, scrape[$"envoy_no_type_gauge{{{Node}}}"]);
        Assert.False(scrape.Types.ContainsKey("envoy_declared_counter_sent_gauge"));
        Assert.Equal("untyped", scrape.Types["envoy_u"]);
        Assert.Equal(4, scrape[$"envoy_u{{{Node}}}"]);
        Assert.False(scrape.Types.ContainsKey("envoy_empty_family"));
        Assert.Equal(2, scrape[$"envoy_two{{k=\"b\",{Node}}}"]);
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"invalid\"}"]);
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"unsupported\"}"]);
    }

    [Fact]
    public async Task Values_NaNAndNegativeCountersRefused_GaugesKeepThem_LargeValuesExact()
    {
        await _sink.SendAsync(Identified(
            Fam("c_nan", MetricType.Counter, Counter(double.NaN)),
            Fam("c_neg", MetricType.Counter, Counter(-1)),
            Fam("c_inf", MetricType.Counter, Counter(double.PositiveInfinity)),
            Fam("c_big", MetricType.Counter, Counter(9007199254740993)),
            Fam("g_nan", MetricType.Gauge, Gauge(double.NaN)),
            Fam("g_inf", MetricType.Gauge, Gauge(double.NegativeInfinity))));

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(3, scrape["legate_statsink_series_dropped_total{reason=\"invalid\"}"]);
        Assert.Equal("9007199254740992", scrape.Samples[$"envoy_c_big{{{Node}}}"]);
        Assert.Equal("NaN", scrape.Samples[$"envoy_g_nan{{{Node}}}"]);
        Assert.Equal("-Inf", scrape.Samples[$"envoy_g_inf{{{Node}}}"]);
    }

    private static Metric Hist(ulong count, double sum, params (double Bound, ulong Count)[] buckets)
    {
        var h = new Histogram { SampleCount = count, SampleSum = sum };
        foreach (var (bound, c) in buckets)
            h.Bucket.Add(new Bucket { UpperBound = bound, CumulativeCount = c });
        return new Metric { Histogram = h };
    }

    [Fact]
    public async Task Histograms_MalformedRefused_InfBucketFolded_BoundChangeResets()
    {
        await _sink.SendAsync(Identified(
            Fam("unsorted", MetricType.Histogram, Hist(2, 1, (5, 1), (1, 2))),
            Fam("dup_bounds", MetricType.Histogram, Hist(2, 1, (1, 1), (1, 2))),
            Fam("nan_bound", MetricType.Histogram, Hist(2, 1, (double.NaN, 1))),
            Fam("decreasing", MetricType.Histogram, Hist(2, 1, (1, 2), (5, 1))),
            Fam("over_count", MetricType.Histogram, Hist(1, 1, (1, 2))),
            Fam("nan_sum", MetricType.Histogram, Hist(1, double.NaN, (1, 1))),
            Fam("with_inf", MetricType.Histogram, Hist(3, 6, (1, 1), (double.PositiveInfinity, 3))),
            Fam("no_buckets", MetricType.Histogram, Hist(2, 3)),
            Fam("rebucketed", MetricType.Histogram, Hist(2, 3, (1, 1), (10, 2)))));
        await _sink.SendAsync(Identified(Fam("rebucketed", MetricType.Histogram, Hist(1, 7, (1, 0), (5, 1), (10, 1)))));

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(6, scrape["legate_statsink_series_dropped_total{reason=\"invalid\"}"]);
        Assert.Equal(1, scrape[$"envoy_with_inf_bucket{{{Node},le=\"1\"}}"]);
        Assert.Equal(3, scrape[$"envoy_with_inf_bucket{{{Node},le=\"+Inf\"}}"]);
        Assert.Equal(2, scrape.SeriesOf("envoy_with_inf_bucket").Count());
        Assert.Equal(2, scrape[$"envoy_no_buckets_bucket{{{Node},le=\"+Inf\"}}"]);
        Assert.Equal(1, scrape[$"envoy_rebucketed_count{{{Node}}}"]);
        Assert.Equal(1, scrape[$"envoy_rebucketed_bucket{{{Node},le=\"5\"}}"]);
        Assert.Equal(1, scrape["legate_statsink_resets_total{kind=\"histogram\"}"]);
    }

    [Fact]
    public async Task Summaries_QuantilesOutOfOrderOrTwiceRefused()
    {
        static Metric Sum(params double[] quantiles) =>
            new() { Summary = new Summary { SampleCount = 1, SampleSum = 1, Quantile = { quantiles.Select(q => new Quantile { Quantile_ = q, Value = q }) } } };
        await _sink.SendAsync(Identified(
            Fam("twice", MetricType.Summary, Sum(0.5, 0.5)),
            Fam("unsorted", MetricType.Summary, Sum(0.9, 0.5)),
            Fam("envoy", MetricType.Summary, Sum(EnvoyFlushGenerator.EnvoyQuantiles))));

        // Parse fails on a series written twice, as Prometheus does.
        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(2, scrape["legate_statsink_series_dropped_total{reason=\"invalid\"}"]);
        Assert.Empty(scrape.SeriesOf("envoy_twice_quantiles"));
        Assert.Equal(10, scrape.SeriesOf("envoy_envoy_quantiles").Count());
    }

    [Fact]
    public async Task SeriesWithDifferentLabelSets_InOneFamily()
    {
        await _sink.SendAsync(Identified(
            Fam("cluster.upstream_rq", MetricType.Counter, Counter(1, labels: [("envoy.response_code", "200"), ("envoy.cluster_name", "a")])),
            Fam("cluster.upstream_rq", MetricType.Counter, Counter(2, labels: [("envoy.cluster_name", "b")]))));

        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(1, scrape[$"envoy_cluster_upstream_rq{{envoy_response_code=\"200\",envoy_cluster_name=\"a\",{Node}}}"]);
        Assert.Equal(2, scrape[$"envoy_cluster_upstream_rq{{envoy_cluster_name=\"b\",{Node}}}"]);
        Assert.Single(scrape.Types, t => t.Key == "envoy_cluster_upstream_rq");
    }

    [Fact]
    public async Task EmptyFlush_IsValid()
    {
        await _sink.SendAsync(Identified());
        var scrape = await _sink.ScrapeAsync();
        Assert.Equal(1, scrape["legate_statsink_messages_total"]);
        Assert.Equal(0, scrape["legate_statsink_series"]);
    }

    [Fact]
    public async Task OpenMetrics_NegotiatedByAccept()
    {
        await _sink.SendAsync(Identified(
            Fam("http.downstream_rq_total", MetricType.Counter, Counter(3)),
            Fam("cluster.upstream_rq_xx", MetricType.Counter, Counter(2)),
            Fam("cluster.upstream_rq_total", MetricType.Counter, Counter(2)),
            Fam("cluster.upstream_rq", MetricType.Counter, Counter(2)),
            Fam("u", MetricType.Untyped, new Metric { Untyped = new Untyped { Value = 4 } })));

        var text = await _sink.ScrapeTextAsync(openMetrics: false);
        Assert.Contains("# TYPE envoy_http_downstream_rq_total counter\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("# EOF", text, StringComparison.Ordinal);

        var om = await _sink.ScrapeTextAsync(openMetrics: true);
        Assert.Contains("# TYPE envoy_http_downstream_rq counter\n", om, StringComparison.Ordinal);
        Assert.Contains($"envoy_http_downstream_rq_total{{{Node}}} 3\n", om, StringComparison.Ordinal);
        // No _total: declared unknown, so the stored name stays Envoy's.
        Assert.Contains("# TYPE envoy_cluster_upstream_rq_xx unknown\n", om, StringComparison.Ordinal);
        Assert.Contains("# TYPE envoy_u unknown\n", om, StringComparison.Ordinal);
        // Envoy has both upstream_rq_total and upstream_rq{code}: the first cannot be family "upstream_rq" too.
        Assert.Contains("# TYPE envoy_cluster_upstream_rq_total unknown\n", om, StringComparison.Ordinal);
        Assert.Contains("# TYPE envoy_cluster_upstream_rq unknown\n", om, StringComparison.Ordinal);
        Assert.EndsWith("# EOF\n", om, StringComparison.Ordinal);
        Assert.Equal(1, om.Split('\n').Count(l => l == "# EOF"));
        Assert.Contains("legate_statsink_streams", om, StringComparison.Ordinal);

        using var client = _sink.Service.CreateClient();
        var own = await client.GetStringAsync(new Uri("/metrics?envoy=false", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Contains("legate_statsink_series 5", own, StringComparison.Ordinal);
        Assert.DoesNotContain("envoy_", own, StringComparison.Ordinal);
    }

    [Theory]
    // Prometheus 3 and 2 by default: OpenMetrics first.
    [InlineData("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.25,*/*;q=0.1", true)]
    [InlineData("application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", true)]
    [InlineData("application/openmetrics-text", true)]
    // scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]: text preferred.
    [InlineData("text/plain;version=0.0.4,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1", false)]
    [InlineData("application/openmetrics-text;q=0,text/plain", false)]
    [InlineData("application/openmetrics-text;q=0.5,*/*", false)]
    [InlineData("*/*", false)]
    [InlineData("", false)]
    public void OpenMetrics_OnlyWhenTheScraperPrefersIt(string accept, bool expected) =>
        Assert.Equal(expected, Exposition.MetricsEndpoint.AcceptsOpenMetrics(accept));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Gzip_WhenTheScraperAcceptsIt_TheSameExposition(bool openMetrics)
    {
        var families = Enumerable.Range(0, 200).Select(i => Fam($"cluster.service_{i}.upstream_rq_total", MetricType.Counter, Counter(i))).ToArray();
        await _sink.SendAsync(Identified(families));
        var plain = await _sink.ScrapeTextAsync(openMetrics);

        using var client = _sink.Service.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip");
        if (openMetrics)
            request.Headers.TryAddWithoutValidation("Accept", "application/openmetrics-text;version=1.0.0");
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        Assert.Equal(["gzip"], response.Content.Headers.ContentEncoding);
        Assert.Contains("Accept-Encoding", response.Headers.Vary);
        var compressed = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        using var gzip = new System.IO.Compression.GZipStream(new MemoryStream(compressed), System.IO.Compression.CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        var unzipped = await reader.ReadToEndAsync(TestContext.Current.CancellationToken);

        // The Envoy series and the format are the same; statsink's own counters (scrapes, bytes) may have moved on.
        static string[] Envoy(string text) => [.. text.Split('\n').Where(l => l.Contains("envoy_", StringComparison.Ordinal))];
        Assert.Equal(Envoy(plain), Envoy(unzipped));
        Assert.Equal(200, Envoy(unzipped).Count(l => l.StartsWith("envoy_cluster_service_", StringComparison.Ordinal)));
        Assert.Equal(openMetrics, unzipped.EndsWith("# EOF\n", StringComparison.Ordinal));
        Assert.True(compressed.Length * 4 < System.Text.Encoding.UTF8.GetByteCount(unzipped), $"{compressed.Length} bytes compressed");
    }

    [Theory]
    [InlineData("gzip", true)]
    [InlineData("br, GZIP", true)]
    [InlineData("gzip;q=0.5, identity", true)]
    [InlineData("gzip;q=0", false)]
    [InlineData("identity", false)]
    [InlineData("deflate, br", false)]
    [InlineData("", false)]
    public void AcceptsGzip_ReadsAcceptEncoding(string acceptEncoding, bool expected) =>
        Assert.Equal(expected, Legate.StatSink.Exposition.MetricsEndpoint.AcceptsGzip(acceptEncoding));
}
