using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Google.Protobuf.Collections;
using Io.Prometheus.Client;
using Legate.Hosting;
using Legate.StatSink.Store;
using Microsoft.Extensions.Options;

namespace Legate.StatSink.DogStatsd;

/// <summary>
/// Forwards each applied flush to a Datadog agent as DogStatsD over UDP, the way Envoy's own <c>dog_statsd</c> sink
/// would: Envoy's dotted names under a prefix, tags as <c>#name:value</c> (Envoy's tag names plus the node's),
/// counters as the increase since the previous flush (<c>|c</c>), gauges (<c>|g</c>), histograms as their interval's
/// count and sum (<c>.count</c>, <c>.sum</c>, <c>|c</c>) and summaries as one gauge per quantile (<c>.p99</c>; NaN
/// skipped). Lines are packed into datagrams of at most <c>MaxDatagramSize</c> bytes and queued; a full queue drops
/// and counts, so a slow or absent agent never holds up ingestion.
/// </summary>
internal sealed class DogStatsdForwarder : IFlushObserver, IHostedService, IDisposable
{
    private readonly DogStatsdOptions _options;
    private readonly StatSinkOptions _sink;
    private readonly Channel<byte[]> _queue;
    private readonly Prometheus.Counter.Child _sent;
    private readonly Prometheus.Counter.Child _dropped;
    private readonly Prometheus.Counter.Child _failed;
    private readonly ILogger<DogStatsdForwarder> _logger;
    private readonly SeriesStore? _store;
    // An absent agent can fail every datagram of every flush: logged with a count, not once each.
    private readonly EventThrottle _sendFailures;
    private readonly byte[] _prefix;
    private Socket? _socket;
    private EndPoint? _endpoint;
    private Task? _sender;

    public DogStatsdForwarder(IOptions<StatSinkOptions> options, Prometheus.IMetricFactory metrics, ILogger<DogStatsdForwarder> logger, TimeProvider time,
        SeriesStore? store = null)
    {
        _store = store;
        _sendFailures = new EventThrottle(time);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        _sink = options.Value;
        _options = _sink.DogStatsd;
        _logger = logger;
        _prefix = Encoding.UTF8.GetBytes(_options.Prefix.Length > 0 ? _options.Prefix + "." : "");
        _queue = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(_options.QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        var datagrams = metrics.CreateCounter("legate_statsink_dogstatsd_datagrams_total", "DogStatsD datagrams, by result: sent, dropped (queue full), failed (send error).", ["result"]);
        _sent = datagrams.WithLabels("sent");
        _dropped = datagrams.WithLabels("dropped");
        _failed = datagrams.WithLabels("failed");
    }

    public IFlushBatch BeginFlush(Node node) => new Batch(this, node);

    /// <summary>Queues a datagram; false (and counted) when the queue is full.</summary>
    internal bool Enqueue(byte[] datagram)
    {
        if (_queue.Writer.TryWrite(datagram))
            return true;
        _dropped.Inc();
        return false;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_options.Enabled)
            return;
        var address = IPAddress.TryParse(_options.Host, out var ip) ? ip : (await Dns.GetHostAddressesAsync(_options.Host, cancellationToken))[0];
        _endpoint = new IPEndPoint(address, _options.Port);
        _socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _sender = Task.Run(SendLoopAsync, CancellationToken.None);
        if (_store is not null)
            _store.Observer = this;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        if (_sender is not null)
            await _sender.WaitAsync(cancellationToken);
    }

