using Prometheus;

namespace Legate.StatSink;

/// <summary>Why an Envoy series was not (or is no longer) served.</summary>
internal enum DropReason
{
    None,

    /// <summary>The Envoy already has <c>MaxSeriesPerNode</c> series.</summary>
    NodeLimit,

    /// <summary>statsink already serves <c>MaxSeries</c> series.</summary>
    TotalLimit,

    /// <summary>After sanitizing, the name (or one of the series names a histogram or summary writes) is taken by another stat.</summary>
    NameCollision,

    /// <summary>The name is already served with another type.</summary>
    TypeConflict,

    /// <summary>Malformed: NaN or negative counter, unsorted buckets, a type without its value, ...</summary>
    Invalid,

    /// <summary>A type Prometheus' text format cannot carry from this sink (gauge histograms).</summary>
    Unsupported,

    /// <summary>The same series with the same timestamp as last time: a repeated delivery, applied once.</summary>
    Duplicate,

    /// <summary>A label value longer than <c>MaxLabelValueLength</c>, or name and labels longer than <c>MaxSeriesLength</c>.</summary>
    TooLong,
}

/// <summary>Why served series went.</summary>
internal enum ExpiryReason
{
    /// <summary>Not sent for <c>SeriesTtl</c>.</summary>
    Ttl,

    /// <summary>Their Envoy disconnected longer than <c>DisconnectGracePeriod</c> (or came back in another cluster).</summary>
    Disconnect,

    /// <summary>Not in a whole flush of their Envoy's new stream (it reconnected or restarted).</summary>
    Reconnect,
}

/// <summary>statsink's own series (prometheus-net, <c>legate_statsink_*</c>), about the streams and the series they feed.</summary>
internal sealed class StatSinkMetrics
{
    private readonly Counter _streams;
    private readonly Gauge _active;
    private readonly Counter _messages;
    private readonly Counter _families;
    private readonly Counter _samples;
    private readonly Counter _withoutNodeId;
    private readonly Counter _superseded;
    private readonly Counter.Child[] _dropped;
    private readonly Counter.Child[] _expired;
    private readonly Counter.Child _counterResets;
    private readonly Counter.Child _histogramResets;
    private readonly Counter _labelsDropped;

    public StatSinkMetrics(IMetricFactory metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _streams = metrics.CreateCounter("legate_statsink_streams_total", "Metrics streams opened by Envoys.");
        _active = metrics.CreateGauge("legate_statsink_streams_active", "Metrics streams open now.");
        _messages = metrics.CreateCounter("legate_statsink_messages_total", "Stream messages (Envoy flushes or batches) received.");
        _families = metrics.CreateCounter("legate_statsink_metric_families_total", "Metric families received.");
        _samples = metrics.CreateCounter("legate_statsink_samples_total", "Envoy metrics (one per stat and flush) applied to series.");
        _withoutNodeId = metrics.CreateCounter("legate_statsink_streams_without_node_id_total",
            "Streams whose first message named no node id; they are identified by the peer address instead.");
        _superseded = metrics.CreateCounter("legate_statsink_messages_superseded_total",
            "Messages ignored because a newer stream of the same node id is open (hot restart, or Envoys sharing an id).");
        var dropped = metrics.CreateCounter("legate_statsink_series_dropped_total", "Envoy metrics not applied, by reason.", ["reason"]);
        _dropped = Enum.GetValues<DropReason>().Select(r => dropped.WithLabels(ReasonLabel(r))).ToArray();
        var expired = metrics.CreateCounter("legate_statsink_series_expired_total",
            "Series no longer served: not sent for the TTL, their Envoy gone for the grace period, or not sent by their Envoy after it reconnected or restarted.", ["reason"]);
        _expired = [expired.WithLabels("ttl"), expired.WithLabels("disconnect"), expired.WithLabels("reconnect")];
        var resets = metrics.CreateCounter("legate_statsink_resets_total",
            "Series that started over: kind=counter, a cumulative counter went down (an Envoy restart); kind=histogram, bucket bounds changed.", ["kind"]);
        _counterResets = resets.WithLabels("counter");
        _histogramResets = resets.WithLabels("histogram");
        _labelsDropped = metrics.CreateCounter("legate_statsink_labels_dropped_total",
            "Envoy labels left out of a series: empty value, unusable name, or a duplicate after sanitizing.");
        Series = metrics.CreateGauge("legate_statsink_series", "Envoy series served now.");
        Nodes = metrics.CreateGauge("legate_statsink_nodes", "Envoy nodes with series served now (connected or in their grace period).");
    }

    public Gauge Series { get; }

    public Gauge Nodes { get; }

    public void Opened()
    {
        _streams.Inc();
        _active.Inc();
    }

    public void Closed() => _active.Dec();

    public void Received(int families)
    {
        _messages.Inc();
        _families.Inc(families);
    }

    public void Applied(int samples) => _samples.Inc(samples);

    public void WithoutNodeId() => _withoutNodeId.Inc();

    public void Superseded() => _superseded.Inc();

    public void Dropped(DropReason reason, int count = 1) => _dropped[(int)reason].Inc(count);

    public void Expired(ExpiryReason reason, int count)
    {
        if (count > 0)
            _expired[(int)reason].Inc(count);
    }

    public void CounterReset() => _counterResets.Inc();

    public void HistogramReset() => _histogramResets.Inc();

    public void LabelDropped() => _labelsDropped.Inc();

    private static string ReasonLabel(DropReason reason) => reason switch
    {
        DropReason.NodeLimit => "node_limit",
        DropReason.TotalLimit => "total_limit",
        DropReason.NameCollision => "name_collision",
        DropReason.TypeConflict => "type_conflict",
        DropReason.Invalid => "invalid",
        DropReason.Unsupported => "unsupported",
        DropReason.Duplicate => "duplicate",
        DropReason.TooLong => "too_long",
        _ => "none",
    };
}
