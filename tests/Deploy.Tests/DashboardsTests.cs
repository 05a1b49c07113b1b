using System.Text.Json;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>The Grafana dashboards in deploy/grafana/dashboards, as compose provisions them and the chart ships them.</summary>
public sealed class DashboardsTests
{
    private static readonly string Folder = Path.Combine(RepoPaths.Root, "deploy", "grafana", "dashboards");
    private static readonly string[] AllowedUids = ["${datasource}", "prometheus"];

    private static string[] Files() => Directory.GetFiles(Folder, "*.json").Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void Dashboards_ParseWithUniqueUids_AndUseOnlyTheProvisionedPrometheus()
    {
        var files = Files();
        Assert.Equal(2, files.Length);
        var uids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            using var dashboard = JsonDocument.Parse(File.ReadAllText(file));
            Assert.True(uids.Add(dashboard.RootElement.GetProperty("uid").GetString()!), $"{file}: duplicate uid");
            foreach (var datasource in DataSources(dashboard.RootElement))
            {
                Assert.Equal("prometheus", datasource.GetProperty("type").GetString());
                // The dashboard's own data source variable, or the uid the compose provisioning gives Prometheus.
                Assert.Contains(datasource.GetProperty("uid").GetString(), AllowedUids);
            }
        }
    }

    [Fact]
    public async Task Chart_ShipsTheSameDashboardsForGrafanasSidecar()
    {
        var chart = await HelmChart.TemplateAsync("hpa-servicemonitor.yaml");

        var configMaps = chart.OfKind("ConfigMap").Where(c => c.Str("metadata", "labels", "grafana_dashboard") == "1").ToList();
        Assert.Equal(Files().Length, configMaps.Count);
        foreach (var file in Files())
        {
            var configMap = configMaps.Single(c => c.At("data", Path.GetFileName(file)) is not null);
            Assert.Equal(File.ReadAllText(file), configMap.Str("data", Path.GetFileName(file)));
            Assert.Equal("monitoring", configMap.Str("metadata", "namespace"));
        }
        Assert.DoesNotContain((await HelmChart.TemplateAsync("inline-gateway.yaml")).OfKind("ConfigMap"), c => c.At("metadata", "labels", "grafana_dashboard") is not null);
    }

    private static IEnumerable<JsonElement> DataSources(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in element.EnumerateObject())
            {
                if (property.Name == "datasource" && property.Value.ValueKind == JsonValueKind.Object)
                    yield return property.Value;
                foreach (var inner in DataSources(property.Value))
                    yield return inner;
            }
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray())
            {
                foreach (var inner in DataSources(item))
                    yield return inner;
            }
        }
    }
}
