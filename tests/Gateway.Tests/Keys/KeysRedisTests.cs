using Legate.Authz.ApiKeys;
using Legate.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Legate.Gateway.Tests.Keys;

/// <summary><c>legate keys --redis</c> on the test assembly's real Redis.</summary>
public sealed class KeysRedisTests(RedisFixture redis)
{
    private readonly int _database = redis.DedicatedDatabase();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string Connection
    {
        get
        {
            redis.RequireRedis();
            return redis.Configuration + ",defaultDatabase=" + _database;
        }
    }

    private (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => KeysCommandTests.Run(_time, args);

    // What every authz replica reads: the default layout, here with a 2 s cache as in the service.
    private RedisApiKeyStore Replica(TimeProvider time) =>
        new(redis.Multiplexer, new RedisApiKeyStoreOptions { Database = _database, CacheTtl = TimeSpan.FromSeconds(2), Timeout = TimeSpan.FromSeconds(10) }, time);

    [Fact]
    public async Task CreateListRevoke_AgainstRedis_AndReplicasRefuseTheKeyWithinTheirCacheTtl()
    {
        var create = Run("create", "--tenant", "acme", "--client", "billing", "--scope", "orders:read", "--expires", "30d", "--redis", Connection);
        Assert.True(create.ExitCode == Cli.Ok, create.Stderr);
        var key = create.Stdout.Trim();
        var keyId = key.Split('_')[1];

        var replicaTime = new FakeTimeProvider(_time.GetUtcNow());
        var replica = new ApiKeyValidator(Replica(replicaTime), replicaTime);
        Assert.True((await replica.ValidateAsync(key, Ct)).Succeeded);
        var stored = await redis.Multiplexer.GetDatabase(_database).HashGetAllAsync("legate:{apikeys}:key:" + keyId);
        Assert.DoesNotContain(stored, e => e.Value.ToString().Contains(key.Split('_')[2], StringComparison.Ordinal));

        var list = Run("list", "--redis", Connection);
        Assert.Equal(Cli.Ok, list.ExitCode);
        Assert.Matches($"{keyId} +acme +billing +orders:read +- +2026-06-01T12:00:00Z +2026-07-01T12:00:00Z +active", list.Stdout);

        var revoke = Run("revoke", keyId, "--redis", Connection);
        Assert.Equal(Cli.Ok, revoke.ExitCode);

        // The replica answered from its cache a moment ago; it must refuse the key once that entry is older than the TTL.
        replicaTime.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(ApiKeyFailure.Revoked, (await replica.ValidateAsync(key, Ct)).Failure);
        Assert.Matches($"{keyId} .* revoked", Run("list", "--client", "billing", "--tenant", "acme", "--redis", Connection).Stdout);
        Assert.Equal(Cli.Invalid, Run("revoke", "ZZZZZZZZZZZZ", "--redis", Connection).ExitCode);
    }

    [Fact]
    public void UnreachableRedis_IsAClearError_WithoutThePassword()
    {
        var (exitCode, stdout, stderr) = Run("create", "--tenant", "acme", "--client", "billing",
            "--redis", $"127.0.0.1:{FreePort.Next()},password=hunter2-secret,connectTimeout=300");

        Assert.Equal(Cli.Invalid, exitCode);
        Assert.Contains("cannot connect to Redis at 127.0.0.1:", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", stderr, StringComparison.Ordinal);
        Assert.Empty(stdout);
    }
}
