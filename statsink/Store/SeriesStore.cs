using System.Collections.Concurrent;
using Google.Protobuf.Collections;
using Io.Prometheus.Client;
using Microsoft.Extensions.Options;

namespace Legate.StatSink.Store;

/// <summary>
/// Every Envoy's series, as Prometheus will read them. Writes go per node: a flush is applied under its node's lock,
/// finding each series by its raw key without allocating, so nodes ingest in parallel. Families (name and type) are
/// shared by all nodes; their lists change only when series come or go. A scrape walks families and reads values
/// without the node locks; a histogram's or summary's fields are read under the series' own lock.
/// </summary>
internal sealed class SeriesStore
{
    private const int MaxCachedNames = 100_000;
    private const int MaxCachedNameLength = 256;

    private readonly StatSinkOptions _options;
    private readonly StatSinkMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Node> _nodes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string?> _exposedNames = new(StringComparer.Ordinal);
    private readonly Lock _familiesLock = new();
    private readonly Dictionary<string, Family> _families = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Family> _claims = new(StringComparer.Ordinal);
    private readonly long _ttl;
    private readonly long _grace;
    private int _entries;
    private int _served;
    // Served series removed so far: a series refused for a conflict is decided again once this has moved.
    private int _removals;

    public SeriesStore(IOptions<StatSinkOptions> options, StatSinkMetrics metrics, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _metrics = metrics;
        _time = time;
        _ttl = Ticks(_options.SeriesTtl);
        _grace = Ticks(_options.DisconnectGracePeriod);
    }

    /// <summary>Series served now.</summary>
    public int SeriesCount => Volatile.Read(ref _served);

    public int NodeCount => _nodes.Count;

    /// <summary>Optional per-flush observer (the DogStatsD forwarder).</summary>
    public IFlushObserver? Observer { get; set; }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    /// <summary>A stream of node <paramref name="id"/> opens: it becomes the node's owner (the newest stream counts).</summary>
    public Node Attach(string id, string cluster, object stream)
    {
        while (true)
        {
            var node = _nodes.GetOrAdd(id, key => new Node(key, cluster, _options));
            lock (node.Lock)
            {
                if (node.Removed)
                    continue;
                if (node.Cluster != cluster)
                {
                    // Same id, another cluster: the labels of every series change, so start the node afresh.
                    _metrics.Expired(ExpiryReason.Disconnect, RemoveAll(node));
                    node.SetCluster(cluster, _options);
                }
                node.Attach(stream);
                _metrics.Nodes.Set(_nodes.Count);
                return node;
            }
        }
    }

    public void Detach(Node node, object stream)
    {
        ArgumentNullException.ThrowIfNull(node);
        lock (node.Lock)
            node.Detach(stream, _time.GetTimestamp());
    }

