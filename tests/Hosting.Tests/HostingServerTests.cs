using System.Net;
using System.Text.Json;
using Envoy.Service.Auth.V3;
using Grpc.Core;
using Grpc.Health.V1;
using AuthorizationClient = Envoy.Service.Auth.V3.Authorization.AuthorizationClient;
using HealthClient = Grpc.Health.V1.Health.HealthClient;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;

namespace Legate.Hosting.Tests;

public sealed class HostingServerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("")]
    [InlineData(TestHost.ServiceName)]
    [InlineData("envoy.service.auth.v3.Authorization")]
    public async Task GrpcHealth_ServiceNames_AreServingOnceStarted(string service)
    {
        await using var host = await TestHost.StartAsync();
        var health = new HealthClient(host.Channel);

        var reply = await health.CheckAsync(new HealthCheckRequest { Service = service }, cancellationToken: Ct);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }

    [Fact]
    public async Task GrpcHealth_UnknownServiceName_IsNotFound()
    {
        await using var host = await TestHost.StartAsync();
        var health = new HealthClient(host.Channel);

        var error = await Assert.ThrowsAsync<RpcException>(() =>
            health.CheckAsync(new HealthCheckRequest { Service = "no.such.Service" }, cancellationToken: Ct).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    [Fact]
    public async Task Reflection_ListsTheEnvoyServiceAndHealth()
    {
        await using var host = await TestHost.StartAsync();
        var reflection = new ServerReflection.ServerReflectionClient(host.Channel);

        using var call = reflection.ServerReflectionInfo(cancellationToken: Ct);
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" }, Ct);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();

        Assert.Contains("envoy.service.auth.v3.Authorization", names);
        Assert.Contains("grpc.health.v1.Health", names);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    public async Task HealthEndpoints_AnswerJsonOnTheHttpListener(string path)
    {
        await using var host = await TestHost.StartAsync();

        using var response = await host.Http.GetAsync(new Uri(host.Endpoints.Http, path), Ct);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", body.RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Metrics_CountGrpcCallsByMethodAndCode()
    {
        await using var host = await TestHost.StartAsync();
        var client = new AuthorizationClient(host.Channel);

        await client.CheckAsync(new CheckRequest(), cancellationToken: Ct);
        await client.CheckAsync(new CheckRequest(), cancellationToken: Ct);
        var denied = new CheckRequest { Attributes = new AttributeContext { ContextExtensions = { ["fail"] = "7" } } };
        await Assert.ThrowsAsync<RpcException>(() => client.CheckAsync(denied, cancellationToken: Ct).ResponseAsync);
        var scrape = await host.ScrapeAsync();

        Assert.Contains("grpc_server_handled_total{grpc_service=\"envoy.service.auth.v3.Authorization\",grpc_method=\"Check\",grpc_type=\"unary\",grpc_code=\"OK\"} 2", scrape, StringComparison.Ordinal);
        Assert.Contains("grpc_code=\"PermissionDenied\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("grpc_server_handling_seconds_count{grpc_service=\"envoy.service.auth.v3.Authorization\",grpc_method=\"Check\",grpc_type=\"unary\"} 3", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_InOpenMetrics_CarryNoExemplars()
    {
        await using var host = await TestHost.StartAsync();
        await new AuthorizationClient(host.Channel).CheckAsync(new CheckRequest(), cancellationToken: Ct);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(host.Endpoints.Http, "/metrics"));
        request.Headers.Accept.ParseAdd("application/openmetrics-text; version=1.0.0");

        using var response = await host.Http.SendAsync(request, Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);

        Assert.StartsWith("application/openmetrics-text", response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        Assert.Contains("grpc_server_handled_total{", body, StringComparison.Ordinal);
        Assert.DoesNotContain("trace_id", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OperationalEndpoints_AreNotServedOnTheGrpcListener()
    {
        await using var host = await TestHost.StartAsync();
        using var h2c = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };

        using var response = await h2c.GetAsync(new Uri(host.Endpoints.Grpc, "/metrics"), Ct);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task GrpcCalls_AreNotServedOnTheHttpListener()
    {
        await using var host = await TestHost.StartAsync();
        var client = new AuthorizationClient(host.ChannelFor(host.Endpoints.Http));

        var error = await Assert.ThrowsAsync<RpcException>(() => client.CheckAsync(new CheckRequest(), cancellationToken: Ct).ResponseAsync);

        Assert.NotEqual(StatusCode.OK, error.StatusCode);
    }

    [Fact]
    public async Task Shutdown_GoesNotReadyFirstAndLetsInFlightCallsFinish()
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Legate:DrainDelay"] = "00:00:01" });
        var client = new AuthorizationClient(host.Channel);
        var health = new HealthClient(host.Channel);
        host.Service.Hold();
        var inFlight = client.CheckAsync(new CheckRequest(), cancellationToken: Ct).ResponseAsync;
        await host.Service.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);

        var stopping = host.App.StopAsync(CancellationToken.None);
        await Task.Delay(200, Ct);
        using var readyz = await host.Http.GetAsync(new Uri(host.Endpoints.Http, "/readyz"), Ct);
        var grpcHealth = await health.CheckAsync(new HealthCheckRequest { Service = TestHost.ServiceName }, cancellationToken: Ct);
        host.Service.Release();
        var answer = await inFlight.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await stopping.WaitAsync(TimeSpan.FromSeconds(30), Ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, readyz.StatusCode);
        Assert.Contains("draining", await readyz.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, grpcHealth.Status);
        Assert.Equal(0, answer.Status.Code);
    }

    [Fact]
    public async Task InvalidOptions_StopStartUpWithTheKeyNamed()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => TestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Legate:GrpcPort"] = "70000",
        }));

        Assert.Contains("Legate:GrpcPort must be between 0 and 65535 (was 70000)", error.Message, StringComparison.Ordinal);
    }
}
