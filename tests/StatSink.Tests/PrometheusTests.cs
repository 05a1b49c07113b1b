using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Legate.Testing;
using MetricsClient = Envoy.Service.Metrics.V3.MetricsService.MetricsServiceClient;

namespace Legate.StatSink.Tests;

/// <summary>
/// A real Prometheus (Debian package <c>prometheus</c>) scrapes a real statsink process every second; the test asks
/// Prometheus' HTTP API for what it stored, and <c>promtool check metrics</c> reads the exposition. Without the
/// binaries the tests skip, unless <c>LEGATE_REQUIRE_REDIS=1</c> (CI), which makes them fail.
/// </summary>
public sealed class PrometheusTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string? Find(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(dir => Path.Combine(dir, program)).FirstOrDefault(File.Exists);

    private static string Require(string program)
    {
        if (Find(program) is { } path)
            return path;
        var message = $"{program} is not installed (Debian package 'prometheus'); ./test.sh and .ci/run install it.";
        if (Environment.GetEnvironmentVariable("LEGATE_REQUIRE_REDIS") == "1")
            Assert.Fail(message);
        Assert.Skip(message);
        return "";
    }

    [Fact]
    public async Task Prometheus_ScrapesStatSink_ValuesRatesAndQuantiles()
    {
        var prometheusPath = Require("prometheus");
        await using var statsink = ServiceProcess.Start(RepoPaths.ServiceAssembly("statsink", "legate-statsink"));
        await statsink.WaitUntilReadyAsync();
        await using var prometheus = await PrometheusServer.StartAsync(prometheusPath, statsink.HttpPort);

        var envoy = new EnvoyFlushGenerator("prom-envoy") { HistogramMode = HistogramEmitMode.SummaryAndHistogram };
        var client = new MetricsClient(statsink.Channel);
        using var call = client.StreamMetrics(cancellationToken: Ct);
        for (var i = 0; i < 10; i++)
            envoy.Request("backend", 200, 30);
        await call.RequestStream.WriteAsync(envoy.Flush(), Ct);

        const string Rq = "envoy_cluster_upstream_rq_total{envoy_node_id=\"prom-envoy\",envoy_cluster_name=\"backend\"}";
        Assert.Equal(10, await prometheus.WaitForValueAsync(Rq, v => v == 10));
        Assert.Equal(1, await prometheus.WaitForValueAsync("up{job=\"statsink\"}", v => v == 1));

        for (var i = 0; i < 90; i++)
            envoy.Request("backend", 200, 30);
        await call.RequestStream.WriteAsync(envoy.Flush(), Ct);
        Assert.Equal(100, await prometheus.WaitForValueAsync(Rq, v => v == 100));

        // 90 more requests within the window: Prometheus sees a rising counter (its extrapolation makes the exact rate vary).
        var rate = await prometheus.WaitForValueAsync($"rate({Rq}[20s])", v => v > 0);
        Assert.True(rate > 0);
        // All samples at 30 ms: the median falls in Envoy's (25, 50] bucket.
        var median = await prometheus.WaitForValueAsync(
            "histogram_quantile(0.5, sum by (le) (envoy_cluster_upstream_rq_time_bucket{envoy_node_id=\"prom-envoy\"}))", v => !double.IsNaN(v));
        Assert.InRange(median, 25, 50);
        Assert.Equal(100, await prometheus.WaitForValueAsync("sum(envoy_cluster_upstream_rq_time_count{envoy_node_id=\"prom-envoy\"})", v => v == 100));
        Assert.Equal(30, await prometheus.WaitForValueAsync("envoy_cluster_upstream_rq_time_quantiles{envoy_node_id=\"prom-envoy\",quantile=\"0.5\"}", v => v == 30));
        Assert.Equal(1, await prometheus.WaitForValueAsync("legate_statsink_streams_active", v => v == 1));

        // An idle interval (NaN quantiles) and a label value needing escapes: Prometheus still parses every scrape.
        envoy.Set("cluster.upstream_cx_active", 2, ("envoy.cluster_name", "we\"ird\\name"));
        await call.RequestStream.WriteAsync(envoy.Flush(), Ct);
        Assert.Equal(2, await prometheus.WaitForValueAsync("envoy_cluster_upstream_cx_active{envoy_cluster_name=\"we\\\"ird\\\\name\"}", v => v == 2));
        Assert.True(double.IsNaN(await prometheus.WaitForValueAsync(
            "envoy_cluster_upstream_rq_time_quantiles{envoy_node_id=\"prom-envoy\",quantile=\"0.99\"}", double.IsNaN)));
        Assert.Equal(1, await prometheus.WaitForValueAsync("up{job=\"statsink\"}", v => v == 1));

        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;
    }

    [Fact]
    public async Task Promtool_AcceptsTheExposition()
    {
        var promtool = Require("promtool");
        using var sink = new StatSinkHarness();
        var envoy = new EnvoyFlushGenerator("lint");
        envoy.Request("backend", 200, 3);
        envoy.Request("backend", 503, 700);
        envoy.Set("cluster.upstream_cx_active", 1, ("envoy.cluster_name", "backend"));
        envoy.Count("http.downstream_rq_xx", 2, ("envoy.response_code_class", "2"), ("envoy.http_conn_manager_prefix", "in\"gress\\"));
        await sink.SendFlushAsync(envoy);
        await sink.SendFlushAsync(envoy);
        var text = await sink.ScrapeTextAsync();

        var start = new ProcessStartInfo(promtool) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("check");
        start.ArgumentList.Add("metrics");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(Ct);
        var stderr = process.StandardError.ReadToEndAsync(Ct);
        await process.StandardInput.WriteAsync(text);
        process.StandardInput.Close();
        await process.WaitForExitAsync(Ct).WaitAsync(TimeSpan.FromMinutes(1), Ct);
        var output = await stdout + await stderr;

        // Exit 3 means lint findings only; Envoy's own names draw some (no HELP, counters without _total, "_ms").
        Assert.True(process.ExitCode is 0 or 3, $"promtool exit {process.ExitCode}:\n{output}");
        Assert.DoesNotContain("error while linting", output, StringComparison.Ordinal);
        var lints = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lints, l => Assert.Matches("no help text|should have \"_total\" suffix|abbreviated units|non-histogram and non-summary metrics should not have \"_sum\" suffix", l));
    }

    /// <summary>A Prometheus server on a free 127.0.0.1 port, scraping statsink every second, storing into a temporary folder.</summary>
    private sealed class PrometheusServer : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _folder;
        private readonly HttpClient _http;
        private readonly List<string> _output = [];

        private PrometheusServer(Process process, string folder, int port)
        {
            _process = process;
            _folder = folder;
            _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            process.OutputDataReceived += (_, e) => Add(e.Data);
            process.ErrorDataReceived += (_, e) => Add(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        private void Add(string? line)
        {
            if (line is null)
                return;
            lock (_output)
                _output.Add(line);
        }

        private string Output
        {
            get
            {
                lock (_output)
                    return string.Join('\n', _output.TakeLast(40));
            }
        }

        public static async Task<PrometheusServer> StartAsync(string path, int statsinkPort)
        {
            var folder = Directory.CreateTempSubdirectory("legate-prometheus-").FullName;
            var port = FreePort.Next();
            var config = Path.Combine(folder, "prometheus.yml");
            await File.WriteAllTextAsync(config, $"""
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: statsink
                    static_configs:
                      - targets: ['127.0.0.1:{statsinkPort}']
                """, Ct);
            var start = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = folder };
            foreach (var arg in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(folder, "data")}", $"--web.listen-address=127.0.0.1:{port}" })
                start.ArgumentList.Add(arg);
            var server = new PrometheusServer(Process.Start(start)!, folder, port);
            for (var i = 0; i < 300; i++)
            {
                if (server._process.HasExited)
                    break;
                try
                {
                    using var ready = await server._http.GetAsync(new Uri("/-/ready", UriKind.Relative), Ct);
                    if (ready.IsSuccessStatusCode)
                        return server;
                }
                catch (HttpRequestException)
                {
                }
                await Task.Delay(100, Ct);
            }
            var output = server.Output;
            await server.DisposeAsync();
            throw new InvalidOperationException($"Prometheus did not become ready:\n{output}");
        }

        /// <summary>Queries until the single result satisfies <paramref name="done"/> (bounded: 300 tries, 100 ms apart); returns the last value.</summary>
        public async Task<double> WaitForValueAsync(string query, Func<double, bool> done)
        {
            var last = double.NaN;
            for (var i = 0; i < 300; i++)
            {
                var json = await _http.GetStringAsync(new Uri("/api/v1/query?query=" + Uri.EscapeDataString(query), UriKind.Relative), Ct);
                using var doc = JsonDocument.Parse(json);
                var result = doc.RootElement.GetProperty("data").GetProperty("result");
                if (result.GetArrayLength() == 1)
                {
                    last = double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
                    if (done(last))
                        return last;
                }
                await Task.Delay(100, Ct);
            }
            Assert.Fail($"Prometheus query {query} ended at {last}\n{Output}");
            return last;
        }

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
