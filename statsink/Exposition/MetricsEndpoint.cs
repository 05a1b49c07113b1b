using Prometheus;

namespace Legate.StatSink.Exposition;

/// <summary>
/// statsink's <c>/metrics</c>: its own series (prometheus-net: <c>legate_statsink_*</c>, gRPC, process) followed by
/// every Envoy's series, so one scrape job gets both, as with statsd_exporter. OpenMetrics when the scraper's
/// <c>Accept</c> asks for it (Prometheus does by default), text format 0.0.4 otherwise. <c>?envoy=false</c> leaves
/// the Envoy series out: a cheap scrape of statsink's health alone.
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

        using (var own = new MemoryStream())
        {
            await registry.CollectAndExportAsTextAsync(own, openMetrics ? ExpositionFormat.OpenMetricsText : ExpositionFormat.PrometheusText, cancellationToken);
            var bytes = own.GetBuffer().AsMemory(0, (int)own.Length);
            // prometheus-net ends OpenMetrics with "# EOF"; the Envoy series still follow, so it moves to the end.
            if (openMetrics && bytes.Span.EndsWith(Eof))
                bytes = bytes[..^Eof.Length];
            await response.BodyWriter.WriteAsync(bytes, cancellationToken);
        }
        if (context.Request.Query["envoy"] != "false")
            await envoy.WriteAsync(response.BodyWriter, openMetrics, cancellationToken);
        if (openMetrics)
            await response.BodyWriter.WriteAsync(Eof, cancellationToken);
        await response.BodyWriter.FlushAsync(cancellationToken);
    }

    internal static bool AcceptsOpenMetrics(Microsoft.Extensions.Primitives.StringValues accept)
    {
        foreach (var value in accept)
        {
            if (value is not null && value.Contains("application/openmetrics-text", StringComparison.OrdinalIgnoreCase))
                return true;
        }
        return false;
    }
}
