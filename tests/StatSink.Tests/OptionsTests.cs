using Legate.Testing;
using Microsoft.Extensions.Options;

namespace Legate.StatSink.Tests;

/// <summary><c>Legate:StatSink:*</c> is validated at start: a bad value stops the service with a message naming the key.</summary>
public sealed class OptionsTests
{
    [Theory]
    [InlineData("Legate:StatSink:CounterMode", "deltas", "Legate:StatSink:CounterMode must be 'cumulative' or 'delta'")]
    [InlineData("Legate:StatSink:NodeIdLabel", "", "Legate:StatSink:NodeIdLabel")]
    [InlineData("Legate:StatSink:NodeClusterLabel", "node-cluster", "Legate:StatSink:NodeClusterLabel")]
    // Histogram buckets and summary quantiles carry these themselves: a second one makes Prometheus refuse the scrape.
    [InlineData("Legate:StatSink:NodeIdLabel", "le", "Legate:StatSink:NodeIdLabel 'le' is written by histograms")]
    [InlineData("Legate:StatSink:NodeClusterLabel", "quantile", "Legate:StatSink:NodeClusterLabel 'quantile' is written by")]
    [InlineData("Legate:StatSink:SeriesTtl", "00:00:00", "Legate:StatSink:SeriesTtl")]
    [InlineData("Legate:StatSink:MaxSeries", "0", "Legate:StatSink:MaxSeries")]
    [InlineData("Legate:StatSink:MaxSeriesLength", "100", "Legate:StatSink:MaxSeriesLength must be at least 256")]
    [InlineData("Legate:StatSink:DogStatsd:Port", "0", "Legate:StatSink:DogStatsd:Port")]
    public void BadSetting_StopsTheStart_NamingTheKey(string key, string value, string message)
    {
        var settings = new Dictionary<string, string?> { [key] = value };
        if (key.Contains("DogStatsd", StringComparison.Ordinal))
            settings["Legate:StatSink:DogStatsd:Enabled"] = "true";
        using var service = new LegateServiceFactory<Program>(settings);

        var error = Assert.IsType<OptionsValidationException>(service.StartFailure());
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_AreValid()
    {
        var result = new StatSinkOptionsValidator().Validate(null, new StatSinkOptions());
        Assert.True(result.Succeeded, result.FailureMessage);
    }
}
