using Envoy.Service.Metrics.V3;
using Grpc.Core;
using Legate.StatSink.Store;

namespace Legate.StatSink;

/// <summary>
/// Envoy's metrics service v3 <c>StreamMetrics</c>: Envoy opens one stream and sends every flush on it, never closing
/// it while it runs. The first message names the node; each message's families are applied to that node's series.
/// A stream holds one message at a time (at most <c>Legate:MaxReceiveMessageSize</c>), so its memory is bounded.
/// </summary>
internal sealed class MetricsStreamService(SeriesStore store, StatSinkMetrics metrics, StreamShutdown shutdown, ILogger<MetricsStreamService> logger)
    : LenientMetricsService.ServiceBase
{
    private static readonly StreamMetricsResponse Empty = new();

    public override async Task<StreamMetricsResponse> StreamMetrics(IAsyncStreamReader<StreamMetricsMessage> requestStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(context);
        metrics.Opened();
        var stream = new object();
        Node? node = null;
        // Also ended when statsink stops (StreamShutdown), with OK: Envoy reopens it at its next flush.
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, shutdown.Ending);
        try
        {
            while (await requestStream.MoveNext(ending.Token))
            {
                var message = requestStream.Current;
                // The identifier comes with the first message of a stream only; one on a later message is ignored.
                node ??= Open(message, context, stream);
                store.Apply(node, stream, message.EnvoyMetrics);
                metrics.Received(message.EnvoyMetrics.Count);
            }
        }
        catch (OperationCanceledException) when (ending.IsCancellationRequested)
        {
            // Envoy went away, or statsink is stopping: an ordinary end of a metrics stream.
        }
        catch (IOException e) when (e is not Google.Protobuf.InvalidProtocolBufferException)
        {
            // The connection dropped mid-message: also an ordinary end.
        }
        finally
        {
            metrics.Closed();
            if (node is not null)
            {
                store.Detach(node, stream);
                StatSinkLog.StreamClosed(logger, node.Id);
            }
        }
        return Empty;
    }

    private Node Open(StreamMetricsMessage message, ServerCallContext context, object stream)
    {
        var envoyNode = message.Identifier?.Node;
        var id = envoyNode?.Id;
        if (string.IsNullOrEmpty(id))
        {
            id = PeerHost(context.Peer);
            metrics.WithoutNodeId();
            StatSinkLog.NoNodeId(logger, id);
        }
        var cluster = envoyNode?.Cluster ?? "";
        StatSinkLog.StreamOpened(logger, id, cluster);
        return store.Attach(id, cluster, stream);
    }

    /// <summary>The peer's address without its port (which changes on every reconnect): <c>ipv4:10.0.0.7:41234</c> → <c>10.0.0.7</c>.</summary>
    internal static string PeerHost(string? peer)
    {
        if (string.IsNullOrEmpty(peer))
            return "unknown";
        var address = peer.StartsWith("ipv4:", StringComparison.Ordinal) || peer.StartsWith("ipv6:", StringComparison.Ordinal) ? peer[5..] : peer;
        if (address.StartsWith('['))
        {
            var close = address.IndexOf(']', StringComparison.Ordinal);
            return close > 0 ? address[1..close] : address;
        }
        var colon = address.LastIndexOf(':');
        return colon > 0 && address.IndexOf(':', StringComparison.Ordinal) == colon ? address[..colon] : address;
    }
}

internal static partial class StatSinkLog
{
    [LoggerMessage(EventId = 201, EventName = "StreamOpened", Level = LogLevel.Information, Message = "Metrics stream from Envoy node {Node} (cluster {Cluster})")]
    public static partial void StreamOpened(ILogger logger, string node, string cluster);

    [LoggerMessage(EventId = 202, EventName = "StreamClosed", Level = LogLevel.Information, Message = "Metrics stream from Envoy node {Node} closed")]
    public static partial void StreamClosed(ILogger logger, string node);

    [LoggerMessage(EventId = 203, EventName = "NoNodeId", Level = LogLevel.Warning, Message = "Metrics stream without a node id; using the peer address {Node}")]
    public static partial void NoNodeId(ILogger logger, string node);

    [LoggerMessage(EventId = 204, EventName = "DogStatsdSendFailed", Level = LogLevel.Warning,
        Message = "{FailedDatagrams} DogStatsD datagram(s) to {Endpoint} failed since the last such line (at most one every {IntervalSeconds} s); the latest error is attached")]
    public static partial void DogStatsdSendFailed(ILogger logger, Exception exception, long failedDatagrams, string endpoint, double intervalSeconds);
}
