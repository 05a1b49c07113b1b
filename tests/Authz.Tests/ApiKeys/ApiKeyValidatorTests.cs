using System.Collections.Immutable;
using System.Diagnostics;
using Legate.Authz.ApiKeys;
using Legate.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Legate.Authz.Tests.ApiKeys;

public sealed class ApiKeyValidatorTests
{
    private readonly FakeTimeProvider _time = new(TestKeys.Now);

    private static CancellationToken Ct => TestKeys.Ct;

    private (ApiKeyValidator Validator, CountingStore Store) Build(params ApiKeyRecord[] records)
    {
        var store = new CountingStore(ApiKeySet.Create(records));
        return (new ApiKeyValidator(store, _time), store);
    }

    [Fact]
    public async Task GoodKey_Succeeds_WithItsRecord()
    {
        var key = TestKeys.New();
        var (validator, _) = Build(key.Record);

        var result = await validator.ValidateAsync(key.Key, Ct);

        Assert.True(result.Succeeded);
        Assert.Same(key.Record, result.Record);
    }

    [Fact]
    public void SyncStore_CompletesSynchronously()
    {
        var key = TestKeys.New();
        var validator = new ApiKeyValidator(new FileApiKeyStore(ApiKeySet.Create([key.Record])), _time);

#pragma warning disable CA2012, xUnit1031 // Completed, as asserted: reading it synchronously is the point.
        var pending = validator.ValidateAsync(key.Key, Ct);

        Assert.True(pending.IsCompletedSuccessfully);
        Assert.True(pending.Result.Succeeded);
#pragma warning restore CA2012, xUnit1031
    }

    [Fact]
    public async Task AsyncStore_GivesTheSameAnswers()
    {
        var key = TestKeys.New();
        var (validator, store) = Build(key.Record);
        store.Asynchronous = true;

        Assert.True((await validator.ValidateAsync(key.Key, Ct)).Succeeded);
        Assert.Equal(ApiKeyFailure.Unknown, (await validator.ValidateAsync(TestKeys.New().Key, Ct)).Failure);
    }

    [Fact]
    public async Task K1_TheStoreNeverSeesTheRawKey_OnlyItsIdAndHash()
    {
        var key = TestKeys.New();
        var (validator, store) = Build(key.Record);

        await validator.ValidateAsync(key.Key, Ct);

        Assert.Equal([key.Record.KeyId], store.Asked);
        Assert.DoesNotContain(store.Asked, id => id.Contains(key.Key[^20..], StringComparison.Ordinal));
        // The record holds 32 hash bytes; its text forms never hold the key.
        Assert.Equal(32, key.Record.Sha256.Length);
        Assert.DoesNotContain(key.Key, key.Record.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(key.Key, ApiKeyFileWriter.Serialize(key.Record), StringComparison.Ordinal);
    }

    [Fact]
    public async Task K2_LookupIsByIdNotScan_FlatWith100kKeys()
    {
        var keys = Enumerable.Range(0, 100_000).Select(_ => new ApiKeyRecord(
            ApiKeyFormat.Default.Generate("t", "c", null, TestKeys.Now).Record.KeyId, ImmutableArray.Create(new byte[32]), "t", "c", [], TestKeys.Now)).ToList();
        var target = TestKeys.New();
        keys.Add(target.Record);
        var (validator, store) = Build([.. keys]);

        for (var i = 0; i < 1000; i++)
            await validator.ValidateAsync(target.Key, Ct);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 10_000; i++)
            Assert.True((await validator.ValidateAsync(target.Key, Ct)).Succeeded);
        clock.Stop();

        Assert.Equal(11_000, store.Lookups);
        // One lookup + one SHA-256 each: far below the cost of scanning 100k entries per call.
        Assert.InRange(clock.Elapsed.TotalMilliseconds / 10_000, 0, 0.5);
    }

    [Fact]
    public async Task K2_UnknownId_StillHashesAndComparesInFixedTime()
    {
        // Same id as a real key but another secret, and an id that does not exist: both Unknown, both took the hash path.
        var real = TestKeys.New();
        var (validator, store) = Build(real.Record);
        var otherSecret = ForgeWithId(real.Record.KeyId);

        var wrongSecret = await validator.ValidateAsync(otherSecret, Ct);
        var unknownId = await validator.ValidateAsync(TestKeys.New().Key, Ct);

        Assert.Equal(ApiKeyFailure.Unknown, wrongSecret.Failure);
        Assert.Equal(ApiKeyFailure.Unknown, unknownId.Failure);
        Assert.Equal(2, store.Lookups);

        // And the two paths cost alike: the median times are within a generous factor of each other.
        var known = await MedianTicksAsync(validator, otherSecret);
        var unknown = await MedianTicksAsync(validator, TestKeys.New().Key);
        Assert.InRange(unknown / (double)known, 0.25, 4);
    }

    private static async Task<long> MedianTicksAsync(ApiKeyValidator validator, string key)
    {
        var samples = new long[2001];
        for (var i = 0; i < samples.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await validator.ValidateAsync(key, Ct);
            samples[i] = Stopwatch.GetTimestamp() - start;
        }
        Array.Sort(samples);
        return Math.Max(1, samples[samples.Length / 2]);
    }

