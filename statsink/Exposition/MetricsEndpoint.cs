using System.IO.Compression;
using System.IO.Pipelines;
using Microsoft.Net.Http.Headers;
using Prometheus;

namespace Legate.StatSink.Exposition;

/// <summary>
/// statsink's <c>/metrics</c>: its own series (prometheus-net: <c>legate_statsink_*</c>, gRPC, process) followed by
/// every Envoy's series, so one scrape job gets both, as with statsd_exporter. OpenMetrics when the scraper's
/// <c>Accept</c> prefers it (Prometheus does by default), text format 0.0.4 otherwise. <c>?envoy=false</c> leaves
/// the Envoy series out: a cheap scrape of statsink's health alone. Gzip when the scraper accepts it (Prometheus
/// does): a fleet's exposition is large and repetitive (label sets repeat on every line), and shrinks several times.
/// </summary>
internal static class MetricsEndpoint
{
    private static readonly byte[] Eof = "# EOF\n"u8.ToArray();

    public static async Task HandleAsync(HttpContext context, CollectorRegistry registry, EnvoyExposition envoy)
    {
        var openMetrics = AcceptsOpenMetrics(context.Request.Headers.Accept);
        var cancellationToken = context.RequestAborted;
        var response = context.Response;
        response.ContentType = openMetrics ? EnvoyExposition.OpenMetricsContentType : EnvoyExposition.TextContentType;
        response.Headers.CacheControl = "no-store";
        response.Headers.Vary = HeaderNames.AcceptEncoding;
        if (!AcceptsGzip(context.Request.Headers.AcceptEncoding))
        {
            await WriteAsync(response.BodyWriter, context, registry, envoy, openMetrics, cancellationToken);
            return;
        }

        response.Headers.ContentEncoding = "gzip";
        // Fastest: the scrape's CPU stays small beside the flushes; the text compresses well at any level.
        var gzip = new GZipStream(response.Body, CompressionLevel.Fastest, leaveOpen: true);
        await using (gzip.ConfigureAwait(false))
        {
            var writer = PipeWriter.Create(gzip, new StreamPipeWriterOptions(leaveOpen: true));
            await WriteAsync(writer, context, registry, envoy, openMetrics, cancellationToken);
            await writer.CompleteAsync();
        }
    }

    private static async Task WriteAsync(PipeWriter body, HttpContext context, CollectorRegistry registry, EnvoyExposition envoy, bool openMetrics,
        CancellationToken cancellationToken)
    {
        using (var own = new MemoryStream())
        {
            await registry.CollectAndExportAsTextAsync(own, openMetrics ? ExpositionFormat.OpenMetricsText : ExpositionFormat.PrometheusText, cancellationToken);
            var bytes = own.GetBuffer().AsMemory(0, (int)own.Length);
            // prometheus-net ends OpenMetrics with "# EOF"; the Envoy series still follow, so it moves to the end.
            if (openMetrics && bytes.Span.EndsWith(Eof))
                bytes = bytes[..^Eof.Length];
            await body.WriteAsync(bytes, cancellationToken);
        }
        if (context.Request.Query["envoy"] != "false")
            await envoy.WriteAsync(body, openMetrics, cancellationToken);
        if (openMetrics)
            await body.WriteAsync(Eof, cancellationToken);
        await body.FlushAsync(cancellationToken);
    }

    /// <summary>gzip listed in Accept-Encoding with a q-value above 0 (or none).</summary>
    internal static bool AcceptsGzip(Microsoft.Extensions.Primitives.StringValues acceptEncoding)
    {
        if (!StringWithQualityHeaderValue.TryParseList(acceptEncoding, out var codings))
            return false;
        foreach (var coding in codings)
        {
            if (coding.Value.Equals("gzip", StringComparison.OrdinalIgnoreCase) && (coding.Quality ?? 1) > 0)
                return true;
        }
        return false;
    }

    /// <summary>
    /// OpenMetrics when <c>Accept</c> names it, ranked above 0 and not below text (Prometheus ranks its
    /// <c>scrape_protocols</c> so); <c>*/*</c> alone gets text.
    /// </summary>
    internal static bool AcceptsOpenMetrics(Microsoft.Extensions.Primitives.StringValues accept)
    {
        if (!MediaTypeHeaderValue.TryParseList(accept, out var ranges))
            return false;
        var openMetrics = Quality(ranges, "application", "openmetrics-text", out var named);
        return named && openMetrics > 0 && openMetrics >= Quality(ranges, "text", "plain", out _);
    }

    // As HTTP ranks media ranges: the most specific range that matches gives the quality (of several, e.g. one per
    // version, the highest); none matching is 0.
    private static double Quality(IList<MediaTypeHeaderValue> ranges, string type, string subtype, out bool named)
    {
        var specificity = -1;
        var quality = 0.0;
        foreach (var range in ranges)
        {
            var matched = range.MatchesAllTypes ? 0
                : !range.Type.Equals(type, StringComparison.OrdinalIgnoreCase) ? -1
                : range.MatchesAllSubTypes ? 1
                : range.SubType.Equals(subtype, StringComparison.OrdinalIgnoreCase) ? 2 : -1;
            if (matched < specificity || matched < 0)
                continue;
            var q = range.Quality ?? 1;
            quality = matched > specificity ? q : Math.Max(quality, q);
            specificity = matched;
        }
        named = specificity == 2;
        return quality;
    }
}
