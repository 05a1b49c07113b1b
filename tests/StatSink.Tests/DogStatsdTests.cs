using System.Net;
using System.Net.Sockets;
using System.Text;
using Google.Protobuf.Collections;
using Io.Prometheus.Client;
using Legate.StatSink.DogStatsd;
using Legate.StatSink.Store;
using Legate.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Legate.StatSink.Tests;

/// <summary>The optional DogStatsD forwarder: what reaches a UDP listener on 127.0.0.1, and drops when the queue is full.</summary>
public sealed class DogStatsdTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Flushes_ReachTheAgent_AsDogStatsdLinesWithTags()
    {
        using var agent = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)agent.Client.LocalEndPoint!).Port;
        using var sink = new StatSinkHarness(new Dictionary<string, string?>
        {
            ["Legate:StatSink:DogStatsd:Enabled"] = "true",
            ["Legate:StatSink:DogStatsd:Host"] = "127.0.0.1",
            ["Legate:StatSink:DogStatsd:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var envoy = new EnvoyFlushGenerator("dd");
        envoy.Request("backend", 200, 3);
        await sink.SendFlushAsync(envoy);
        envoy.Request("backend", 200, 30);
        envoy.Request("backend", 503, 30);
        envoy.Set("cluster.upstream_cx_active", 3, ("envoy.cluster_name", "backend"));
        await sink.SendFlushAsync(envoy);

        const string Tags = "envoy.cluster_name:backend,envoy_node_id:dd,envoy_node_cluster:edge";
        string[] expected =
        [
            // Cumulative counters become the increase since the previous flush; the first flush has none to send.
            $"envoy.cluster.upstream_rq_total:2|c|#{Tags}",
            $"envoy.cluster.upstream_rq:1|c|#envoy.response_code:503,{Tags}",
            $"envoy.cluster.upstream_cx_active:3|g|#{Tags}",
            $"envoy.cluster.upstream_rq_time.count:2|c|#{Tags}",
            $"envoy.cluster.upstream_rq_time.sum:60|c|#{Tags}",
            $"envoy.cluster.upstream_rq_time.p50:30|g|#{Tags}",
        ];
        var lines = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 50 && !expected.All(lines.Contains); i++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            UdpReceiveResult datagram;
            try
            {
                datagram = await agent.ReceiveAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!Ct.IsCancellationRequested)
            {
                Assert.Fail($"No more datagrams; received:\n{string.Join('\n', lines)}\n{(await sink.ScrapeAsync()).Text}");
                throw;
            }
            Assert.True(datagram.Buffer.Length <= 1432);
            foreach (var line in Encoding.UTF8.GetString(datagram.Buffer).Split('\n'))
                lines.Add(line);
        }
        Assert.All(expected, line => Assert.Contains(line, lines));
        Assert.DoesNotContain(lines, l => l.StartsWith("envoy.cluster.upstream_rq_total:1|", StringComparison.Ordinal));
    }

    // A counter refused for a type conflict was sent by its Envoy all along: once the conflict is gone and it is served,
    // its cumulative value is what it counted since that Envoy started, not an increase since the last flush.
    [Fact]
    public void ACounterServedOnceItsConflictIsGone_ForwardsNoIncreaseForItsFirstValue()
    {
        var options = Options.Create(new StatSinkOptions { DisconnectGracePeriod = TimeSpan.FromMinutes(1) });
        var time = new FakeTimeProvider();
        var store = new SeriesStore(options, new StatSinkMetrics(Prometheus.Metrics.WithCustomRegistry(Prometheus.Metrics.NewCustomRegistry())), time);
        var observer = new RecordingObserver();
        store.Observer = observer;
        // Node b's flushes carry a counter served from the start too, as every Envoy's do.
        static RepeatedField<MetricFamily> X(MetricType type, double value, long timestampMs) =>
        [
            new MetricFamily
            {
                Name = "x",
                Type = type,
                Metric = { type == MetricType.Gauge
                    ? new Metric { Gauge = new Gauge { Value = value }, TimestampMs = timestampMs }
                    : new Metric { Counter = new Counter { Value = value }, TimestampMs = timestampMs } },
            },
            new MetricFamily { Name = "y", Type = MetricType.Counter, Metric = { new Metric { Counter = new Counter { Value = 1 }, TimestampMs = timestampMs } } },
        ];
        object gaugeStream = new(), counterStream = new();
        var a = store.Attach("a", "edge", gaugeStream);
        store.Apply(a, gaugeStream, X(MetricType.Gauge, 1, 1_000));
        store.Detach(a, gaugeStream);
        var b = store.Attach("b", "edge", counterStream);
        store.Apply(b, counterStream, X(MetricType.Counter, 1_000_000, 1_000));
        store.Apply(b, counterStream, X(MetricType.Counter, 1_000_100, 6_000));
        Assert.DoesNotContain(observer.Counters, c => c.Name == "x");

        time.Advance(TimeSpan.FromMinutes(2));
        store.Sweep();
        store.Apply(b, counterStream, X(MetricType.Counter, 1_000_200, 11_000));
        store.Apply(b, counterStream, X(MetricType.Counter, 1_000_300, 16_000));

        Assert.Equal([0, 100], observer.Counters.Where(c => c.Name == "x").Select(c => c.Increase));
    }

    private sealed class RecordingObserver : IFlushObserver, IFlushBatch
    {
        public List<(string Name, double Increase)> Counters { get; } = [];

        public IFlushBatch BeginFlush(Node node) => this;

        public void Counter(string name, RepeatedField<LabelPair> labels, double increase) => Counters.Add((name, increase));

        public void Gauge(string name, RepeatedField<LabelPair> labels, double value)
        {
        }

        public void Histogram(string name, RepeatedField<LabelPair> labels, Histogram histogram)
        {
        }

        public void Summary(string name, RepeatedField<LabelPair> labels, Summary summary)
        {
        }

        public void End()
        {
        }
    }

    [Fact]
    public void FullQueue_DropsAndCounts()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var options = Options.Create(new StatSinkOptions { DogStatsd = { Enabled = true, QueueCapacity = 2, MaxDatagramSize = 512 } });
        using var forwarder = new DogStatsdForwarder(options, Prometheus.Metrics.WithCustomRegistry(registry), NullLogger<DogStatsdForwarder>.Instance, TimeProvider.System);
        var batch = forwarder.BeginFlush(new Node("n", "c", options.Value));
        var labels = new RepeatedField<LabelPair> { new LabelPair { Name = "envoy.cluster_name", Value = new string('x', 100) } };
        for (var i = 0; i < 40; i++)
            batch.Gauge("cluster.upstream_cx_active", labels, i);
        batch.End();

        // Each line is about 195 bytes, so two fit a 512-byte datagram: 40 lines make 20 datagrams; a queue of 2 keeps 2.
        var scrape = registry.Scrape();
        Assert.Contains("legate_statsink_dogstatsd_datagrams_total{result=\"dropped\"} 18", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendFailures_AreLoggedAtMostOncePerTenSeconds_WithTheDatagramsFailedSinceTheLastLine()
    {
        // A datagram over UDP's 65,507-byte limit fails in the send itself, as every datagram to an absent agent can.
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var time = new FakeTimeProvider();
        var logger = new FakeLogger<DogStatsdForwarder>();
        var options = Options.Create(new StatSinkOptions { DogStatsd = { Enabled = true, Host = "127.0.0.1", Port = FreePort.Next() } });
        using var forwarder = new DogStatsdForwarder(options, Prometheus.Metrics.WithCustomRegistry(registry), logger, time);
        await forwarder.StartAsync(Ct);
        var failed = 0;
        async Task FailAsync(int datagrams)
        {
            for (var i = 0; i < datagrams; i++)
                Assert.True(forwarder.Enqueue(new byte[70_000]));
            failed += datagrams;
            var expected = $"legate_statsink_dogstatsd_datagrams_total{{result=\"failed\"}} {failed}\n";
            for (var i = 0; i < 500 && !registry.Scrape().Contains(expected, StringComparison.Ordinal); i++)
                await Task.Delay(10, Ct);
            Assert.Contains(expected, registry.Scrape(), StringComparison.Ordinal);
        }
        List<FakeLogRecord> Lines() => [.. logger.Collector.GetSnapshot().Where(r => r.Id.Name == "DogStatsdSendFailed")];

        await ThrottledLogAssert.OncePerTenSecondsAsync(FailAsync, time.Advance, () => [.. Lines().Select(r => r.Message)], n => $"{n} DogStatsD datagram(s)");
        Assert.StartsWith("60 DogStatsD datagram(s)", Lines()[1].Message, StringComparison.Ordinal);
        Assert.IsType<SocketException>(Lines()[0].Exception);
        await forwarder.StopAsync(Ct);
    }
}