    // A well-formed key (good checksum) with a given id and a fresh secret.
    private static string ForgeWithId(string keyId)
    {
        var secret = TestKeys.New().Key.Split('_')[2];
        var body = $"lgt_{keyId}_{secret}";
        var crc = System.IO.Hashing.Crc32.HashToUInt32(System.Text.Encoding.ASCII.GetBytes(body));
        const string alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        var checksum = new char[6];
        for (var i = 5; i >= 0; i--)
        {
            checksum[i] = alphabet[(int)(crc % 62)];
            crc /= 62;
        }
        var forged = body + "_" + new string(checksum);
        Assert.Equal(ApiKeyFormatError.None, ApiKeyFormat.Default.Check(forged, out _));
        return forged;
    }

    [Fact]
    public async Task K3_BadChecksum_IsRefusedWithoutAStoreLookup()
    {
        var key = TestKeys.New();
        var (validator, store) = Build(key.Record);
        var typo = key.Key[..^1] + (key.Key[^1] == 'a' ? 'b' : 'a');

        var result = await validator.ValidateAsync(typo, Ct);

        Assert.Equal(ApiKeyFailure.Malformed, result.Failure);
        Assert.Equal(0, store.Lookups);
    }

    [Fact]
    public async Task K4_AnotherTenantsKey_IsRefused()
    {
        var acme = TestKeys.New(tenant: "acme");
        var (validator, _) = Build(acme.Record);

        Assert.True((await validator.ValidateAsync(acme.Key, Ct, tenant: "acme")).Succeeded);
        Assert.Equal(ApiKeyFailure.WrongTenant, (await validator.ValidateAsync(acme.Key, Ct, tenant: "globex")).Failure);
    }

    [Fact]
    public async Task K5_ExpiredAndRevokedKeys_AreRefused()
    {
        var expiring = TestKeys.New(expires: TestKeys.Now.AddHours(1));
        var revoked = TestKeys.New();
        var (validator, _) = Build(expiring.Record, revoked.Record with { Revoked = true });

        Assert.True((await validator.ValidateAsync(expiring.Key, Ct)).Succeeded);
        _time.Advance(TimeSpan.FromHours(1) - TimeSpan.FromSeconds(1));
        Assert.True((await validator.ValidateAsync(expiring.Key, Ct)).Succeeded);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(ApiKeyFailure.Expired, (await validator.ValidateAsync(expiring.Key, Ct)).Failure);
        Assert.Equal(ApiKeyFailure.Revoked, (await validator.ValidateAsync(revoked.Key, Ct)).Failure);
    }

    [Fact]
    public async Task K5_RevokedOrExpiredState_IsOnlyToldToTheKeyHolder()
    {
        var revoked = TestKeys.New();
        var (validator, _) = Build(revoked.Record with { Revoked = true });

        Assert.Equal(ApiKeyFailure.Unknown, (await validator.ValidateAsync(ForgeWithId(revoked.Record.KeyId), Ct)).Failure);
    }

    [Fact]
    public async Task K6_Rotation_TwoActiveKeysForOneClient_ThenTheOldOneExpires()
    {
        var old = TestKeys.New(client: "billing", expires: TestKeys.Now.AddDays(7));
        var @new = TestKeys.New(client: "billing");
        var set = ApiKeySet.Create([old.Record, @new.Record]);
        var validator = new ApiKeyValidator(new FileApiKeyStore(set), _time);

        Assert.Equal(2, set.ForClient("acme", "billing").Count());
        Assert.True((await validator.ValidateAsync(old.Key, Ct)).Succeeded);
        Assert.True((await validator.ValidateAsync(@new.Key, Ct)).Succeeded);

        _time.Advance(TimeSpan.FromDays(7));
        Assert.Equal(ApiKeyFailure.Expired, (await validator.ValidateAsync(old.Key, Ct)).Failure);
        Assert.True((await validator.ValidateAsync(@new.Key, Ct)).Succeeded);
    }

    [Fact]
    public async Task K7_MissingScope_IsAuthenticatedButNotGranted()
    {
        // A good key is a success (not a 401); the route's scope check then says 403.
        var reader = TestKeys.New(scopes: ["orders:read"]);
        var (validator, _) = Build(reader.Record);

        var result = await validator.ValidateAsync(reader.Key, Ct);

        Assert.True(result.Succeeded);
        Assert.True(result.Record!.HasScope("orders:read"));
        Assert.False(result.Record.HasScope("orders:write"));
        Assert.False(result.Record.HasScope("ORDERS:READ"));
    }

    [Fact]
    public async Task K8_NoKeyMaterialInLogsOrErrors()
    {
        var key = TestKeys.New();
        var logs = new FakeLogCollector();
        using var factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(new FakeLoggerProvider(logs)));
        var store = new CountingStore(ApiKeySet.Create([key.Record]));
        var validator = new ApiKeyValidator(store, _time, logger: factory.CreateLogger("apikeys"));
        var secret = key.Key[(4 + ApiKeyFormat.KeyIdLength + 1)..];

