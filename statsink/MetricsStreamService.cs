using Envoy.Service.Metrics.V3;
using Grpc.Core;
using Prometheus;

namespace Legate.StatSink;

/// <summary>
/// Envoy's metrics service v3 <c>StreamMetrics</c>: Envoy opens one stream and sends every flush on it forever.
/// For now the sink accepts and counts streams, messages and metric families; translating them to Prometheus
/// series is the statsink issue's work.
/// </summary>
internal sealed class MetricsStreamService(StreamCounters counters, ILogger<MetricsStreamService> logger) : MetricsService.MetricsServiceBase
{
    private static readonly StreamMetricsResponse Empty = new();

    public override async Task<StreamMetricsResponse> StreamMetrics(IAsyncStreamReader<StreamMetricsMessage> requestStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(context);
        counters.Opened();
        string? node = null;
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken))
            {
                var message = requestStream.Current;
                if (node is null)
                {
                    // Envoy sends its identifier only in the first message of a stream.
                    node = message.Identifier?.Node?.Id is { Length: > 0 } id ? id : context.Peer;
                    StatSinkLog.StreamOpened(logger, node, message.Identifier?.Node?.Cluster ?? "");
                }
                counters.Received(message.EnvoyMetrics.Count);
            }
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // Envoy went away: an ordinary end of a metrics stream.
        }
        catch (IOException)
        {
            // The connection dropped mid-message: also an ordinary end.
        }
        finally
        {
            counters.Closed();
            StatSinkLog.StreamClosed(logger, node ?? context.Peer);
        }
        return Empty;
    }
}

/// <summary>statsink's own metrics about the streams it receives.</summary>
internal sealed class StreamCounters(IMetricFactory metrics)
{
    private readonly Counter _streams = metrics.CreateCounter("legate_statsink_streams_total", "Metrics streams opened by Envoys.");
    private readonly Gauge _active = metrics.CreateGauge("legate_statsink_streams_active", "Metrics streams open now.");
    private readonly Counter _messages = metrics.CreateCounter("legate_statsink_messages_total", "Stream messages (Envoy flushes or batches) received.");
    private readonly Counter _families = metrics.CreateCounter("legate_statsink_metric_families_total", "Metric families received.");

    public void Opened()
    {
        _streams.Inc();
        _active.Inc();
    }

    public void Received(int families)
    {
        _messages.Inc();
        _families.Inc(families);
    }

    public void Closed() => _active.Dec();
}

internal static partial class StatSinkLog
{
    [LoggerMessage(EventId = 1, EventName = "StreamOpened", Level = LogLevel.Information, Message = "Metrics stream from Envoy node {Node} (cluster {Cluster})")]
    public static partial void StreamOpened(ILogger logger, string node, string cluster);

    [LoggerMessage(EventId = 2, EventName = "StreamClosed", Level = LogLevel.Information, Message = "Metrics stream from Envoy node {Node} closed")]
    public static partial void StreamClosed(ILogger logger, string node);
}
