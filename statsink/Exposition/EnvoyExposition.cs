using System.Buffers;
using System.IO.Pipelines;
using Legate.StatSink.Store;

namespace Legate.StatSink.Exposition;

/// <summary>
/// Writes the Envoy series in Prometheus text format 0.0.4 or OpenMetrics 1.0, by hand: prometheus-net cannot express
/// histograms whose buckets arrive already counted. Every line is built from bytes rendered when its series was
/// created (name, labels, <c>le</c> values), so a scrape formats only the numbers. Written series by series and
/// flushed every 256 KiB, so a large fleet streams instead of being built in memory.
/// </summary>
internal sealed class EnvoyExposition(SeriesStore store)
{
    public const string TextContentType = "text/plain; version=0.0.4; charset=utf-8";
    public const string OpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    private const int FlushEvery = 256 * 1024;

    public async Task WriteAsync(PipeWriter writer, bool openMetrics, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writer);
        long pending = 0;
        var families = store.SnapshotFamilies();
        var names = openMetrics ? Names(families) : null;
        foreach (var family in families)
        {
            // The family's list is copied under its lock and written outside it, so one big family (every Envoy's
            // request-time histograms) neither holds up new series nor sits whole in the response buffer.
            var (series, count) = Snapshot(family);
            try
            {
                if (count == 0)
                    continue;
                pending += WriteType(writer, family, names);
                for (var i = 0; i < count; i++)
                {
                    pending += WriteSeries(writer, family, series[i]);
                    if (pending >= FlushEvery)
                    {
                        await writer.FlushAsync(cancellationToken);
                        pending = 0;
                    }
                }
            }
            finally
            {
                ArrayPool<Series>.Shared.Return(series, clearArray: true);
            }
        }
    }

    private static HashSet<string> Names(Family[] families) => families.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);

    private static (Series[] Series, int Count) Snapshot(Family family)
    {
        lock (family.Lock)
        {
            var list = family.Series;
            var array = ArrayPool<Series>.Shared.Rent(Math.Max(1, list.Count));
            list.CopyTo(array);
            return (array, list.Count);
        }
    }

    /// <summary>One series' lines. A series removed since the snapshot may be written once more: harmless.</summary>
    internal static int WriteSeries(PipeWriter writer, Family family, Series series)
    {
        // A series whose first sample was refused has nothing to show yet.
        if (!Volatile.Read(ref series.HasValue))
            return 0;
        var written = 0;
        Span<byte> value = stackalloc byte[32];
        var name = family.NameUtf8;
        switch (family.Kind)
        {
            case SeriesKind.Counter:
            case SeriesKind.Gauge:
            case SeriesKind.Untyped:
                written += Line(writer, name, default, series.Labels, default, value[..EnvoyNames.FormatValue(series.Value, value)]);
                break;
            case SeriesKind.Histogram:
                lock (series.Lock)
                {
                    var bounds = series.Bounds!;
                    var buckets = series.Buckets!;
                    for (var i = 0; i < buckets.Length; i++)
                        written += Line(writer, name, "_bucket"u8, series.Labels, bounds.Le[i], value[..EnvoyNames.FormatValue(buckets[i], value)]);
                    var count = value[..EnvoyNames.FormatValue(series.Count, value)];
                    written += Line(writer, name, "_bucket"u8, series.Labels, "le=\"+Inf\""u8, count);
                    written += Line(writer, name, "_count"u8, series.Labels, default, count);
                    written += Line(writer, name, "_sum"u8, series.Labels, default, value[..EnvoyNames.FormatValue(series.Sum, value)]);
                }
                break;
            case SeriesKind.Summary:
                lock (series.Lock)
                {
                    var quantiles = series.Quantiles!;
                    var values = series.QuantileValues!;
                    for (var i = 0; i < values.Length; i++)
                        written += Line(writer, name, default, series.Labels, quantiles.Labels[i], value[..EnvoyNames.FormatValue(values[i], value)]);
                    written += Line(writer, name, "_count"u8, series.Labels, default, value[..EnvoyNames.FormatValue(series.Count, value)]);
                    written += Line(writer, name, "_sum"u8, series.Labels, default, value[..EnvoyNames.FormatValue(series.Sum, value)]);
                }
                break;
        }
        return written;
    }

    private static int WriteType(PipeWriter writer, Family family, HashSet<string>? openMetricsNames)
    {
        var openMetrics = openMetricsNames is not null;
        ReadOnlySpan<byte> name = family.NameUtf8;
        ReadOnlySpan<byte> type;
        switch (family.Kind)
        {
            // OpenMetrics: family "x", sample "x_total"; unless Envoy also has a stat "x" (upstream_rq_total and
            // upstream_rq{code}), which then keeps the name and the counter becomes "unknown" like those without _total.
            case SeriesKind.Counter when openMetrics && family.OpenMetricsCounter && !openMetricsNames!.Contains(family.Name[..^"_total".Length]):
                name = name[..^"_total".Length];
                type = "counter"u8;
                break;
            case SeriesKind.Counter:
                type = openMetrics ? "unknown"u8 : "counter"u8;
                break;
            case SeriesKind.Gauge:
                type = "gauge"u8;
                break;
            case SeriesKind.Histogram:
                type = "histogram"u8;
                break;
            case SeriesKind.Summary:
                type = "summary"u8;
                break;
            default:
                type = openMetrics ? "unknown"u8 : "untyped"u8;
                break;
        }
        var length = 7 + name.Length + 1 + type.Length + 1;
        var span = writer.GetSpan(length);
        "# TYPE "u8.CopyTo(span);
        name.CopyTo(span[7..]);
        span[7 + name.Length] = (byte)' ';
        type.CopyTo(span[(8 + name.Length)..]);
        span[length - 1] = (byte)'\n';
        writer.Advance(length);
        return length;
    }

    private static int Line(PipeWriter writer, byte[] name, ReadOnlySpan<byte> suffix, byte[] labels, ReadOnlySpan<byte> extra, ReadOnlySpan<byte> value)
    {
        var span = writer.GetSpan(name.Length + suffix.Length + labels.Length + extra.Length + value.Length + 5);
        name.CopyTo(span);
        var at = name.Length;
        suffix.CopyTo(span[at..]);
        at += suffix.Length;
        if (labels.Length + extra.Length > 0)
        {
            span[at++] = (byte)'{';
            labels.CopyTo(span[at..]);
            at += labels.Length;
            if (extra.Length > 0)
            {
                if (labels.Length > 0)
                    span[at++] = (byte)',';
                extra.CopyTo(span[at..]);
                at += extra.Length;
            }
            span[at++] = (byte)'}';
        }
        span[at++] = (byte)' ';
        value.CopyTo(span[at..]);
        at += value.Length;
        span[at++] = (byte)'\n';
        writer.Advance(at);
        return at;
    }
}