        await validator.ValidateAsync(key.Key[..^1] + "!", Ct);
        await validator.ValidateAsync(ForgeWithId(key.Record.KeyId), Ct);
        store.Failure = new ApiKeyStoreUnavailableException();
        await validator.ValidateAsync(key.Key, Ct);

        Assert.NotEmpty(logs.GetSnapshot());
        foreach (var record in logs.GetSnapshot())
        {
            Assert.DoesNotContain(secret, record.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(key.Record.Sha256Hex, record.Message, StringComparison.OrdinalIgnoreCase);
        }
        // The locator's answer names where the key was, for headers_to_remove / query_parameters_to_remove.
        var located = new ApiKeyLocator("x-api-key").Locate(new Dictionary<string, string> { ["x-api-key"] = key.Key }, "/");
        Assert.Equal((ApiKeySource.Header, "x-api-key"), (located.Source, located.Name));
        Assert.DoesNotContain(key.Key, located.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(8192)]
    [InlineData(100_000)]
    public async Task K9_OversizedKey_IsRefusedWithoutALookup(int length)
    {
        var (validator, store) = Build();
        Assert.Equal(ApiKeyFailure.Malformed, (await validator.ValidateAsync(new string('A', length), Ct)).Failure);
        Assert.Equal(0, store.Lookups);
    }

    [Fact]
    public async Task K9_ControlCharactersAndJoinedValues_AreRefused()
    {
        var key = TestKeys.New();
        var (validator, store) = Build(key.Record);

        Assert.Equal(ApiKeyFailure.Malformed, (await validator.ValidateAsync(key.Key[..10] + "\r\n" + key.Key[12..], Ct)).Failure);
        Assert.Equal(ApiKeyFailure.Malformed, (await validator.ValidateAsync(key.Key + "," + key.Key, Ct)).Failure);
        Assert.Equal(0, store.Lookups);
        var located = new ApiKeyLocator("x-api-key").Locate(new Dictionary<string, string> { ["x-api-key"] = "k1,k2" }, "/");
        Assert.Equal(ApiKeyLocateStatus.Ambiguous, located.Status);
    }

    [Fact]
    public async Task K10_AThousandGuesses_CostNoStoreLookupUnlessWellFormed()
    {
        // Random guesses almost never pass the checksum (1 in 2^32), so a flood never reaches the store; only
        // well-formed keys do, and those are unknown. The service's failure counter / rate-limit descriptor keys on these results.
        var key = TestKeys.New();
        var (validator, store) = Build(key.Record);
        var failures = new Dictionary<ApiKeyFailure, int>();
        for (var i = 0; i < 1000; i++)
        {
            var guess = key.Key[..^8] + i.ToString("D8", System.Globalization.CultureInfo.InvariantCulture);
            var failure = (await validator.ValidateAsync(guess, Ct)).Failure;
            failures[failure] = failures.GetValueOrDefault(failure) + 1;
        }

        Assert.Equal(1000, failures.GetValueOrDefault(ApiKeyFailure.Malformed) + failures.GetValueOrDefault(ApiKeyFailure.Unknown));
        Assert.Equal(failures.GetValueOrDefault(ApiKeyFailure.Unknown), store.Lookups);
        Assert.InRange(store.Lookups, 0, 1);
    }

    [Fact]
    public async Task StoreUnavailable_FailsClosed()
    {
        var key = TestKeys.New();
        var (validator, store) = Build(key.Record);

        store.Failure = new ApiKeyStoreUnavailableException();
        Assert.Equal(ApiKeyFailure.StoreUnavailable, (await validator.ValidateAsync(key.Key, Ct)).Failure);
        store.Asynchronous = true;
        Assert.Equal(ApiKeyFailure.StoreUnavailable, (await validator.ValidateAsync(key.Key, Ct)).Failure);
    }

    [Fact]
    public async Task StoreUnavailable_IsLoggedAtMostOncePerTenSeconds_WithTheLookupsRefusedSinceTheLastLine()
    {
        var key = TestKeys.New();
        var logs = new FakeLogCollector();
        using var factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(new FakeLoggerProvider(logs)));
        var store = new CountingStore(ApiKeySet.Create([key.Record])) { Failure = new ApiKeyStoreUnavailableException() };
        var validator = new ApiKeyValidator(store, _time, logger: factory.CreateLogger("apikeys"));
        async Task RefuseAsync(int lookups)
        {
            for (var i = 0; i < lookups; i++)
                Assert.Equal(ApiKeyFailure.StoreUnavailable, (await validator.ValidateAsync(key.Key, Ct)).Failure);
        }
        List<FakeLogRecord> Lines() => [.. logs.GetSnapshot().Where(r => r.Id.Name == "ApiKeyStoreUnavailable")];

        await ThrottledLogAssert.OncePerTenSecondsAsync(RefuseAsync, _time.Advance, () => [.. Lines().Select(r => r.Message)], n => $"{n} lookup(s) refused");
    }
}
