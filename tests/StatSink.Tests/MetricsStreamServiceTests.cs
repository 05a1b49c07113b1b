using Envoy.Config.Core.V3;
using Envoy.Service.Metrics.V3;
using Io.Prometheus.Client;
using Legate.Testing;
using MetricsClient = Envoy.Service.Metrics.V3.MetricsService.MetricsServiceClient;

namespace Legate.StatSink.Tests;

public sealed class MetricsStreamServiceTests : IDisposable
{
    private readonly LegateServiceFactory<Program> _service = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static MetricFamily Counter(string name, double value) => new()
    {
        Name = name,
        Type = MetricType.Counter,
        Metric = { new Metric { Counter = new Io.Prometheus.Client.Counter { Value = value }, TimestampMs = 1_767_225_600_000 } },
    };

    [Fact]
    public async Task StreamMetrics_AcceptsAnEnvoyStreamAndCountsIt()
    {
        var client = new MetricsClient(_service.Channel);

        using (var call = client.StreamMetrics(cancellationToken: Ct))
        {
            // As Envoy does: the identifier only in the first message, then flush after flush.
            await call.RequestStream.WriteAsync(new StreamMetricsMessage
            {
                Identifier = new StreamMetricsMessage.Types.Identifier { Node = new Node { Id = "envoy-1", Cluster = "edge" } },
                EnvoyMetrics = { Counter("cluster.backend.upstream_rq_total", 10), Counter("http.ingress.downstream_rq_total", 4) },
            }, Ct);
            await call.RequestStream.WriteAsync(new StreamMetricsMessage { EnvoyMetrics = { Counter("cluster.backend.upstream_rq_total", 12) } }, Ct);
            await call.RequestStream.CompleteAsync();
            await call.ResponseAsync;
        }
        var scrape = await _service.ScrapeAsync(Ct);

        Assert.Contains("legate_statsink_streams_total 1", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_statsink_streams_active 0", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_statsink_messages_total 2", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_statsink_metric_families_total 3", scrape, StringComparison.Ordinal);
        Assert.Contains("grpc_server_handled_total{grpc_service=\"envoy.service.metrics.v3.MetricsService\",grpc_method=\"StreamMetrics\",grpc_type=\"client_stream\",grpc_code=\"OK\"} 1", scrape, StringComparison.Ordinal);
    }

    public void Dispose() => _service.Dispose();
}
