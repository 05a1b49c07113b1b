using System.Net;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Images;
using DotNet.Testcontainers.Networks;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>
/// The docker compose walk-through against a real Envoy, for machines with a Docker engine: the official Envoy
/// image on the rendered example gateway file, in front of the three services (built from deploy/docker) and the
/// sample upstream. Skips, saying why, where no Docker engine is reachable.
/// </summary>
public sealed class EnvoyEndToEndTests
{
    private const string EnvoyImage = "envoyproxy/envoy:v1.37.2";
    private const string UpstreamImage = "mendhak/http-https-echo:31";
    private const string RedisImage = "redis:7.4.2-alpine";
    private const string DemoApiKey = "lgt_aS6L5CMAXtFg_hbIlGbLThBf1AxDFNAgKvWC9eTJSsKV5vwS1bpG1igq_0YnQsX";

    [Fact]
    public async Task Envoy_AnswersTheWalkThrough_401_200ApiKey_200Jwt_429()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var network = await TryCreateNetworkAsync(ct);
        var rendered = await RenderExampleAsync();
        var containers = new List<IContainer>();
        try
        {
            containers.Add(await StartAsync(new ContainerBuilder(RedisImage).WithNetwork(network).WithNetworkAliases("redis")
                .WithWaitStrategy(Wait.ForUnixContainer().UntilCommandIsCompleted("redis-cli", "ping")), ct));
            foreach (var service in ServiceInfo.All)
            {
                var image = new ImageFromDockerfileBuilder()
                    // The build context is the repository root (and its .dockerignore), as for `docker build -f`.
                    .WithDockerfileDirectory(RepoPaths.Root)
                    .WithDockerfile($"deploy/docker/{service.Name}.Dockerfile")
                    .WithName($"legate/{service.Name}:e2e")
                    .Build();
                await image.CreateAsync(ct);
                containers.Add(await StartAsync(new ContainerBuilder(image).WithNetwork(network).WithNetworkAliases(service.Name)
                    .WithResourceMapping(new DirectoryInfo(rendered), "/etc/legate")
                    .WithEnvironment("Legate__Rules__authz__Path", "/etc/legate/authz/policies.yaml")
                    .WithEnvironment("Legate__Rules__ratelimit__Path", "/etc/legate/ratelimit")
                    .WithEnvironment("Legate__RateLimit__Store", "redis")
                    .WithEnvironment("Legate__Redis__Configuration", "redis:6379")
                    .WithEnvironment("Legate__StatSink__CounterMode", "cumulative")
                    .WithWaitStrategy(Wait.ForUnixContainer().UntilContainerIsHealthy()), ct));
            }
            containers.Add(await StartAsync(new ContainerBuilder(UpstreamImage).WithNetwork(network).WithNetworkAliases("upstream")
                .WithEnvironment("HTTP_PORT", "8080")
                .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(r => r.ForPort(8080))), ct));
            var envoy = await StartAsync(new ContainerBuilder(EnvoyImage).WithNetwork(network)
                .WithResourceMapping(new DirectoryInfo(rendered), "/etc/legate")
                .WithCommand("-c", "/etc/legate/envoy/envoy.yaml")
                .WithPortBinding(8080, true)
                .WithPortBinding(19003, true)
                .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(r => r.ForPort(19003).ForPath("/ready"))), ct);
            containers.Add(envoy);

            using var client = new HttpClient { BaseAddress = new Uri($"http://{envoy.Hostname}:{envoy.GetMappedPublicPort(8080)}") };
            Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(client, null, ct));
            Assert.Equal(HttpStatusCode.OK, await SendAsync(client, ("x-api-key", DemoApiKey), ct));
            Assert.Equal(HttpStatusCode.OK, await SendAsync(client, ("authorization", "Bearer " + DemoJwt.Mint()), ct));
            // The example allows one client address 50 calls a second: well within this many, one is refused with 429.
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 500 && !statuses.Contains(HttpStatusCode.TooManyRequests); i++)
                statuses.Add(await SendAsync(client, ("x-api-key", DemoApiKey), ct));
            Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
            Assert.All(statuses, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, $"unexpected {s}"));
        }
        finally
        {
            foreach (var container in Enumerable.Reverse(containers))
                await container.DisposeAsync();
            Directory.Delete(rendered, recursive: true);
        }
    }

    private static async Task<HttpStatusCode> SendAsync(HttpClient client, (string Name, string Value)? credential, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/orders/1");
        // The example tenant owns the host `localhost`, as in the README's curl calls.
        request.Headers.Host = "localhost";
        if (credential is { } c)
            request.Headers.TryAddWithoutValidation(c.Name, c.Value);
        using var response = await client.SendAsync(request, ct);
        return response.StatusCode;
    }

    private static async Task<IContainer> StartAsync(ContainerBuilder builder, CancellationToken ct)
    {
        var container = builder.Build();
        await container.StartAsync(ct);
        return container;
    }

    private static async Task<INetwork> TryCreateNetworkAsync(CancellationToken ct)
    {
        try
        {
            var network = new NetworkBuilder().Build();
            await network.CreateAsync(ct);
            return network;
        }
#pragma warning disable CA1031 // Any failure to reach Docker means: this machine cannot run the test.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Assert.Skip($"No Docker engine reachable ({e.GetType().Name}: {e.Message.Split('\n')[0]}); this test needs one to run Envoy.");
            throw;
        }
    }

    /// <summary>`legate render` of deploy/examples/gateway.yaml, as compose's render service runs it.</summary>
    private static async Task<string> RenderExampleAsync()
    {
        var output = Directory.CreateTempSubdirectory("legate-e2e-").FullName;
        var (exitCode, stdout, stderr) = await LegateCli.RenderAsync(Path.Combine(RepoPaths.Root, "deploy", "examples", "gateway.yaml"), output, "/etc/legate/envoy");
        Assert.True(exitCode == 0, $"legate render failed: {stdout}{stderr}");
        return output;
    }
}
