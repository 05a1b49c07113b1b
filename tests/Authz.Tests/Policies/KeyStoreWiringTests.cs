using Envoy.Service.Auth.V3;
using Legate.Authz.ApiKeys;
using Legate.Authz.Tests.ApiKeys;
using Legate.Hosting.Rules;
using Legate.Testing;
using StackExchange.Redis;

namespace Legate.Authz.Tests.Policies;

/// <summary>The key stores the policy file names: a keys file reloaded on its own, and the Redis store shared by replicas.</summary>
public sealed class KeyStoreWiringTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static CheckRequest WithKey(string key) => AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = key });

    private static readonly Dictionary<string, string?> FastPolling = new() { ["Legate:Rules:authz:PollInterval"] = "00:00:00.100" };

    /// <summary>Asks until the answer has the wanted status; bounded by count and time, never a fixed sleep.</summary>
    private static async Task<int> EventuallyAsync(AuthzTestHost host, CheckRequest request, int wanted)
    {
        var status = -1;
        var deadline = DateTime.UtcNow.AddSeconds(15);
        for (var i = 0; i < 300 && DateTime.UtcNow < deadline; i++)
        {
            status = (await host.CheckAsync(request)).Status.Code;
            if (status == wanted)
                break;
            await Task.Delay(50, Ct);
        }
        return status;
    }

    [Fact]
    public async Task KeysFileChangedAlone_IsReloaded_WithoutAPolicyReload()
    {
        using var host = new AuthzTestHost(settings: FastPolling);
        var added = TestKeys.New("acme", "new-client");
        Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, (await host.CheckAsync(WithKey(added.Key))).Status.Code);

        ApiKeyFileWriter.Append(host.KeysPath, added.Record);
        Assert.Equal(0, await EventuallyAsync(host, WithKey(added.Key), 0));

        ApiKeyFileWriter.Revoke(host.KeysPath, AuthzTestHost.AcmeKey.Record.KeyId);
        Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, await EventuallyAsync(host, WithKey(AuthzTestHost.AcmeKey.Key), (int)Grpc.Core.StatusCode.Unauthenticated));

        // The policy itself was loaded once: its JWKS sources were not rebuilt for a key change.
        Assert.Equal(1, host.Rules.Snapshot.Version);
    }

    [Fact]
    public async Task BadKeysFile_KeepsTheLastGoodKeys_AndIsCountedAndLogged()
    {
        using var host = new AuthzTestHost(settings: FastPolling);
        Assert.Equal(0, (await host.CheckAsync(WithKey(AuthzTestHost.AcmeKey.Key))).Status.Code);

        File.WriteAllText(host.KeysPath, "- id: broken\n");

        const string failed = "legate_rules_reloads_total{rules=\"authz-keys\",result=\"failure\"} 1";
        var scrape = "";
        var deadline = DateTime.UtcNow.AddSeconds(15);
        for (var i = 0; i < 300 && DateTime.UtcNow < deadline && !scrape.Contains(failed, StringComparison.Ordinal); i++)
        {
            await Task.Delay(50, Ct);
            scrape = await host.Service.ScrapeAsync(Ct);
        }
        Assert.Contains(failed, scrape, StringComparison.Ordinal);
        Assert.Equal(0, (await host.CheckAsync(WithKey(AuthzTestHost.AcmeKey.Key))).Status.Code);
    }

    private static string PrefixPolicy(string? prefix) => AuthzTestHost.DefaultPolicy.Replace(
        "  query: api_key\n", "  query: api_key\n" + (prefix is null ? "" : $"  prefix: {prefix}\n"), StringComparison.Ordinal);

    [Fact]
    public async Task KeyWithACustomPrefix_IsAccepted_WhereThePolicyNamesThatPrefix_AndOnlyThen()
    {
        // As `legate keys create --prefix acme` makes it.
        var custom = TestKeys.New("acme", "partner", format: new ApiKeyFormat("acme"));
        using (var named = new AuthzTestHost(PrefixPolicy("acme"), keys: [custom]))
        {
            Assert.Contains("api_keys:\n  file: keys.yaml\n  query: api_key\n  prefix: acme\n", File.ReadAllText(named.PolicyPath), StringComparison.Ordinal);
            var allowed = await named.CheckAsync(WithKey(custom.Key));
            Assert.Equal(0, allowed.Status.Code);
            Assert.Equal("partner", allowed.DynamicMetadata.Fields["client"].StringValue);
            Assert.Equal(0, (await named.CheckAsync(AuthzTestHost.Request(path: "/orders?api_key=" + custom.Key))).Status.Code);
            // One prefix per policy: a stored lgt_ key is not accepted beside it.
            Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, (await named.CheckAsync(WithKey(AuthzTestHost.AcmeKey.Key))).Status.Code);
        }

        using var unnamed = new AuthzTestHost(PrefixPolicy(null), keys: [custom]);
        var refused = await unnamed.CheckAsync(WithKey(custom.Key));
        Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, refused.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.Unauthorized, refused.DeniedResponse.Status.Code);
        Assert.Equal(0, (await unnamed.CheckAsync(WithKey(AuthzTestHost.AcmeKey.Key))).Status.Code);
    }

    [Theory]
    [InlineData("api key")]
    [InlineData("api%5Fkey")]
    [InlineData("key[]")]
    [InlineData("api_key\\n")]
    public void AQueryNameThatNeedsEncoding_IsALoadError(string query)
    {
        var policy = "tenants:\n  acme:\n    api_keys: true\npolicies:\n  default:\n    credentials: [api_key]\n"
            + "api_keys:\n  file: keys.yaml\n  query: \"" + query + "\"\n";

        var error = AuthzTestHost.LoadError(policy);

        Assert.NotNull(error);
        Assert.Equal(9, error.Line);
        Assert.Equal("api_keys.query", error.Field);
        Assert.Contains("is not a plain query parameter name", error.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Acme")]
    [InlineData("lgt_")]
    [InlineData("abcdefghijklmnopq")]
    [InlineData("\"\"")]
    [InlineData("é")]
    public void BadPrefix_IsALoadError_NamingFileLineAndField(string prefix)
    {
        var policy = "tenants:\n  acme:\n    api_keys: true\npolicies:\n  default:\n    credentials: [api_key]\n"
            + "api_keys:\n  file: keys.yaml\n  prefix: " + prefix + "\n";

        var error = AuthzTestHost.LoadError(policy);

        Assert.NotNull(error);
        Assert.EndsWith("policies.yaml", error.File, StringComparison.Ordinal);
        Assert.Equal(9, error.Line);
        Assert.Equal("api_keys.prefix", error.Field);
        Assert.Contains("1 to 16 lower-case ASCII letters or digits", error.Problem, StringComparison.Ordinal);
        Assert.Contains($"{error.File}:9:", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("api_keys:\n  redis: true\n", "api_keys.redis: needs the shared Redis connection: set Legate:Redis:Configuration")]
    [InlineData("api_keys:\n  file: keys.yaml\n  redis: true\n", "api_keys: needs exactly one store")]
    [InlineData("api_keys:\n  header: x-api-key\n", "api_keys: needs exactly one store")]
    [InlineData("api_keys:\n  file: keys.yaml\n  cache_ttl: 5s\n", "api_keys.cache_ttl: applies to the Redis store only")]
    [InlineData("api_keys:\n  file: missing.yaml\n", "api_keys.file:")]
    public void BadApiKeysSection_StopsStartUp_NamingTheField(string apiKeys, string expected)
    {
        var policy = "tenants:\n  acme:\n    api_keys: true\npolicies:\n  default:\n    credentials: [api_key]\n" + apiKeys;

        var error = AuthzTestHost.LoadError(policy);

        Assert.NotNull(error);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}

/// <summary><c>api_keys: {redis: true}</c> on the test assembly's real Redis, with two replicas.</summary>
public sealed class RedisKeyStoreWiringTests(RedisFixture redis)
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
          cache_ttl: 1s
        """;

    [Fact]
    public async Task TwoReplicas_ShareTheRedisKeys_AndARevocationReachesBothWithinSeconds()
    {
        redis.RequireRedis();
        var database = redis.DedicatedDatabase();
        var settings = new Dictionary<string, string?> { ["Legate:Redis:Configuration"] = redis.Configuration + ",defaultDatabase=" + database };
        using var replicaA = new AuthzTestHost(Policy, settings);
        using var replicaB = new AuthzTestHost(Policy, settings);
        // As `legate keys create --redis` writes it: the default key layout, no local cache.
        var admin = new RedisApiKeyStore(redis.Multiplexer, new RedisApiKeyStoreOptions { Database = database, CacheTtl = TimeSpan.Zero });
        var key = TestKeys.New("acme", "billing");
        Assert.True(await admin.AddAsync(key.Record, TestContext.Current.CancellationToken));
        var request = AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = key.Key });

        Assert.Equal(0, (await replicaA.CheckAsync(request)).Status.Code);
        Assert.Equal(0, (await replicaB.CheckAsync(request)).Status.Code);

        Assert.True(await admin.RevokeAsync(key.Record.KeyId, TestContext.Current.CancellationToken));
        var revokedAt = DateTime.UtcNow;
        foreach (var replica in new[] { replicaA, replicaB })
        {
            var status = 0;
            for (var i = 0; i < 200 && status == 0 && DateTime.UtcNow < revokedAt.AddSeconds(10); i++)
            {
                status = (await replica.CheckAsync(request)).Status.Code;
                if (status == 0)
                    await Task.Delay(50, TestContext.Current.CancellationToken);
            }
            Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, status);
        }
        // cache_ttl 1s: both refuse well within the documented bound (TTL plus a round trip).
        Assert.InRange((DateTime.UtcNow - revokedAt).TotalSeconds, 0, 5);
    }

    // The first connect to Redis runs in the background; a key check does not wait for it beyond the store's timeout.
    [Fact]
    public async Task RedisStillConnecting_KeyChecksFailClosed_503()
    {
        using var hanging = new SilentServer(); // accepts, never answers: the connect takes its whole minute
        var settings = new Dictionary<string, string?> { ["Legate:Redis:Configuration"] = $"{hanging.Endpoint},connectTimeout=60000" };
        using var host = new AuthzTestHost(Policy, settings);

        var response = await host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = TestKeys.New().Key }))
            .WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal((int)Grpc.Core.StatusCode.Unavailable, response.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.ServiceUnavailable, response.DeniedResponse.Status.Code);
    }

    [Fact]
    public async Task RedisDown_KeyChecksFailClosed_503()
    {
        var settings = new Dictionary<string, string?> { ["Legate:Redis:Configuration"] = $"127.0.0.1:{FreePort.Next()},connectTimeout=200" };
        using var host = new AuthzTestHost(Policy, settings);

        var response = await host.CheckAsync(AuthzTestHost.Request(headers: new Dictionary<string, string> { ["x-api-key"] = TestKeys.New().Key }));

        Assert.Equal((int)Grpc.Core.StatusCode.Unavailable, response.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.ServiceUnavailable, response.DeniedResponse.Status.Code);
    }
}

/// <summary><c>Legate:Authz:TokenCacheCapacity</c>: the validated-token cache on (default) or off.</summary>
public sealed class TokenCacheSettingTests
{
    [Theory]
    [InlineData(null, 1)]
    [InlineData("0", 2)]
    public async Task ARepeatedToken_IsVerifiedOnce_UnlessTheCacheIsOff(string? capacity, long verifications)
    {
        var settings = new Dictionary<string, string?>();
        if (capacity is not null)
            settings["Legate:Authz:TokenCacheCapacity"] = capacity;
        using var host = new AuthzTestHost(settings: settings);
        var request = AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + AuthzTestHost.Token() });

        Assert.Equal(0, (await host.CheckAsync(request)).Status.Code);
        Assert.Equal(0, (await host.CheckAsync(request)).Status.Code);

        var validator = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Legate.Authz.Jwt.JwtValidator>(host.Service.Services);
        Assert.Equal(verifications, validator.Verifications);
    }
}
