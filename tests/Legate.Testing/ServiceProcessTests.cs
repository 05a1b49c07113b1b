using System.Net;
using Grpc.Health.V1;
using Xunit;

namespace Legate.Testing;

/// <summary>
/// What every Legate service must do as a real process, as an operator runs it. Each service's test project
/// derives a class from this with its name, so the same promises are checked for every service.
/// </summary>
public abstract class ServiceProcessTests(string folder, string assemblyName, string serviceName, string grpcServiceName)
{
    private string Assembly => RepoPaths.ServiceAssembly(folder, assemblyName);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Process_AnswersGrpcHealthForItsNames()
    {
        await using var service = ServiceProcess.Start(Assembly);
        await service.WaitUntilReadyAsync();
        var health = new Health.HealthClient(service.Channel);

        foreach (var name in new[] { "", serviceName, grpcServiceName })
        {
            var reply = await health.CheckAsync(new HealthCheckRequest { Service = name }, cancellationToken: Ct);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
        }
    }

    [Fact]
    public async Task Process_ServesPrometheusMetrics()
    {
        await using var service = ServiceProcess.Start(Assembly);
        await service.WaitUntilReadyAsync();
        using var client = new HttpClient();

        using var response = await client.GetAsync(new Uri(service.HttpAddress, "/metrics"), Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.Contains("process_cpu_seconds_total", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthcheckMode_ExitsZeroWhileTheServiceIsReady()
    {
        await using var service = ServiceProcess.Start(Assembly);
        await service.WaitUntilReadyAsync();

        Assert.Equal(0, await service.RunHealthCheckAsync(Assembly));
    }

    [Fact]
    public async Task Sigterm_DrainsThenExitsCleanly()
    {
        await using var service = ServiceProcess.Start(Assembly, drainDelay: TimeSpan.FromMilliseconds(300));
        await service.WaitUntilReadyAsync();

        service.Terminate();
        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, exitCode);
        Assert.Contains($"{serviceName} stopping: not ready", service.Output, StringComparison.Ordinal);
        Assert.Contains($"{serviceName} stopped", service.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task JsonLogs_NameEachEvent()
    {
        await using var service = ServiceProcess.Start(Assembly, ["--Legate:LogFormat=json"]);
        await service.WaitUntilReadyAsync();
        service.Terminate();
        Assert.Equal(0, await service.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        // The README names events (StartRefused, RulesReloadFailed, ...): each JSON line of one of Legate's own carries
        // that name beside its id, which is all .NET's JSON formatter writes.
        var lines = service.Output.Split('\n').Where(l => l.StartsWith('{')).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        foreach (var name in new[] { "Listening", "Draining", "Stopped" })
        {
            Assert.Contains(lines, l => l.TryGetProperty("EventName", out var n) && n.GetString() == name
                && l.GetProperty("Category").GetString() == "Legate.Hosting.Health.GracefulShutdown");
        }
    }

    [Fact]
    public async Task BadOptions_StopStartUpWithTheKeyNamed()
    {
        await using var service = ServiceProcess.Start(Assembly, ["--Legate:MaxReceiveMessageSize=10"]);

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

        AssertStartRefused(service, exitCode, "Legate:MaxReceiveMessageSize must be at least 1024 bytes");
    }

    [Fact]
    public async Task AnOptionThatIsNotANumber_StopsStartUpWithTheKeyNamed()
    {
        await using var service = ServiceProcess.Start(Assembly, ["--Legate:MaxStreamsPerConnection=many"]);

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

        AssertStartRefused(service, exitCode, "'many' at 'Legate:MaxStreamsPerConnection'");
    }

    [Fact]
    public async Task APortInUse_StopsStartUpWithTheAddressNamed()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        await using var service = ServiceProcess.Start(Assembly, [$"--Legate:HttpPort={port}", "--Legate:BindAddress=127.0.0.1"]);

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

        AssertStartRefused(service, exitCode, $"127.0.0.1:{port}");
        Assert.Contains("address already in use", service.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task ABindAddressNotOnThisHost_StopsStartUpWithTheAddressNamed()
    {
        // 192.0.2.1 (TEST-NET-1) is nobody's address: the system refuses the bind (EADDRNOTAVAIL), not Kestrel.
        await using var service = ServiceProcess.Start(Assembly, ["--Legate:BindAddress=192.0.2.1"]);

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

        AssertStartRefused(service, exitCode, "cannot listen on 192.0.2.1");
    }

    [Fact]
    public async Task AnAppsettingsFileThatIsNotJson_StopsStartUpWithTheFileNamed()
    {
        var folder = Directory.CreateTempSubdirectory("legate-settings-").FullName;
        try
        {
            var file = Path.Combine(folder, "appsettings.json");
            await File.WriteAllTextAsync(file, "{ \"Legate\": { \"GrpcPort\": 9001 }\n", Ct);
            await using var service = ServiceProcess.Start(Assembly, [$"--contentRoot={folder}"]);

            var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

            AssertStartRefused(service, exitCode, $"Failed to load configuration from file '{file}'.");
            Assert.Contains("LineNumber: ", service.Output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// A start refused for its input: exit code 1 and one line that names what was wrong, not an unhandled-exception
    /// abort (exit code 134, SIGABRT) with a stack trace on stderr.
    /// </summary>
    protected static void AssertStartRefused(ServiceProcess service, int exitCode, string named)
    {
        ArgumentNullException.ThrowIfNull(service);
        Assert.True(exitCode == 1, $"exit code {exitCode}:\n{service.Output}");
        Assert.Contains(" did not start: ", service.Output, StringComparison.Ordinal);
        Assert.Contains(named, service.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", service.Output, StringComparison.Ordinal);
        // Nor the host's own error line about it, stack trace and all.
        Assert.DoesNotContain("Hosting failed to start", service.Output, StringComparison.Ordinal);
    }
}
