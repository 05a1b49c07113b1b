using System.Text.Json;
using System.Text.RegularExpressions;
using Legate.Testing;

namespace Legate.StatSink.Tests;

/// <summary>
/// The Grafana dashboards in <c>deploy/grafana/dashboards/</c> parse, and every metric their queries name exists: Envoy
/// names as statsink serves them for a realistic flush, Legate names as the services register them; and the README
/// names exactly the <c>legate_*</c> metrics the services register.
/// </summary>
public sealed partial class DashboardTests
{
    private static readonly string Folder = Path.Combine(RepoPaths.Root, "deploy", "grafana", "dashboards");

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)")]
    private static partial Regex LabelsAndRanges();

    [GeneratedRegex(@"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"\b(?:envoy|legate|grpc|process|dotnet)_[a-zA-Z0-9_:]*")]
    private static partial Regex MetricName();

    [GeneratedRegex("Create(Counter|Gauge|Histogram|Summary)\\(\\s*\"([a-z_:][a-z0-9_:]*)\"")]
    private static partial Regex Registration();

    [Fact]
    public async Task EnvoyFleet_EveryQueryNamesAMetricStatSinkServes()
    {
        var (queries, panels) = Load("envoy-fleet.json");
        Assert.True(panels >= 12, $"only {panels} panels");

        using var sink = new StatSinkHarness();
        var envoy = new EnvoyFlushGenerator("e1") { HistogramMode = HistogramEmitMode.Histogram };
        var c = ("envoy.cluster_name", "backend");
        var hcm = ("envoy.http_conn_manager_prefix", "ingress_http");
        envoy.Request("backend", 503, 12);
        envoy.Count("http.downstream_rq_total", 1, hcm);
        envoy.Count("http.downstream_rq_xx", 1, ("envoy.response_code_class", "5"), hcm);
        envoy.Record("http.downstream_rq_time", 14, hcm);
        envoy.Set("http.downstream_cx_active", 1, hcm);
        envoy.Set("http.downstream_rq_active", 1, hcm);
        foreach (var counter in new[] { "cluster.upstream_cx_connect_fail", "cluster.upstream_rq_timeout", "cluster.upstream_rq_retry" })
            envoy.Count(counter, 1, c);
        foreach (var gauge in new[] { "cluster.membership_healthy", "cluster.membership_total", "cluster.upstream_cx_active" })
            envoy.Set(gauge, 1, c);
        foreach (var gauge in new[] { "server.live", "server.uptime", "server.memory_allocated" })
            envoy.Set(gauge, 1);
        await sink.SendFlushAsync(envoy);
        var served = (await sink.ScrapeAsync()).Samples.Keys.Select(k => k.Split('{')[0]).ToHashSet(StringComparer.Ordinal);

        AssertAllKnown(queries, served);
        Assert.Contains(queries, q => q.Contains("envoy_node_id", StringComparison.Ordinal));
    }

    [Fact]
    public async Task LegateServices_EveryQueryNamesARegisteredMetric()
    {
        var (queries, panels) = Load("legate-services.json");
        Assert.True(panels >= 15, $"only {panels} panels");

        // statsink's own /metrics (gRPC and process series included), and every name the services' sources register.
        using var sink = new StatSinkHarness();
        await sink.SendFlushAsync(new EnvoyFlushGenerator("e1"));
        var known = (await sink.ScrapeAsync()).Samples.Keys.Select(k => k.Split('{')[0]).ToHashSet(StringComparer.Ordinal);
        // The process series every service's default registry carries.
        var process = Prometheus.Metrics.NewCustomRegistry();
        Prometheus.DotNetStats.Register(process);
        known.UnionWith(Scrape.Parse(process.Scrape()).Samples.Keys.Select(k => k.Split('{')[0]));
        known.UnionWith(RegisteredNames());
        Assert.Contains("legate_authz_decisions_total", known);
        Assert.Contains("legate_ratelimit_over_limit_total", known);

        AssertAllKnown(queries, known);
    }

    [Fact]
    public void Readme_NamesEveryLegateMetricTheServicesRegister_AndNoOther()
    {
        var registered = RegisteredNames().Where(n => n.StartsWith("legate_", StringComparison.Ordinal) && !n.EndsWith("_bucket", StringComparison.Ordinal)
            && !n.EndsWith("_sum", StringComparison.Ordinal) && !n.EndsWith("_count", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var documented = ReadmeMetricNames(File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"))).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("legate_authz_decisions_total", registered);
        Assert.Contains("legate_ratelimit_over_limit_with_local_cache_total", documented);

        var undocumented = registered.Except(documented).Order(StringComparer.Ordinal).ToList();
        var unregistered = documented.Except(registered).Order(StringComparer.Ordinal).ToList();
        Assert.True(undocumented.Count == 0, $"Registered but not in the README: {string.Join(", ", undocumented)}");
        Assert.True(unregistered.Count == 0, $"In the README but registered nowhere: {string.Join(", ", unregistered)}");
    }

    [Fact]
    public void ReadmeMetricNames_ExpandAlternativesAndDropLabels()
    {
        Assert.Equal(["legate_a_x_total", "legate_a_y_total", "legate_b", "legate_c_total"],
            ReadmeMetricNames("`legate_a_{x,y}_total{domain,rule}`, `legate_b`, `legate_c_total{r=\"a\"|\"b\"}` and `legate_d_*`").Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// The metric names a README names in code spans: <c>{a,b}</c> right after an underscore lists alternatives
    /// (<c>legate_x_{a,b}_total</c>), a brace after the name is its labels; prefixes (<c>legate_statsink_*</c>) are no names.
    /// </summary>
    internal static IEnumerable<string> ReadmeMetricNames(string markdown)
    {
        foreach (Match span in ReadmeMetricSpan().Matches(markdown))
        {
            var text = span.Groups[1].Value;
            var labels = -1;
            for (var i = 1; i < text.Length && labels < 0; i++)
            {
                if (text[i] == '{' && text[i - 1] != '_')
                    labels = i;
            }
            var name = labels < 0 ? text : text[..labels];
            if (name.EndsWith('*') || name.EndsWith('_'))
                continue;
            var names = new List<string> { name };
            while (names[0].IndexOf('{', StringComparison.Ordinal) is var open and >= 0)
            {
                var close = names[0].IndexOf('}', open);
                names = names.SelectMany(n => n[(open + 1)..close].Split(',').Select(a => n[..open] + a + n[(close + 1)..])).ToList();
            }
            foreach (var n in names)
                yield return n;
        }
    }

    [GeneratedRegex("`(legate_[^`\\s]*)`")]
    private static partial Regex ReadmeMetricSpan();

    /// <summary>Every metric name the services' sources register (a histogram's or summary's with its series suffixes).</summary>
    private static HashSet<string> RegisteredNames()
    {
        var known = new HashSet<string>(StringComparer.Ordinal);
        foreach (var folder in new[] { "hosting", "authz", "ratelimit", "statsink" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, folder), "*.cs", SearchOption.AllDirectories))
            {
                if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                    continue;
                foreach (Match m in Registration().Matches(File.ReadAllText(file)))
                {
                    var name = m.Groups[2].Value;
                    known.Add(name);
                    if (m.Groups[1].Value is "Histogram" or "Summary")
                        known.UnionWith([name + "_bucket", name + "_sum", name + "_count"]);
                }
            }
        }
        return known;
    }

    private static void AssertAllKnown(List<string> queries, HashSet<string> known)
    {
        var names = queries.SelectMany(MetricNames).Distinct().ToList();
        Assert.NotEmpty(names);
        var missing = names.Where(n => !known.Contains(n)).ToList();
        Assert.True(missing.Count == 0, $"Dashboard metrics not served: {string.Join(", ", missing)}");
    }

    internal static IEnumerable<string> MetricNames(string query)
    {
        var text = StringLiteral().Replace(query, "");
        text = LabelsAndRanges().Replace(text, " ");
        text = LabelValues().Replace(text, "$1");
        return MetricName().Matches(text).Select(m => m.Value);
    }

    [Fact]
    public void MetricNames_SkipLabelsRangesAndGroupings()
    {
        Assert.Equal(["envoy_a_bucket", "envoy_b"], MetricNames("histogram_quantile(0.9, sum by (le, envoy_cluster_name) (rate(envoy_a_bucket{envoy_node_id=~\"$node\"}[$__rate_interval]))) / envoy_b"));
        Assert.Equal(["envoy_server_live"], MetricNames("label_values(envoy_server_live, envoy_node_id)"));
        Assert.Equal(["envoy_server_live"], MetricNames("label_values(envoy_server_live{envoy_node_cluster=~\"$c\"}, envoy_node_id)"));
    }

    /// <summary>Every query of a dashboard (panel targets and template variables) and its number of panels with targets.</summary>
    private static (List<string> Queries, int Panels) Load(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, file)));
        var root = doc.RootElement;
        Assert.False(string.IsNullOrEmpty(root.GetProperty("uid").GetString()));
        Assert.False(string.IsNullOrEmpty(root.GetProperty("title").GetString()));
        var queries = new List<string>();
        var ids = new HashSet<int>();
        var panels = 0;
        foreach (var panel in root.GetProperty("panels").EnumerateArray())
        {
            Assert.True(ids.Add(panel.GetProperty("id").GetInt32()), "duplicate panel id");
            if (!panel.TryGetProperty("targets", out var targets))
                continue;
            panels++;
            foreach (var target in targets.EnumerateArray())
            {
                var expr = target.GetProperty("expr").GetString();
                Assert.False(string.IsNullOrWhiteSpace(expr));
                queries.Add(expr!);
            }
        }
        foreach (var variable in root.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.TryGetProperty("definition", out var definition))
                queries.Add(definition.GetString()!);
        }
        return (queries, panels);
    }
}
