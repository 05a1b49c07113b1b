using System.Diagnostics;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Envoy.Config.Core.V3;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Auth.V3;
using Envoy.Service.Metrics.V3;
using Envoy.Service.Ratelimit.V3;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Io.Prometheus.Client;
using Legate.Gateway.Up;
using Legate.Testing;
using YamlDotNet.RepresentationModel;
using AuthorizationClient = Envoy.Service.Auth.V3.Authorization.AuthorizationClient;
using MetricsClient = Envoy.Service.Metrics.V3.MetricsService.MetricsServiceClient;
using RateLimitClient = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceClient;

namespace Legate.Gateway.Tests.Up;

/// <summary>
/// <c>legate up</c> with the bundled sample: the three services answer real calls on the rendered configuration, the
/// printed Envoy command names a bootstrap pointing at the ports they listen on, and stopping stops all three.
/// </summary>
public sealed partial class LegateUpTests : IDisposable
{
    // The sample's demo key (deploy/examples/keys.yaml, "not a secret"): tenant acme, client demo-client.
    private const string DemoKey = "lgt_aS6L5CMAXtFg_hbIlGbLThBf1AxDFNAgKvWC9eTJSsKV5vwS1bpG1igq_0YnQsX";

    private readonly TempDir _out = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _out.Dispose();

