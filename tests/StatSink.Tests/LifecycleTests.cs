using System.Diagnostics;
using Envoy.Config.Core.V3;
using Envoy.Service.Metrics.V3;
using Google.Protobuf;
using Grpc.Core;
using Io.Prometheus.Client;
using Legate.Testing;
using MetricsClient = Envoy.Service.Metrics.V3.MetricsService.MetricsServiceClient;

namespace Legate.StatSink.Tests;

/// <summary>Streams, nodes and time: reconnects, hot restarts, grace period, TTL, limits, sizes, concurrency.</summary>
public sealed class LifecycleTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Series(string node, string cluster = "edge") => $"envoy_http_downstream_rq_total{{envoy_node_id=\"{node}\",envoy_node_cluster=\"{cluster}\"}}";

    [Fact]
    public async Task Reconnect_SameNode_SeriesContinue()
    {
        using var sink = new StatSinkHarness();
        var envoy = new EnvoyFlushGenerator("envoy-1");
        envoy.Count("http.downstream_rq_total", 10);
        await sink.SendFlushAsync(envoy);
        envoy.NewStream();
        envoy.Count("http.downstream_rq_total", 1);
        await sink.SendFlushAsync(envoy);

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(11, scrape[Series("envoy-1")]);
        Assert.Equal(0, scrape["legate_statsink_resets_total{kind=\"counter\"}"]);
        Assert.Equal(1, scrape["legate_statsink_nodes"]);
        Assert.Equal(2, scrape["legate_statsink_streams_total"]);
    }

    [Fact]
    public async Task RestartedEnvoy_SeriesItNoLongerSends_GoOnceItHasSentAWholeFlush()
    {
        using var sink = new StatSinkHarness();
        var old = new EnvoyFlushGenerator("envoy-1");
        old.Count("http.downstream_rq_total", 10);
        old.Set("server.live", 1);
        old.Set("cluster.membership_healthy", 3, ("envoy.cluster_name", "retired"));
        await sink.SendFlushAsync(old);

        // Restarted without hot restart (a new pod with the same node id) and a configuration without that cluster:
        // its gauge would keep its last value, as if the cluster were still there, until SeriesTtl.
        var restarted = new EnvoyFlushGenerator("envoy-1", startMs: old.TimestampMs + 30_000);
        restarted.Count("http.downstream_rq_total", 2);
        restarted.Set("server.live", 1);
        await using var stream = sink.Open();
        var retired = "envoy_cluster_membership_healthy{envoy_cluster_name=\"retired\",envoy_node_id=\"envoy-1\",envoy_node_cluster=\"edge\"}";
        for (var flush = 1; flush <= 3; flush++)
        {
            await stream.SendAsync(restarted.Flush());
            await sink.WaitForMessagesAsync(1 + flush);
            var scrape = await sink.ScrapeAsync();
            // The first flush on a new stream may be the tail of one begun on the old stream: only a whole one tells.
            Assert.Equal(flush < 3, scrape.Has(retired));
            Assert.Equal(2, scrape[Series("envoy-1")]);
            Assert.Single(scrape.SeriesOf("envoy_server_live"));
        }
        var final = await sink.ScrapeAsync();
        Assert.Equal(1, final["legate_statsink_series_expired_total{reason=\"reconnect\"}"]);
        Assert.Equal(2, final["legate_statsink_series"]);
        await stream.CloseAsync();
    }

    [Fact]
    public async Task ReconnectMidFlush_TheSeriesSentBeforeIt_Continue()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?> { ["Legate:StatSink:CounterMode"] = "delta" });
        var envoy = new EnvoyFlushGenerator("envoy-1") { DeltaCounters = true };
        for (var i = 0; i < 4; i++)
            envoy.Count("c" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".rq_total", 1);
        // The stream breaks after the first batch of a flush: Envoy sends the rest on a new stream, which names the node.
        var first = envoy.Flush(batchSize: 2);
        await sink.SendAsync(first[0]);
        first[1].Identifier = first[0].Identifier;
        await using var stream = sink.Open();
        await stream.SendAsync(first[1]);
        for (var flush = 2; flush <= 4; flush++)
        {
            for (var i = 0; i < 4; i++)
                envoy.Count("c" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".rq_total", 1);
            await stream.SendAllAsync(envoy.Flush(batchSize: 2));
        }
        await sink.WaitForMessagesAsync(8);

        var scrape = await sink.ScrapeAsync();
        for (var i = 0; i < 4; i++)
            Assert.Equal(4, scrape[$"envoy_c{i}_rq_total{{envoy_node_id=\"envoy-1\",envoy_node_cluster=\"edge\"}}"]);
        Assert.Equal(0, scrape["legate_statsink_series_expired_total{reason=\"reconnect\"}"]);
        await stream.CloseAsync();
    }

    [Fact]
    public async Task NoNodeId_FallsBackToPeerAddress_AndIsCounted()
    {
        using var sink = new StatSinkHarness();
        var message = new EnvoyFlushGenerator("ignored").Flush();
        message.Identifier = null;
        message.EnvoyMetrics.Add(new MetricFamily { Name = "server.live", Type = MetricType.Gauge, Metric = { new Metric { Gauge = new Gauge { Value = 1 } } } });
        var later = new StreamMetricsMessage
        {
            // An identifier on a later message is ignored: the stream's node is fixed by its first message.
            Identifier = new StreamMetricsMessage.Types.Identifier { Node = new Node { Id = "late" } },
            EnvoyMetrics = { new MetricFamily { Name = "server.uptime", Type = MetricType.Gauge, Metric = { new Metric { Gauge = new Gauge { Value = 2 } } } } },
        };
        await sink.SendAsync(message, later);

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(1, scrape["legate_statsink_streams_without_node_id_total"]);
        var live = Assert.Single(scrape.SeriesOf("envoy_server_live"));
        Assert.DoesNotContain("late", live, StringComparison.Ordinal);
        Assert.Single(scrape.SeriesOf("envoy_server_uptime"), s => !s.Contains("late", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PeerHost_DropsThePort()
    {
        Assert.Equal("10.0.0.7", MetricsStreamService.PeerHost("ipv4:10.0.0.7:41234"));
        Assert.Equal("::1", MetricsStreamService.PeerHost("ipv6:[::1]:41234"));
        Assert.Equal("unknown", MetricsStreamService.PeerHost(""));
        await Task.CompletedTask;
    }

    [Fact]
    public async Task HotRestart_TwoStreamsSameNode_NewestCounts_NoDoubleCounting()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?> { ["Legate:StatSink:CounterMode"] = "delta" });
        var parent = new EnvoyFlushGenerator("envoy-1") { DeltaCounters = true };
        var child = new EnvoyFlushGenerator("envoy-1") { DeltaCounters = true, FlushIntervalMs = 4999 };
        await using var parentStream = sink.Open();
        parent.Count("http.downstream_rq_total", 10);
        await parentStream.SendAsync(parent.Flush());
        await sink.WaitForMessagesAsync(1);

        await using var childStream = sink.Open();
        child.Count("http.downstream_rq_total", 3);
        await childStream.SendAsync(child.Flush());
        await sink.WaitForMessagesAsync(2);
        // The parent still flushes until it exits: ignored while the child's stream is open.
        parent.Count("http.downstream_rq_total", 100);
        await parentStream.SendAsync(parent.Flush());
        await sink.WaitForMessagesAsync(3);

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(13, scrape[Series("envoy-1")]);
        Assert.Equal(1, scrape["legate_statsink_messages_superseded_total"]);
        await parentStream.CloseAsync();
        await childStream.CloseAsync();
    }

    [Fact]
    public async Task Disconnected_KeptForGracePeriod_ThenDropped()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?>
        {
            ["Legate:StatSink:DisconnectGracePeriod"] = "00:01:00",
            ["Legate:StatSink:SeriesTtl"] = "00:10:00",
            ["Legate:StatSink:SweepInterval"] = "00:00:10",
        });
        var envoy = new EnvoyFlushGenerator("envoy-1");
        envoy.Count("http.downstream_rq_total", 1);
        await sink.SendFlushAsync(envoy);

        sink.Advance(TimeSpan.FromSeconds(50));
        Assert.True((await sink.ScrapeAsync()).Has(Series("envoy-1")));
        sink.Advance(TimeSpan.FromSeconds(20));
        var scrape = await sink.ScrapeAsync();
        Assert.False(scrape.Has(Series("envoy-1")));
        Assert.Equal(1, scrape["legate_statsink_series_expired_total{reason=\"disconnect\"}"]);
        Assert.Equal(0, scrape["legate_statsink_nodes"]);
        Assert.Equal(0, scrape["legate_statsink_series"]);
    }

    [Fact]
    public async Task Connected_SeriesNotSentForTtl_Dropped_ComesBackFromZero()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?>
        {
            ["Legate:StatSink:SeriesTtl"] = "00:01:00",
            ["Legate:StatSink:SweepInterval"] = "00:00:10",
            ["Legate:StatSink:CounterMode"] = "delta",
        });
        await using var stream = sink.Open();
        var envoy = new EnvoyFlushGenerator("envoy-1") { DeltaCounters = true };
        envoy.Count("http.downstream_rq_total", 5);
        envoy.Set("server.live", 1);
        await stream.SendAsync(envoy.Flush());
        await sink.WaitForMessagesAsync(1);

        // Only the gauge keeps coming (Envoy sends used stats only; a foreign producer may stop sending one).
        var gaugeOnly = new StreamMetricsMessage
        {
            EnvoyMetrics = { new MetricFamily { Name = "server.live", Type = MetricType.Gauge, Metric = { new Metric { Gauge = new Gauge { Value = 1 } } } } },
        };
        for (var i = 0; i < 7; i++)
        {
            sink.Advance(TimeSpan.FromSeconds(10));
            await stream.SendAsync(gaugeOnly);
            await sink.WaitForMessagesAsync(i + 2);
        }
        sink.Advance(TimeSpan.FromSeconds(10));
        var scrape = await sink.ScrapeAsync();
        Assert.False(scrape.Has(Series("envoy-1")));
        Assert.Single(scrape.SeriesOf("envoy_server_live"));
        Assert.Equal(1, scrape["legate_statsink_series_expired_total{reason=\"ttl\"}"]);

        envoy.Count("http.downstream_rq_total", 2);
        await stream.SendAsync(envoy.Flush());
        await sink.WaitForMessagesAsync(9);
        Assert.Equal(2, (await sink.ScrapeAsync())[Series("envoy-1")]);
        await stream.CloseAsync();
    }

    [Fact]
    public async Task TypeConflict_ServedOnceTheOtherNodesSeriesIsGone()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?>
        {
            ["Legate:StatSink:DisconnectGracePeriod"] = "00:01:00",
            ["Legate:StatSink:SweepInterval"] = "00:00:10",
        });
        // Node a serves x as a gauge; node b (another Envoy version, another producer) sends x as a counter: dropped.
        var a = new EnvoyFlushGenerator("a");
        a.Set("x", 1);
        await sink.SendFlushAsync(a);
        await using var stream = sink.Open();
        var b = new EnvoyFlushGenerator("b");
        b.Count("x", 5);
        await stream.SendAsync(b.Flush());
        await sink.WaitForMessagesAsync(2);
        var scrape = await sink.ScrapeAsync();
        Assert.Equal("gauge", scrape.Types["envoy_x"]);
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"type_conflict\"}"]);

        // Node a is gone for good: b's x, still sent, is served from its next flush.
        sink.Advance(TimeSpan.FromSeconds(70));
        b.Count("x", 1);
        await stream.SendAsync(b.Flush());
        await sink.WaitForMessagesAsync(3);
        scrape = await sink.ScrapeAsync();
        Assert.Equal("counter", scrape.Types["envoy_x"]);
        Assert.Equal(6, scrape["envoy_x{envoy_node_id=\"b\",envoy_node_cluster=\"edge\"}"]);
        Assert.Equal(1, scrape["legate_statsink_series_dropped_total{reason=\"type_conflict\"}"]);
        await stream.CloseAsync();
    }

    [Fact]
    public async Task NameCollision_ServedOnceTheSeriesThatWonExpires()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?>
        {
            ["Legate:StatSink:SeriesTtl"] = "00:01:00",
            ["Legate:StatSink:SweepInterval"] = "00:00:10",
        });
        await using var stream = sink.Open();
        var envoy = new EnvoyFlushGenerator("envoy-1");
        envoy.Count("a.b_c", 1);
        envoy.Count("a_b.c", 2);  // the same Prometheus name after sanitizing: dropped while a.b_c is served
        await stream.SendAsync(envoy.Flush());
        await sink.WaitForMessagesAsync(1);
        Assert.Equal(1, (await sink.ScrapeAsync())["envoy_a_b_c{envoy_node_id=\"envoy-1\",envoy_node_cluster=\"edge\"}"]);

        // Only a_b.c keeps coming (a foreign producer renamed its stat): once a.b_c expires, a_b.c is served.
        var renamed = new StreamMetricsMessage
        {
            EnvoyMetrics = { new MetricFamily { Name = "a_b.c", Type = MetricType.Counter, Metric = { new Metric { Counter = new Counter { Value = 3 } } } } },
        };
        for (var i = 0; i < 7; i++)
        {
            sink.Advance(TimeSpan.FromSeconds(10));
            await stream.SendAsync(renamed);
            await sink.WaitForMessagesAsync(i + 2);
        }
        var scrape = await sink.ScrapeAsync();
        Assert.Equal(3, scrape["envoy_a_b_c{envoy_node_id=\"envoy-1\",envoy_node_cluster=\"edge\"}"]);
        Assert.Equal(1, scrape["legate_statsink_series_expired_total{reason=\"ttl\"}"]);
        await stream.CloseAsync();
    }

    [Fact]
    public async Task Limits_PerNodeAndTotal_DropAndCount()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?>
        {
            ["Legate:StatSink:MaxSeriesPerNode"] = "30",
            ["Legate:StatSink:MaxSeries"] = "50",
        });
        // emit_tags_as_labels: false puts every cluster in the name: the guard that keeps it bounded.
        var a = new EnvoyFlushGenerator("a") { TagsAsLabels = false };
        var b = new EnvoyFlushGenerator("b") { TagsAsLabels = false };
        for (var i = 0; i < 40; i++)
        {
            a.Count($"cluster.c{i}.upstream_rq_total", 1);
            b.Count($"cluster.c{i}.upstream_rq_total", 1);
        }
        await sink.SendFlushAsync(a);
        await sink.SendFlushAsync(b);

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(50, scrape["legate_statsink_series"]);
        Assert.Equal(30, scrape.Samples.Keys.Count(k => k.Contains("envoy_node_id=\"a\"", StringComparison.Ordinal)));
        Assert.Equal(20, scrape.Samples.Keys.Count(k => k.Contains("envoy_node_id=\"b\"", StringComparison.Ordinal)));
        Assert.Equal(10, scrape["legate_statsink_series_dropped_total{reason=\"node_limit\"}"]);
        Assert.Equal(20, scrape["legate_statsink_series_dropped_total{reason=\"total_limit\"}"]);
    }

    [Fact]
    public async Task LongNamesAndLabelValues_DroppedAsTooLong_AndTakeNoRoom()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?>
        {
            ["Legate:StatSink:MaxSeriesLength"] = "300",
            ["Legate:StatSink:MaxSeriesPerNode"] = "2",
        });
        var envoy = new EnvoyFlushGenerator("envoy-1");
        // Stat names and tag values carry user-controlled parts (a cluster's or a route's name): past the bounds, the
        // series is refused before anything of it is kept, so it cannot use up the node's series either.
        envoy.Count("cluster." + new string('c', 400) + ".upstream_rq_total", 1);
        envoy.Count("cluster.upstream_rq_total", 1, ("envoy.cluster_name", new string('v', 3000)));
        envoy.Count("cluster.upstream_rq_total", 1, ("envoy.cluster_name", new string('w', 150)), ("envoy.route_name", new string('r', 150)));
        envoy.Count("http.downstream_rq_total", 1);
        envoy.Set("server.live", 1);
        await sink.SendFlushAsync(envoy);
        await sink.SendFlushAsync(envoy);

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(1, scrape[Series("envoy-1")]);
        Assert.Single(scrape.SeriesOf("envoy_server_live"));
        Assert.Equal(2, scrape["legate_statsink_series"]);
        Assert.Equal(6, scrape["legate_statsink_series_dropped_total{reason=\"too_long\"}"]);
        Assert.Equal(0, scrape["legate_statsink_series_dropped_total{reason=\"node_limit\"}"]);
    }

    [Fact]
    public async Task LargeMessages_AcceptedUpToTheLimit_RefusedAbove()
    {
        using var sink = new StatSinkHarness(new Dictionary<string, string?> { ["Legate:MaxReceiveMessageSize"] = "1048576" });
        var big = new EnvoyFlushGenerator("big");
        for (var i = 0; i < 3000; i++)
            big.Count("cluster.upstream_rq_total", 1, ("envoy.cluster_name", "cluster-with-a-long-name-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var flush = big.Flush();
        Assert.InRange(flush.CalculateSize(), 200_000, 1_000_000);
        await sink.SendAsync(flush);
        Assert.Equal(3000, (await sink.ScrapeAsync())["legate_statsink_series"]);

        for (var i = 0; i < 10_000; i++)
            big.Count("cluster.upstream_rq_total", 1, ("envoy.cluster_name", "more-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var tooBig = big.Flush();
        Assert.True(tooBig.CalculateSize() > 1_048_576);
        var error = await Assert.ThrowsAsync<RpcException>(() => sink.SendAsync(tooBig));
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Fact]
    public async Task BatchedFlush_ManyMessages_AllApplied()
    {
        using var sink = new StatSinkHarness();
        var envoy = new EnvoyFlushGenerator("batched");
        for (var i = 0; i < 100; i++)
            envoy.Request("c" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), 200, i);
        var batches = envoy.Flush(batchSize: 37);
        Assert.True(batches.Count > 10);
        Assert.NotNull(batches[0].Identifier);
        Assert.All(batches.Skip(1), m => Assert.Null(m.Identifier));
        await sink.SendAsync([.. batches]);
        // Four counters... per cluster: upstream_rq_total, upstream_rq, upstream_rq_xx, histogram and summary.
        Assert.Equal(500, (await sink.ScrapeAsync())["legate_statsink_series"]);
    }

    [Fact]
    public async Task ManyConcurrentStreams_AllCounted()
    {
        using var sink = new StatSinkHarness();
        var envoys = Enumerable.Range(0, 24).Select(i => new EnvoyFlushGenerator("envoy-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToArray();
        await Task.WhenAll(envoys.Select(async envoy =>
        {
            var flushes = new List<StreamMetricsMessage>();
            for (var f = 0; f < 5; f++)
            {
                envoy.Request("backend", 200, f);
                flushes.Add(envoy.Flush());
            }
            await sink.SendAsync([.. flushes]);
        }));

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(24, scrape["legate_statsink_nodes"]);
        Assert.All(envoys, e => Assert.Equal(5, scrape[$"envoy_cluster_upstream_rq_total{{envoy_cluster_name=\"backend\",envoy_node_id=\"{e.NodeId}\",envoy_node_cluster=\"edge\"}}"]));
    }

    [Fact]
    public async Task ScrapeDuringFlushes_HistogramsConsistent()
    {
        using var sink = new StatSinkHarness();
        var envoy = new EnvoyFlushGenerator("busy") { HistogramMode = HistogramEmitMode.Histogram };
        await using var stream = sink.Open();
        var writer = Task.Run(async () =>
        {
            for (var f = 0; f < 200; f++)
            {
                for (var i = 0; i < 20; i++)
                    envoy.Request("c" + (i % 5).ToString(System.Globalization.CultureInfo.InvariantCulture), 200, (f * 7 + i) % 5000);
                await stream.SendAsync(envoy.Flush());
            }
        }, Ct);
        var scrapes = 0;
        while (!writer.IsCompleted || scrapes < 3)
        {
            var scrape = await sink.ScrapeAsync();
            scrapes++;
            foreach (var count in scrape.SeriesOf("envoy_cluster_upstream_rq_time_count"))
            {
                var labels = count["envoy_cluster_upstream_rq_time_count{".Length..^1];
                var inf = scrape[$"envoy_cluster_upstream_rq_time_bucket{{{labels},le=\"+Inf\"}}"];
                Assert.Equal(scrape[count], inf);
                var previous = 0.0;
                foreach (var bound in EnvoyFlushGenerator.DefaultBounds)
                {
                    var value = scrape[$"envoy_cluster_upstream_rq_time_bucket{{{labels},le=\"{bound.ToString(System.Globalization.CultureInfo.InvariantCulture)}\"}}"];
                    Assert.True(value >= previous && value <= inf);
                    previous = value;
                }
            }
            if (scrapes > 2000)
                break;
        }
        await writer;
        await stream.CloseAsync();
    }

    [Fact]
    public async Task InvalidUtf8_InLabelValues_ServedAsReplacementCharacters()
    {
        using var sink = new StatSinkHarness();
        // Raw protobuf, since the generated types cannot carry invalid UTF-8: a counter with label k = "a\xFFb".
        var label = Concat(Field(1, "k"u8), Field(2, [(byte)'a', 0xFF, (byte)'b']));
        var counter = Concat([0x09], BitConverter.GetBytes(3.0));
        var metric = Concat(Field(1, label), Field(3, counter));
        var family = Concat(Field(1, "bad.utf8"u8), [0x18, 0x00], Field(4, metric));
        var node = Field(1, "raw"u8);
        var message = Concat(Field(1, Field(1, node)), Field(2, family));

        var method = new Method<byte[], byte[]>(MethodType.ClientStreaming, "envoy.service.metrics.v3.MetricsService", "StreamMetrics",
            Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        using var call = sink.Service.Channel.CreateCallInvoker().AsyncClientStreamingCall(method, null, new CallOptions(cancellationToken: Ct));
        await call.RequestStream.WriteAsync(message, Ct);
        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;

        var scrape = await sink.ScrapeAsync();
        Assert.True(scrape.Has("envoy_bad_utf8{k=\"a\uFFFDb\",envoy_node_id=\"raw\"}"), scrape.Text);
        Assert.Equal(3, scrape["envoy_bad_utf8{k=\"a\uFFFDb\",envoy_node_id=\"raw\"}"]);
    }

    [Theory]
    [InlineData("locality")]
    [InlineData("metadata")]
    public async Task InvalidUtf8_InTheNodesLocalityOrMetadata_StreamStillServed(string where)
    {
        using var sink = new StatSinkHarness();
        // Envoy's node carries --service-zone as locality.zone and the bootstrap's metadata: strings Envoy does not check.
        byte[] bad = [(byte)'a', 0xFF];
        var nodeField = where == "locality"
            ? Field(4, Field(2, bad))                                          // Locality { zone }
            : Field(3, Field(1, Concat(Field(1, "k"u8), Field(2, Field(3, bad))))); // Struct { fields { "k": Value { string_value } } }
        var node = Concat(Field(1, "odd-node"u8), nodeField);
        var counter = Concat([0x09], BitConverter.GetBytes(3.0));
        var family = Concat(Field(1, "server.uptime"u8), [0x18, 0x00], Field(4, Field(3, counter)));
        var message = Concat(Field(1, Field(1, node)), Field(2, family));

        var method = new Method<byte[], byte[]>(MethodType.ClientStreaming, "envoy.service.metrics.v3.MetricsService", "StreamMetrics",
            Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        using var call = sink.Service.Channel.CreateCallInvoker().AsyncClientStreamingCall(method, null, new CallOptions(cancellationToken: Ct));
        await call.RequestStream.WriteAsync(message, Ct);
        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;

        Assert.Equal(3, (await sink.ScrapeAsync())["envoy_server_uptime{envoy_node_id=\"odd-node\"}"]);
    }

    [Fact]
    public async Task EnvoyGoneMidStream_Cancelled_IsAnOrdinaryDisconnect()
    {
        using var sink = new StatSinkHarness();
        var envoy = new EnvoyFlushGenerator("envoy-1");
        envoy.Count("http.downstream_rq_total", 4);
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            using var call = sink.Client.StreamMetrics(cancellationToken: cts.Token);
            await call.RequestStream.WriteAsync(envoy.Flush(), Ct);
            await sink.WaitForMessagesAsync(1);
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<Exception>(() => call.ResponseAsync);
        }
        for (var i = 0; i < 200 && (await sink.ScrapeAsync())["legate_statsink_streams_active"] != 0; i++)
            await Task.Delay(10, Ct);

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(0, scrape["legate_statsink_streams_active"]);
        Assert.Equal(4, scrape[Series("envoy-1")]);  // kept for the grace period
        Assert.DoesNotContain("grpc_code=\"Unknown\"", scrape.Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(5.0, 4.0)]   // the default drain: a second before it ends
    [InlineData(1.5, 0.75)]  // a short drain: halfway through
    [InlineData(0.0, 0.0)]   // no drain: at once
    public void Stopping_EndsStreamsASecondBeforeTheDrainEnds(double drainSeconds, double endSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(endSeconds), StreamShutdown.EndAfter(TimeSpan.FromSeconds(drainSeconds)));

    [Fact]
    public async Task Stopping_EndsEnvoyStreamsAfterTheDrain_InsteadOfWaitingOutTheShutdownTimeout()
    {
        // Envoy never ends its stream: left open, it would hold the stop for the whole shutdown timeout (25 s) while
        // Envoy kept flushing into a replica nobody scrapes any more, then be cut off.
        await using var statsink = ServiceProcess.Start(RepoPaths.ServiceAssembly("statsink", "legate-statsink"), drainDelay: TimeSpan.FromSeconds(2));
        await statsink.WaitUntilReadyAsync();
        using var call = new MetricsClient(statsink.Channel).StreamMetrics(cancellationToken: Ct);
        var envoy = new EnvoyFlushGenerator("stopping");
        envoy.Count("http.downstream_rq_total", 1);
        await call.RequestStream.WriteAsync(envoy.Flush(), Ct);
        using (var http = new HttpClient())
        {
            for (var i = 0; i < 100 && !(await http.GetStringAsync(new Uri(statsink.HttpAddress, "/metrics"), Ct)).Contains("legate_statsink_messages_total 1\n", StringComparison.Ordinal); i++)
                await Task.Delay(100, Ct);
        }

        var stopping = Stopwatch.StartNew();
        statsink.Terminate();
        // The stream ends with OK a second before the drain is over: Envoy opens a new one, on another replica, at its
        // next flush. (Ended as the listeners closed, the call failed now and then on a busy machine.)
        await call.ResponseAsync.WaitAsync(TimeSpan.FromSeconds(15), Ct);
        Assert.InRange(stopping.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));
        Assert.Equal(0, await statsink.WaitForExitAsync(TimeSpan.FromSeconds(15)));
    }

    [Fact]
    public async Task FieldsUnknownToStatSink_Ignored()
    {
        using var sink = new StatSinkHarness();
        // A counter with an exemplar (field 2) and a histogram with native-histogram fields (schema, zero_threshold),
        // none of which statsink's trimmed proto knows: parsed around, the values served.
        var exemplar = Field(2, Concat(Field(1, Concat(Field(1, "trace_id"u8), Field(2, "abc"u8))), [0x11], BitConverter.GetBytes(1.0)));
        var counter = Concat([0x09], BitConverter.GetBytes(5.0), exemplar);
        var histogram = Concat([0x08, 0x02], [0x11], BitConverter.GetBytes(3.0), [0x28, 0x06], [0x31], BitConverter.GetBytes(0.001));
        var counterFamily = Concat(Field(1, "with.exemplar"u8), [0x18, 0x00], Field(4, Field(3, counter)));
        var histogramFamily = Concat(Field(1, "native.hist"u8), [0x18, 0x04], Field(4, Field(7, histogram)), Field(5, "seconds"u8));
        var message = Concat(Field(1, Field(1, Field(1, "raw"u8))), Field(2, counterFamily), Field(2, histogramFamily));

        var method = new Method<byte[], byte[]>(MethodType.ClientStreaming, "envoy.service.metrics.v3.MetricsService", "StreamMetrics",
            Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        using var call = sink.Service.Channel.CreateCallInvoker().AsyncClientStreamingCall(method, null, new CallOptions(cancellationToken: Ct));
        await call.RequestStream.WriteAsync(message, Ct);
        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;

        var scrape = await sink.ScrapeAsync();
        Assert.Equal(5, scrape["envoy_with_exemplar{envoy_node_id=\"raw\"}"]);
        Assert.Equal(2, scrape["envoy_native_hist_count{envoy_node_id=\"raw\"}"]);
        Assert.Equal(3, scrape["envoy_native_hist_sum{envoy_node_id=\"raw\"}"]);
    }

    [Fact]
    public async Task Reflection_ListsTheMetricsService_BoundWithTheLenientMarshaller()
    {
        using var sink = new StatSinkHarness();
        var (services, declaringFileFound) = await GrpcReflection.AskAsync(sink.Service.Channel, "envoy.service.metrics.v3.MetricsService", Ct);

        Assert.Contains("envoy.service.metrics.v3.MetricsService", services);
        Assert.True(declaringFileFound);
    }

    [Fact]
    public async Task OldEnvoy_V2ServiceName_Unimplemented()
    {
        using var sink = new StatSinkHarness();
        var method = new Method<byte[], byte[]>(MethodType.ClientStreaming, "envoy.service.metrics.v2.MetricsService", "StreamMetrics",
            Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        using var call = sink.Service.Channel.CreateCallInvoker().AsyncClientStreamingCall(method, null, new CallOptions(cancellationToken: Ct));
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.CompleteAsync();
            await call.ResponseAsync;
        });
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
    }

    private static byte[] Field(int number, ReadOnlySpan<byte> payload)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(number, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(payload));
        output.Flush();
        return stream.ToArray();
    }

    private static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];
}