    /// <summary>Applies one message's metric families from <paramref name="stream"/>; ignored unless it owns the node.</summary>
    public void Apply(Node node, object stream, RepeatedField<MetricFamily> families)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(families);
        var now = _time.GetTimestamp();
        var applied = 0;
        var observer = Observer;
        lock (node.Lock)
        {
            if (!ReferenceEquals(node.Owner, stream))
            {
                _metrics.Superseded();
                return;
            }
            if (node.Resync != ResyncStage.None)
                Resync(node, families);
            var batch = observer?.BeginFlush(node);
            // Indexed loops: RepeatedField's enumerator is an allocation per loop, and this runs per Envoy stat.
            for (var f = 0; f < families.Count; f++)
            {
                var family = families[f];
                var metrics = family.Metric;
                for (var m = 0; m < metrics.Count; m++)
                {
                    var metric = metrics[m];
                    var (kind, invalid) = KindOf(family, metric);
                    if (invalid != DropReason.None)
                    {
                        _metrics.Dropped(invalid);
                        continue;
                    }
                    var reason = ApplyMetric(node, family.Name, kind, metric, now, batch);
                    if (reason == DropReason.None)
                        applied++;
                    else
                        _metrics.Dropped(reason);
                }
            }
            batch?.End();
        }
        _metrics.Applied(applied);
    }

    /// <summary>
    /// A node whose flushes come from another stream now (Envoy reconnected, was restarted without hot restart, or a hot
    /// restart's new process took over) keeps only the series that stream sends. Envoy sends every stat it has in every
    /// flush, so a series missing from a whole flush of the new stream is gone from that Envoy (a restarted one's retired
    /// cluster, say): serving its last value until SeriesTtl would show what is no longer there. The first flush on a
    /// new stream may be the rest of one begun on the old stream (Envoy opens a new stream for its next batch when one
    /// breaks), so the second is the one that counts. Flushes are told apart by their timestamp, one per flush; a
    /// producer that sends none is left to the TTL.
    /// </summary>
    private void Resync(Node node, RepeatedField<MetricFamily> families)
    {
        var flushMs = FlushTimestamp(families);
        if (flushMs == 0 || flushMs == node.ResyncFlushMs)
            return;
        node.ResyncFlushMs = flushMs;
        switch (node.Resync)
        {
            case ResyncStage.Started:
                node.Resync = ResyncStage.FirstFlush;
                break;
            case ResyncStage.FirstFlush:
                // A whole flush begins: what it carries is seen in the new epoch.
                node.Epoch++;
                node.Resync = ResyncStage.WholeFlush;
                break;
            default:
                List<Series>? stale = null;
                foreach (var series in node.Series.Values)
                {
                    if (series.Epoch != node.Epoch)
                        (stale ??= []).Add(series);
                }
                if (stale is not null)
                {
                    Remove(node, stale);
                    _metrics.Expired(ExpiryReason.Reconnect, stale.Count(s => s.Family is not null));
                }
                node.Resync = ResyncStage.None;
                break;
        }
    }

    private static long FlushTimestamp(RepeatedField<MetricFamily> families)
    {
        for (var f = 0; f < families.Count; f++)
        {
            var metrics = families[f].Metric;
            for (var m = 0; m < metrics.Count; m++)
            {
                if (metrics[m].TimestampMs != 0)
                    return metrics[m].TimestampMs;
            }
        }
        return 0;
    }

    private static (SeriesKind Kind, DropReason Invalid) KindOf(MetricFamily family, Metric metric)
    {
        if (!family.HasType)
        {
            // No type on the wire reads as COUNTER; a producer that left it out is better served by what it did send.
            return metric.Counter is not null ? (SeriesKind.Counter, DropReason.None)
                : metric.Gauge is not null ? (SeriesKind.Gauge, DropReason.None)
                : metric.Histogram is not null ? (SeriesKind.Histogram, DropReason.None)
                : metric.Summary is not null ? (SeriesKind.Summary, DropReason.None)
                : metric.Untyped is not null ? (SeriesKind.Untyped, DropReason.None)
                : (default, DropReason.Invalid);
        }
        return family.Type switch
        {
            MetricType.Counter when metric.Counter is not null => (SeriesKind.Counter, DropReason.None),
            MetricType.Gauge when metric.Gauge is not null => (SeriesKind.Gauge, DropReason.None),
            MetricType.Untyped when metric.Untyped is not null => (SeriesKind.Untyped, DropReason.None),
            MetricType.Histogram when metric.Histogram is not null => (SeriesKind.Histogram, DropReason.None),
            MetricType.Summary when metric.Summary is not null => (SeriesKind.Summary, DropReason.None),
            MetricType.GaugeHistogram => (default, DropReason.Unsupported),
            _ => (default, DropReason.Invalid),
        };
    }

    private DropReason ApplyMetric(Node node, string name, SeriesKind kind, Metric metric, long now, IFlushBatch? observer)
    {
        var unkeyed = BuildKey(node, name, kind, metric.Label, out var keyLength);
        if (unkeyed != DropReason.None)
            return unkeyed;
        string? key = null;
        if (node.Lookup.TryGetValue(node.KeyBuffer.AsSpan(0, keyLength), out var series)
            && series.Dropped is DropReason.NameCollision or DropReason.TypeConflict && series.Removals != Volatile.Read(ref _removals))
        {
            // What it conflicted with may be gone since (expired, or its node's grace period over): decide again,
            // rather than refuse it for as long as it keeps coming.
            key = series.Key;
            node.Series.Remove(key);
            Interlocked.Decrement(ref _entries);
            series = null;
        }
        if (series is null)
        {
            var created = Create(node, key ?? new string(node.KeyBuffer, 0, keyLength), name, kind, metric.Label, now, out var refused);
            if (created is null)
                return refused;
            created.RefusedBefore = key is not null;
            series = created;
        }
        series.LastSeen = now;
        series.Epoch = node.Epoch;
        if (series.Dropped != DropReason.None)
            return series.Dropped;
        if (metric.TimestampMs != 0)
        {
            if (node.FirstFlushMs == 0)
                node.FirstFlushMs = metric.TimestampMs;
            // Envoy stamps every flush anew (and every batch of one flush alike, but a series is in one batch only).
            if (metric.TimestampMs == series.LastTimestampMs)
                return DropReason.Duplicate;
            series.LastTimestampMs = metric.TimestampMs;
        }

        switch (kind)
        {
            case SeriesKind.Counter:
                return ApplyCounter(series, metric.Counter.Value, name, metric, observer);
            case SeriesKind.Gauge:
                series.Value = metric.Gauge.Value;
                Volatile.Write(ref series.HasValue, true);
                observer?.Gauge(name, metric.Label, metric.Gauge.Value);
                return DropReason.None;
            case SeriesKind.Untyped:
                series.Value = metric.Untyped.Value;
                Volatile.Write(ref series.HasValue, true);
                observer?.Gauge(name, metric.Label, metric.Untyped.Value);
                return DropReason.None;
            case SeriesKind.Histogram:
                return ApplyHistogram(series, metric.Histogram, name, metric, observer);
            default:
                return ApplySummary(series, metric.Summary, name, metric, observer);
        }
    }

    private DropReason ApplyCounter(Series series, double value, string name, Metric metric, IFlushBatch? observer)
    {
        if (!double.IsFinite(value) || value < 0)
            return DropReason.Invalid;
        double increase;
        if (_options.DeltaCounters)
        {
            increase = value;
            series.Value += value;
        }
        else
        {
            // Envoy's own value, as its admin endpoint would show it: a drop is an Envoy restart, which Prometheus
            // reads as a counter reset. A series first seen in the node's first flush has no known increase (statsink
            // may just have started); one that appears in a later flush is a stat Envoy just began to use, from zero,
            // unless it was refused until now (a conflict since gone), when what it counted meanwhile is unknown.
            increase = series.HasValue ? (value >= series.Value ? value - series.Value : value)
                : metric.TimestampMs != 0 && metric.TimestampMs != series.Node.FirstFlushMs && !series.RefusedBefore ? value : 0;
            if (series.HasValue && value < series.Value)
                _metrics.CounterReset();
            series.Value = value;
        }
        Volatile.Write(ref series.HasValue, true);
        observer?.Counter(name, metric.Label, increase);
        return DropReason.None;
    }

    private DropReason ApplyHistogram(Series series, Histogram histogram, string name, Metric metric, IFlushBatch? observer)
    {
        var buckets = histogram.Bucket;
        var count = buckets.Count;
        // Envoy sends no +Inf bucket (sample_count is it); a producer that does gets it folded into the count.
        if (count > 0 && double.IsPositiveInfinity(buckets[count - 1].UpperBound))
            count--;
        var sampleCount = histogram.SampleCount;
        var sum = histogram.SampleSum;
        if (!double.IsFinite(sum))
            return DropReason.Invalid;
        ulong previous = 0;
        for (var i = 0; i < count; i++)
        {
            var bucket = buckets[i];
            var bound = bucket.UpperBound;
            if (double.IsNaN(bound) || double.IsInfinity(bound) || (i > 0 && bound <= buckets[i - 1].UpperBound)
                || bucket.CumulativeCount < previous || bucket.CumulativeCount > sampleCount)
                return DropReason.Invalid;
            previous = bucket.CumulativeCount;
        }

        lock (series.Lock)
        {
            if (series.Bounds is not { } bounds || !SameBounds(bounds.Values, buckets, count))
            {
                if (series.Bounds is not null)
                    _metrics.HistogramReset();
                var values = new double[count];
                for (var i = 0; i < count; i++)
                    values[i] = buckets[i].UpperBound;
                series.Bounds = BoundSet.Get(values);
                series.Buckets = new ulong[count];
                series.Count = 0;
                series.Sum = 0;
            }
            var cumulative = series.Buckets!;
            for (var i = 0; i < count; i++)
                cumulative[i] += buckets[i].CumulativeCount;
            series.Count += sampleCount;
            series.Sum += sum;
            series.HasValue = true;
        }
        observer?.Histogram(name, metric.Label, histogram);
        return DropReason.None;
    }

    private static bool SameBounds(double[] known, RepeatedField<Bucket> buckets, int count)
    {
        if (known.Length != count)
            return false;
        for (var i = 0; i < count; i++)
        {
            if (known[i] != buckets[i].UpperBound)
                return false;
        }
        return true;
    }

    private static DropReason ApplySummary(Series series, Summary summary, string name, Metric metric, IFlushBatch? observer)
    {
        var quantiles = summary.Quantile;
        for (var i = 0; i < quantiles.Count; i++)
        {
            // In order, as Envoy sends them: a quantile twice would write its series twice.
            if (quantiles[i].Quantile_ is not (>= 0 and <= 1) || (i > 0 && quantiles[i].Quantile_ <= quantiles[i - 1].Quantile_))
                return DropReason.Invalid;
        }
        if (!double.IsFinite(summary.SampleSum))
            return DropReason.Invalid;
        lock (series.Lock)
        {
            if (series.Quantiles is not { } known || !SameQuantiles(known.Values, quantiles))
            {
                var values = quantiles.Select(q => q.Quantile_).ToArray();
                series.Quantiles = QuantileSet.Get(values);
                series.QuantileValues = new double[values.Length];
            }
            // Envoy's quantiles describe the last interval only (NaN when it had no samples); count and sum accumulate.
            var target = series.QuantileValues!;
            for (var i = 0; i < quantiles.Count; i++)
                target[i] = quantiles[i].Value;
            series.Count += summary.SampleCount;
            series.Sum += summary.SampleSum;
            series.HasValue = true;
        }
        observer?.Summary(name, metric.Label, summary);
        return DropReason.None;
    }

    private static bool SameQuantiles(double[] known, RepeatedField<Quantile> quantiles)
    {
        if (known.Length != quantiles.Count)
            return false;
        for (var i = 0; i < known.Length; i++)
        {
            if (known[i] != quantiles[i].Quantile_)
                return false;
        }
        return true;
    }

    // The raw key: each string preceded by its length, so no name or value can make two keys equal. A series past the
    // length bounds is refused here, before any of it is copied: it leaves no placeholder and no larger key buffer.
    private DropReason BuildKey(Node node, string name, SeriesKind kind, RepeatedField<LabelPair> labels, out int keyLength)
    {
        keyLength = 0;
        var text = name.Length;
        for (var i = 0; i < labels.Count; i++)
        {
            var value = labels[i].Value.Length;
            if (value > _options.MaxLabelValueLength)
                return DropReason.TooLong;
            text += labels[i].Name.Length + value;
        }
        if (text > _options.MaxSeriesLength)
            return DropReason.TooLong;
        if (name.Length > ushort.MaxValue || labels.Count > ushort.MaxValue)
            return DropReason.Invalid;
        var length = 3 + text + 2 * labels.Count;
        if (node.KeyBuffer.Length < length)
            node.KeyBuffer = new char[Math.Max(length, node.KeyBuffer.Length * 2)];
        var buffer = node.KeyBuffer;
        var at = 0;
        buffer[at++] = (char)kind;
        if (!Put(buffer, ref at, name))
            return DropReason.Invalid;
        buffer[at++] = (char)labels.Count;
        for (var i = 0; i < labels.Count; i++)
        {
            var label = labels[i];
            if (!Put(buffer, ref at, label.Name) || !Put(buffer, ref at, label.Value))
                return DropReason.Invalid;
        }
        keyLength = at;
        return DropReason.None;

        static bool Put(char[] buffer, ref int at, string text)
        {
            if (text.Length > ushort.MaxValue)
                return false;
            buffer[at++] = (char)text.Length;
            text.CopyTo(buffer.AsSpan(at));
            at += text.Length;
            return true;
        }
    }

    private Series? Create(Node node, string key, string name, SeriesKind kind, RepeatedField<LabelPair> pairs, long now, out DropReason refused)
    {
        refused = DropReason.None;
        if (node.Series.Count >= _options.MaxSeriesPerNode)
            refused = DropReason.NodeLimit;
        else if (Volatile.Read(ref _entries) >= _options.MaxSeries)
            refused = DropReason.TotalLimit;
        if (refused != DropReason.None)
            return null;

        var labels = RenderLabels(node, kind, pairs);
        var exposedName = ExposedName(name);
        Series series;
        if (exposedName is null)
        {
            series = new Series(null, node, key, []) { Dropped = DropReason.Invalid, LastSeen = now };
        }
        else
        {
            // Under the families lock, so that a sweep cannot retire the family between finding it and joining it.
            lock (_familiesLock)
            {
                var removals = _removals;
                var family = GetOrAddFamily(kind == SeriesKind.Summary ? exposedName + "_quantiles" : exposedName, kind, out var reason);
                if (family is not null && node.Exposed.ContainsKey(new ExposedKey(family, labels)))
                {
                    reason = DropReason.NameCollision;
                    family = null;
                }
                if (family is null)
                {
                    series = new Series(null, node, key, []) { Dropped = reason, Removals = removals, LastSeen = now };
                }
                else
                {
                    series = new Series(family, node, key, labels) { LastSeen = now };
                    node.Exposed.Add(new ExposedKey(family, labels), series);
                    lock (family.Lock)
                    {
                        series.Index = family.Series.Count;
                        family.Series.Add(series);
                    }
                    _metrics.Series.Set(Interlocked.Increment(ref _served));
                }
            }
        }
        node.Series.Add(key, series);
        Interlocked.Increment(ref _entries);
        return series;
    }

    private string? ExposedName(string envoyName)
    {
        if (_exposedNames.TryGetValue(envoyName, out var exposed))
            return exposed;
        exposed = EnvoyNames.MetricName(envoyName);
        // A long name (a cluster's or route's name in it) is sanitized again when met again rather than kept twice.
        if (_exposedNames.Count < MaxCachedNames && envoyName.Length <= MaxCachedNameLength)
            _exposedNames.TryAdd(envoyName, exposed);
        return exposed;
    }

    private byte[] RenderLabels(Node node, SeriesKind kind, RepeatedField<LabelPair> pairs)
    {
        var output = new List<byte>(128);
        List<string>? seen = null;
        foreach (var pair in pairs)
        {
            var name = pair.Value.Length == 0 ? null : EnvoyNames.LabelName(pair.Name);
            if (name is null)
            {
                // Prometheus reads an empty value as no label at all.
                _metrics.LabelDropped();
                continue;
            }
            if (name.StartsWith("__", StringComparison.Ordinal) || name == _options.NodeIdLabel || name == _options.NodeClusterLabel
                || (kind == SeriesKind.Histogram && name == "le") || (kind == SeriesKind.Summary && name == "quantile"))
                name = "exported_" + name;
            seen ??= new List<string>(pairs.Count);
            if (seen.Contains(name))
            {
                _metrics.LabelDropped();
                continue;
            }
            seen.Add(name);
            foreach (var c in name)
                output.Add((byte)c);
            output.Add((byte)'=');
            output.Add((byte)'"');
            EnvoyNames.AppendEscapedUtf8(output, pair.Value);
            output.Add((byte)'"');
            output.Add((byte)',');
        }
        output.AddRange(node.NodeLabels);
        if (node.NodeLabels.Length == 0 && output.Count > 0)
            output.RemoveAt(output.Count - 1);
        return [.. output];
    }

    // Under _familiesLock.
    private Family? GetOrAddFamily(string name, SeriesKind kind, out DropReason reason)
    {
        reason = DropReason.None;
        if (_families.TryGetValue(name, out var family))
        {
            if (family.Kind == kind)
                return family;
            reason = DropReason.TypeConflict;
            return null;
        }
        family = new Family(name, kind);
        foreach (var claim in family.Claims())
        {
            if (_claims.ContainsKey(claim))
            {
                reason = DropReason.NameCollision;
                return null;
            }
        }
        _families.Add(name, family);
        foreach (var claim in family.Claims())
            _claims.Add(claim, family);
        return family;
    }

    /// <summary>The families to write, sorted by name; a family emptied meanwhile writes nothing.</summary>
    public Family[] SnapshotFamilies()
    {
        Family[] families;
        lock (_familiesLock)
            families = [.. _families.Values];
        Array.Sort(families, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        return families;
    }

    /// <summary>Drops series not sent for the TTL, and every series of nodes disconnected longer than the grace period.</summary>
    public void Sweep()
    {
        var now = _time.GetTimestamp();
        foreach (var node in _nodes.Values)
        {
            lock (node.Lock)
            {
                if (!node.Connected && now - node.DisconnectedAt >= _grace)
                {
                    _metrics.Expired(ExpiryReason.Disconnect, RemoveAll(node));
                    node.Removed = true;
                    _nodes.TryRemove(new KeyValuePair<string, Node>(node.Id, node));
                    continue;
                }
                List<Series>? expired = null;
                foreach (var series in node.Series.Values)
                {
                    if (now - series.LastSeen >= _ttl)
                        (expired ??= []).Add(series);
                }
                if (expired is not null)
                {
                    Remove(node, expired);
                    _metrics.Expired(ExpiryReason.Ttl, expired.Count(s => s.Family is not null));
                }
            }
        }
        _metrics.Nodes.Set(_nodes.Count);
    }

    private int RemoveAll(Node node)
    {
        var all = node.Series.Values.ToList();
        Remove(node, all);
        return all.Count(s => s.Family is not null);
    }

    private void Remove(Node node, List<Series> series)
    {
        lock (_familiesLock)
        {
            foreach (var s in series)
            {
                node.Series.Remove(s.Key);
                Interlocked.Decrement(ref _entries);
                if (s.Family is not { } family)
                    continue;
                node.Exposed.Remove(new ExposedKey(family, s.Labels));
                lock (family.Lock)
                {
                    var list = family.Series;
                    var last = list[^1];
                    list[s.Index] = last;
                    last.Index = s.Index;
                    list.RemoveAt(list.Count - 1);
                    if (list.Count == 0)
                    {
                        _families.Remove(family.Name);
                        foreach (var claim in family.Claims())
                            _claims.Remove(claim);
                    }
                }
                _metrics.Series.Set(Interlocked.Decrement(ref _served));
                Interlocked.Increment(ref _removals);
            }
        }
    }
}

/// <summary>Sees each flush as Envoy sent it (the DogStatsD forwarder).</summary>
internal interface IFlushObserver
{
    /// <summary>Called under the node's lock; the batch gets the flush's applied metrics, then <see cref="IFlushBatch.End"/>.</summary>
    IFlushBatch BeginFlush(Node node);
}

/// <summary>One flush's applied metrics.</summary>
internal interface IFlushBatch
{
    /// <summary>A counter's increase since the previous flush (0 for the first one seen).</summary>
    void Counter(string name, RepeatedField<LabelPair> labels, double increase);

    void Gauge(string name, RepeatedField<LabelPair> labels, double value);

    void Histogram(string name, RepeatedField<LabelPair> labels, Histogram histogram);

    void Summary(string name, RepeatedField<LabelPair> labels, Summary summary);

    void End();
}