    [Fact]
    public async Task Sample_ServicesAnswerRealCalls_AndEnvoyPointsAtTheirPorts()
    {
        var gateway = await LocalGateway.StartAsync(null, _out.Path, freePorts: true, Ct);
        IReadOnlyList<RunningService> services;
        await using (gateway)
        {
            services = gateway.Services;
            Assert.Equal(["authz", "ratelimit", "statsink"], services.Select(s => s.Name));
            Assert.Equal(6, services.SelectMany(s => new[] { s.Grpc.Port, s.Http.Port }).Distinct().Count());
            using var authz = GrpcChannel.ForAddress(services[0].Grpc);
            using var ratelimit = GrpcChannel.ForAddress(services[1].Grpc);
            using var statsink = GrpcChannel.ForAddress(services[2].Grpc);
            foreach (var channel in new[] { authz, ratelimit, statsink })
                Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), cancellationToken: Ct)).Status);

            // authz on the rendered policies and the sample's key file: the demo key passes the default policy,
            // no credential does not, and the anonymous `public` policy lets it through.
            var check = new AuthorizationClient(authz);
            Assert.Equal(0, (await check.CheckAsync(CheckRequest("default", DemoKey), cancellationToken: Ct)).Status.Code);
            Assert.NotEqual(0, (await check.CheckAsync(CheckRequest("default", null), cancellationToken: Ct)).Status.Code);
            Assert.Equal(0, (await check.CheckAsync(CheckRequest("public", null), cancellationToken: Ct)).Status.Code);

            // ratelimit in the rendered domain: the health route's 10 a second per source address; 11 at once are over.
            var limits = new RateLimitClient(ratelimit);
            for (var i = 0; i < 10; i++)
                Assert.Equal(RateLimitResponse.Types.Code.Ok, (await limits.ShouldRateLimitAsync(RateLimitRequest("route", "health", "remote_address", "10.0.0.7"), cancellationToken: Ct)).OverallCode);
            var burst = (await limits.ShouldRateLimitAsync(new RateLimitRequest
            {
                Domain = "edge",
                HitsAddend = 11,
                Descriptors = { Descriptor("route", "health", "remote_address", "10.0.0.8") },
            }, cancellationToken: Ct)).OverallCode;
            Assert.Equal(RateLimitResponse.Types.Code.OverLimit, burst);

            // statsink accepts Envoy's metrics stream and exposes it on its own /metrics.
            using (var call = new MetricsClient(statsink).StreamMetrics(cancellationToken: Ct))
            {
                await call.RequestStream.WriteAsync(new StreamMetricsMessage
                {
                    Identifier = new StreamMetricsMessage.Types.Identifier { Node = new Node { Id = "envoy-up", Cluster = "edge" } },
                    EnvoyMetrics = { new MetricFamily { Name = "cluster.orders.upstream_rq_total", Type = MetricType.Counter, Metric = { new Metric { Counter = new Counter { Value = 7 } } } } },
                }, Ct);
                await call.RequestStream.CompleteAsync();
                await call.ResponseAsync;
            }
            using var http = new HttpClient();
            var statsinkMetrics = await http.GetStringAsync(new Uri(services[2].Http, "/metrics"), Ct);
            Assert.Contains("legate_statsink_streams_total 1", statsinkMetrics, StringComparison.Ordinal);
            Assert.Contains("upstream_rq_total", statsinkMetrics, StringComparison.Ordinal);
            // Each service has its own registry: authz's /metrics has authz's series and none of the others'.
            var authzMetrics = await http.GetStringAsync(new Uri(services[0].Http, "/metrics"), Ct);
            Assert.Contains("legate_authz_", authzMetrics, StringComparison.Ordinal);
            Assert.DoesNotContain("legate_statsink_", authzMetrics, StringComparison.Ordinal);
            Assert.DoesNotContain("legate_ratelimit_", authzMetrics, StringComparison.Ordinal);

            // The printed command names the rendered bootstrap, whose service clusters are the printed ports.
            var printed = UpCommand.Describe(gateway, null);
            var command = EnvoyCommand().Match(printed);
            Assert.True(command.Success, printed);
            var bootstrap = command.Groups[1].Value;
            Assert.Equal(Path.Combine(_out.Path, "envoy", "envoy.yaml"), bootstrap);
            var clusters = ServiceClusters(bootstrap);
            foreach (var service in services)
            {
                Assert.Contains($"{service.Name,-11} {service.Grpc.Authority}", printed, StringComparison.Ordinal);
                Assert.Equal(("127.0.0.1", service.Grpc.Port), clusters["legate_" + service.Name]);
            }
            // The sample's backends are the echo server, which answers with what it received.
            var echo = gateway.Echo;
            Assert.NotNull(echo);
            Assert.Contains(echo.Address.ToString(), printed, StringComparison.Ordinal);
            var cds = File.ReadAllText(Path.Combine(_out.Path, "envoy", "dynamic", "cds.yaml"));
            Assert.DoesNotContain("address: upstream", cds, StringComparison.Ordinal);
            Assert.NotEqual(0, Regex.Count(cds, "socket_address:"));
            Assert.Equal(Regex.Count(cds, "socket_address:"), Regex.Count(cds, $"address: 127.0.0.1\\s+port_value: {echo.Port}\\n"));
            using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri(echo.Address, "/orders/7?view=full")))
            {
                request.Headers.Add("x-legate-tenant", "acme");
                using var response = await http.SendAsync(request, Ct);
                response.EnsureSuccessStatusCode();
                using var echoed = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
                Assert.Equal("POST", echoed.RootElement.GetProperty("method").GetString());
                Assert.Equal("/orders/7?view=full", echoed.RootElement.GetProperty("path").GetString());
                Assert.Equal("acme", echoed.RootElement.GetProperty("headers").GetProperty("x-legate-tenant").GetString());
            }

            // Its dynamic resources are read from the rendered folder itself, so the command works as printed.
            Assert.Contains($"path: {Path.Combine(_out.Path, "envoy", "dynamic", "lds.yaml")}", File.ReadAllText(bootstrap), StringComparison.Ordinal);

            if (SharedTools.EnvoyCheckTool("envoy-check") is { } tool)
            {
                var (code, output) = await SharedTools.RunAsync(tool, bootstrap);
                Assert.True(code == 0, output);
                Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
            }
        }

        // Stopped: nothing listens on any of the six ports, nor on the echo server's, any more.
        foreach (var port in services.SelectMany(s => new[] { s.Grpc.Port, s.Http.Port }).Append(gateway.Echo!.Port))
            Assert.False(await IsListeningAsync(port), $"port {port} still listens after stop");
    }

    [Fact]
    public async Task AsAProcess_SigtermStopsAllThreeServicesAndTheEchoServer_AndExitsZero()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "SIGTERM needs a Unix system");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { RepoPaths.ServiceAssembly("gateway", "legate"), "up", "--free-ports", "-o", _out.Path })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync(Ct);
        try
        {
            // Read what it prints up to "Press Ctrl+C": the table of ports.
            var printed = new System.Text.StringBuilder();
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct))
            {
                timeout.CancelAfter(TimeSpan.FromSeconds(90));
                while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
                {
                    printed.AppendLine(line);
                    if (line.StartsWith("Press Ctrl+C", StringComparison.Ordinal))
                        break;
                }
            }
            var rows = ServiceRow().Matches(printed.ToString());
            Assert.True(rows.Count == 3, printed + await ReadIfExited(process, stderr));
            var httpPorts = rows.Select(r => int.Parse(r.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            var grpcPorts = rows.Select(r => int.Parse(r.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            var echo = Regex.Match(printed.ToString(), @"echo server at http://127\.0\.0\.1:(\d+)/");
            Assert.True(echo.Success, printed.ToString());
            var echoPort = int.Parse(echo.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            using var http = new HttpClient();
            foreach (var port in httpPorts.Append(echoPort))
                Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/readyz"), Ct)).StatusCode);

            Assert.True(UnixSignals.Send(process.Id, UnixSignals.Term));
            var rest = await process.StandardOutput.ReadToEndAsync(Ct);
            await process.WaitForExitAsync(Ct).WaitAsync(TimeSpan.FromSeconds(60), Ct);
            Assert.True(process.ExitCode == 0, rest + await stderr);
            Assert.Contains("Stopping", rest, StringComparison.Ordinal);
            foreach (var port in grpcPorts.Concat(httpPorts).Append(echoPort))
                Assert.False(await IsListeningAsync(port), $"port {port} still listens after SIGTERM");
        }
        finally
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task ServicesTls_IsLeftOutOfTheLocalEnvoyConfig_AndUpSaysSo()
    {
        // The embedded services listen in h2c on loopback: an Envoy calling them over TLS would get nothing.
        var file = _out.File("tls-gateway.yaml");
        File.WriteAllText(file, ServiceTlsTests.ServicesTls);
        var gateway = await LocalGateway.StartAsync(file, _out.File("out"), freePorts: true, Ct);
        await using (gateway)
        {
            Assert.True(gateway.ServicesTlsDropped);
            Assert.Contains("services.tls is not used here", UpCommand.Describe(gateway, file), StringComparison.Ordinal);
            Assert.DoesNotContain("UpstreamTlsContext", File.ReadAllText(gateway.EnvoyBootstrap), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void InvalidGatewayFile_ExitsOneAndStartsNothing()
    {
        var file = _out.File("bad.yaml");
        File.WriteAllText(file, "routes: [{ name: x, backend: nowhere }]\n");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.Equal(Cli.Invalid, Cli.Run(["up", file, "-o", _out.File("out")], stdout, stderr));
        Assert.Contains("nothing was started", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("Legate is up", stdout.ToString(), StringComparison.Ordinal);
    }

    private static async Task<string> ReadIfExited(Process process, Task<string> stderr) =>
        process.HasExited ? await stderr : "";

    private static async Task<bool> IsListeningAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync("127.0.0.1", port, Ct);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static CheckRequest CheckRequest(string policy, string? apiKey)
    {
        var http = new AttributeContext.Types.HttpRequest { Method = "GET", Path = "/orders", Host = "api.acme.example" };
        http.Headers[":authority"] = "api.acme.example";
        http.Headers[":method"] = "GET";
        http.Headers[":path"] = "/orders";
        if (apiKey is not null)
            http.Headers["x-api-key"] = apiKey;
        var attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } };
        attributes.ContextExtensions["policy"] = policy;
        return new CheckRequest { Attributes = attributes };
    }

    private static RateLimitRequest RateLimitRequest(params string[] keyValues) =>
        new() { Domain = "edge", Descriptors = { Descriptor(keyValues) } };

    private static RateLimitDescriptor Descriptor(params string[] keyValues)
    {
        var descriptor = new RateLimitDescriptor();
        for (var i = 0; i < keyValues.Length; i += 2)
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = keyValues[i], Value = keyValues[i + 1] });
        return descriptor;
    }

    /// <summary>The socket address of each static cluster in a bootstrap.</summary>
    private static Dictionary<string, (string Address, int Port)> ServiceClusters(string bootstrap)
    {
        var yaml = new YamlStream();
        using (var reader = File.OpenText(bootstrap))
            yaml.Load(reader);
        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        var clusters = (YamlSequenceNode)((YamlMappingNode)root["static_resources"])["clusters"];
        return clusters.Cast<YamlMappingNode>().ToDictionary(
            c => c["name"].ToString(),
            c =>
            {
                var endpoints = (YamlSequenceNode)((YamlMappingNode)c["load_assignment"])["endpoints"];
                var lb = (YamlSequenceNode)((YamlMappingNode)endpoints[0])["lb_endpoints"];
                var socket = (YamlMappingNode)((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)lb[0])["endpoint"])["address"])["socket_address"];
                return (socket["address"].ToString(), int.Parse(socket["port_value"].ToString(), System.Globalization.CultureInfo.InvariantCulture));
            });
    }

    [GeneratedRegex(@"^  envoy -c (\S+)$", RegexOptions.Multiline)]
    private static partial Regex EnvoyCommand();

    [GeneratedRegex(@"^  (authz|ratelimit|statsink)\s+127\.0\.0\.1:(\d+)\s+http://127\.0\.0\.1:(\d+)/$", RegexOptions.Multiline)]
    private static partial Regex ServiceRow();
}
