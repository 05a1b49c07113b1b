using System.Text;
using Prometheus;

namespace Legate.Testing;

/// <summary>A metrics registry as Prometheus would scrape it, for asserting on series.</summary>
public static class MetricsText
{
    public static string Scrape(this CollectorRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        using var stream = new MemoryStream();
        registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
