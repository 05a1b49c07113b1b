using Envoy.Service.Auth.V3;
using Legate.Testing;
using AuthorizationClient = Envoy.Service.Auth.V3.Authorization.AuthorizationClient;

namespace Legate.Gateway.Tests.Keys;

/// <summary>
/// End to end: two authz replicas run as processes on one Redis; <c>legate keys create --redis</c> makes a key both
/// accept, <c>legate keys revoke --redis</c> makes both refuse it within seconds.
/// </summary>
public sealed class KeysAgainstRunningAuthzTests(RedisFixture redis) : IDisposable
{
    private const string Policy = """
        tenants:
          acme:
            hosts: [api.acme.example]
            api_keys: true
        policies:
          default:
            credentials: [api_key]
        api_keys:
          redis: true
          cache_ttl: 2s
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("legate-keys-e2e-").FullName;

    private static CheckRequest Request(string key)
    {
        var http = new AttributeContext.Types.HttpRequest { Method = "GET", Path = "/orders", Host = "api.acme.example" };
        http.Headers[":authority"] = "api.acme.example";
        http.Headers[":method"] = "GET";
        http.Headers[":path"] = "/orders";
        http.Headers["x-api-key"] = key;
        return new CheckRequest { Attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } } };
    }

    private static async Task<int> StatusAsync(ServiceProcess replica, string key) =>
        (await new AuthorizationClient(replica.Channel).CheckAsync(Request(key), cancellationToken: TestContext.Current.CancellationToken)).Status.Code;

    [Fact]
    public async Task CreateThenRevoke_ThroughTheCli_ReachesEveryRunningReplicaWithinSeconds()
    {
        redis.RequireRedis();
        var connection = redis.Configuration + ",defaultDatabase=" + redis.DedicatedDatabase();
        var policy = Path.Combine(_dir, "policies.yaml");
        File.WriteAllText(policy, Policy);
        string[] settings = [$"--Legate:Rules:authz:Path={policy}", $"--Legate:Redis:Configuration={connection}"];
        await using var replicaA = ServiceProcess.Start(RepoPaths.ServiceAssembly("authz", "legate-authz"), settings);
        await using var replicaB = ServiceProcess.Start(RepoPaths.ServiceAssembly("authz", "legate-authz"), settings);
        await replicaA.WaitUntilReadyAsync();
        await replicaB.WaitUntilReadyAsync();

        var create = KeysCommandTests.Run(TimeProvider.System, "create", "--tenant", "acme", "--client", "billing", "--redis", connection);
        Assert.True(create.ExitCode == Cli.Ok, create.Stderr);
        var key = create.Stdout.Trim();
        Assert.Equal(0, await StatusAsync(replicaA, key));
        Assert.Equal(0, await StatusAsync(replicaB, key));

        var revoke = KeysCommandTests.Run(TimeProvider.System, "revoke", key.Split('_')[1], "--redis", connection);
        Assert.Equal(Cli.Ok, revoke.ExitCode);
        var revokedAt = DateTime.UtcNow;
        foreach (var replica in new[] { replicaA, replicaB })
        {
            var status = 0;
            for (var i = 0; i < 200 && status == 0 && DateTime.UtcNow < revokedAt.AddSeconds(15); i++)
            {
                status = await StatusAsync(replica, key);
                if (status == 0)
                    await Task.Delay(50, TestContext.Current.CancellationToken);
            }
            Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, status);
        }
        // cache_ttl 2s bounds it: a lookup cached just before the revocation is reused at most that long.
        Assert.InRange((DateTime.UtcNow - revokedAt).TotalSeconds, 0, 6);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