    private async Task SendLoopAsync()
    {
        await foreach (var datagram in _queue.Reader.ReadAllAsync())
        {
            try
            {
                await _socket!.SendToAsync(datagram, SocketFlags.None, _endpoint!);
                _sent.Inc();
            }
            catch (SocketException e)
            {
                // UDP to an absent agent can report ICMP errors: logged (throttled), counted, and the next datagram
                // tried. Counted after the line, so that a scrape showing a failure finds the line it was due.
                if (_sendFailures.TryReport(out var failed))
                    StatSinkLog.DogStatsdSendFailed(_logger, e, failed, _endpoint!.ToString()!, _sendFailures.Interval.TotalSeconds);
                _failed.Inc();
            }
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _socket?.Dispose();
    }

    /// <summary>Lines of one flush, packed into datagrams as they come.</summary>
    private sealed class Batch : IFlushBatch
    {
        private readonly DogStatsdForwarder _owner;
        private readonly byte[] _nodeTags;
        private readonly int _max;
        private readonly StringBuilder _line = new(256);
        private readonly byte[] _buffer;
        private int _length;

        public Batch(DogStatsdForwarder owner, Node node)
        {
            _owner = owner;
            _max = owner._options.MaxDatagramSize;
            _buffer = new byte[_max];
            var tags = new StringBuilder();
            AppendTag(tags, owner._sink.NodeIdLabel, node.Id);
            if (owner._sink.NodeClusterLabel.Length > 0 && node.Cluster.Length > 0)
            {
                tags.Append(',');
                AppendTag(tags, owner._sink.NodeClusterLabel, node.Cluster);
            }
            _nodeTags = Encoding.UTF8.GetBytes(tags.ToString());
        }

        public void Counter(string name, RepeatedField<LabelPair> labels, double increase)
        {
            if (increase > 0)
                Line(name, null, labels, increase, "c");
        }

        public void Gauge(string name, RepeatedField<LabelPair> labels, double value)
        {
            if (double.IsFinite(value))
                Line(name, null, labels, value, "g");
        }

        public void Histogram(string name, RepeatedField<LabelPair> labels, Histogram histogram)
        {
            if (histogram.SampleCount == 0)
                return;
            Line(name, "count", labels, histogram.SampleCount, "c");
            Line(name, "sum", labels, histogram.SampleSum, "c");
        }

        public void Summary(string name, RepeatedField<LabelPair> labels, Summary summary)
        {
            foreach (var q in summary.Quantile)
            {
                if (double.IsFinite(q.Value))
                    Line(name, "p" + (q.Quantile_ * 100).ToString("0.#", CultureInfo.InvariantCulture).Replace('.', '_'), labels, q.Value, "g");
            }
        }

        public void End()
        {
            if (_length > 0)
                _owner.Enqueue(_buffer.AsSpan(0, _length).ToArray());
            _length = 0;
        }

        private void Line(string name, string? suffix, RepeatedField<LabelPair> labels, double value, string type)
        {
            var line = _line.Clear();
            AppendName(line, name);
            if (suffix is not null)
                line.Append('.').Append(suffix);
            line.Append(':').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('|').Append(type).Append("|#");
            foreach (var label in labels)
            {
                if (label.Value.Length == 0)
                    continue;
                AppendTag(line, label.Name, label.Value);
                line.Append(',');
            }
            var text = line.ToString();
            var size = _owner._prefix.Length + Encoding.UTF8.GetByteCount(text) + _nodeTags.Length;
            if (size > _max)
                return; // a single line over the datagram size cannot be sent whole
            if (_length + size + 1 > _max)
                End();
            if (_length > 0)
                _buffer[_length++] = (byte)'\n';
            _owner._prefix.CopyTo(_buffer, _length);
            _length += _owner._prefix.Length;
            _length += Encoding.UTF8.GetBytes(text, _buffer.AsSpan(_length));
            _nodeTags.CopyTo(_buffer, _length);
            _length += _nodeTags.Length;
        }

        // DogStatsD's separators ':', '|', '@', '#', ',' and line breaks cannot appear inside a name.
        private static void AppendName(StringBuilder output, string name)
        {
            foreach (var c in name)
                output.Append(c is ':' or '|' or '@' or '#' or ',' or ' ' or '\n' or '\r' ? '_' : c);
        }

        private static void AppendTag(StringBuilder output, string name, string value)
        {
            AppendName(output, name);
            output.Append(':');
            foreach (var c in value)
                output.Append(c is '|' or ',' or '#' or '\n' or '\r' ? '_' : c);
        }
    }
}
