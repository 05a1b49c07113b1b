using System.Net;
using Legate.Authz.Jwt;
using Legate.Testing;
using Microsoft.Extensions.Time.Testing;
using Prometheus;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

/// <summary>Keys from a real JWKS / discovery endpoint on 127.0.0.1: rotation, refresh storms, outages.</summary>
public sealed class JwksSourceTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(Now);
    private readonly HttpClient _http = new();
    private readonly CollectorRegistry _registry = Metrics.NewCustomRegistry();
    private JwksServer _server = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _server = await JwksServer.StartAsync(Ct);

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private (JwtProvider Provider, JwksSource Source) Remote(Func<JwtProviderOptions, JwtProviderOptions>? edit = null)
    {
        var options = Options(DefaultJwks) with { InlineJwks = null, JwksUri = _server.JwksUri };
        options = edit?.Invoke(options) ?? options;
        var source = new JwksSource(options, _http, _time, new JwksMetrics(Metrics.WithCustomRegistry(_registry)));
        return (new JwtProvider(options, source), source);
    }

    [Fact]
    public async Task Fetches_RsaAndEcKeys()
    {
        var (provider, source) = Remote();
        using var _ = source;
        var validator = new JwtValidator(_time);

        Assert.True((await validator.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        Assert.True((await validator.ValidateAsync(provider, SignEc(Ec1, Header("ES256", "e1"), Payload(Now)), Ct)).Succeeded);
        Assert.Equal(1, _server.JwksRequests);
        Assert.Contains("legate_authz_jwks_fetches_total{provider=\"test\",result=\"success\"} 1", _registry.Scrape(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task J4_RotatedKid_TriggersOneRefetch_ThenIsAccepted()
    {
        var (provider, source) = Remote();
        using var _ = source;
        var validator = new JwtValidator(_time);
        await source.RefreshAsync(Ct);
        var version = source.Current!.Version;

        _server.Jwks = Jwks(Rsa(Rsa1, "k1"), Rsa(Rsa2, "k2"));
        _time.Advance(TimeSpan.FromSeconds(31));
        var rotated = Token(Now, key: Rsa2, kid: "k2");
        Assert.True((await validator.ValidateAsync(provider, rotated, Ct)).Succeeded);
        Assert.Equal(2, _server.JwksRequests);
        Assert.NotEqual(version, source.Current.Version);

        // Another unknown kid right after: throttled, no fetch.
        Assert.Equal(JwtFailureReason.UnknownKey, (await validator.ValidateAsync(provider, Token(Now, kid: "k9"), Ct)).Failure);
        Assert.Equal(2, _server.JwksRequests);
    }

    [Fact]
    public async Task AnotherIssuersToken_NeverWaitsForThisProvidersKeys_NorTriggersARefetch()
    {
        // A tenant trusting several issuers tries each provider in turn: a slow endpoint of one must not hold up the others' tokens.
        var (provider, source) = Remote();
        using var _ = source;
        var validator = new JwtValidator(_time);
        _server.Delay = TimeSpan.FromSeconds(2);
        var other = Token(Now, c => c["iss"] = "https://other.example", kid: "b1");

        Assert.Equal(JwtFailureReason.WrongIssuer, (await validator.ValidateAsync(provider, other, Ct)).Failure);
        Assert.Equal(0, _server.JwksRequests);

        _server.Delay = TimeSpan.Zero;
        await source.RefreshAsync(Ct);
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(JwtFailureReason.WrongIssuer, (await validator.ValidateAsync(provider, other, Ct)).Failure);
        Assert.Equal(JwtFailureReason.WrongIssuer, (await validator.ValidateAsync(provider, Token(Now, c => c.Remove("iss"), kid: "b1"), Ct)).Failure);
        Assert.Equal(1, _server.JwksRequests);
        // This issuer's token with an unknown kid still refetches (a rotation).
        Assert.Equal(JwtFailureReason.UnknownKey, (await validator.ValidateAsync(provider, Token(Now, kid: "b1"), Ct)).Failure);
        Assert.Equal(2, _server.JwksRequests);
    }

    [Fact]
    public async Task J4_UnknownKidStorm_CostsAtMostOneFetchPerInterval()
    {
        var (provider, source) = Remote();
        using var _ = source;
        var validator = new JwtValidator(_time);
        await source.RefreshAsync(Ct);
        _time.Advance(TimeSpan.FromSeconds(31));
        _server.Delay = TimeSpan.FromMilliseconds(200);

        var tokens = Enumerable.Range(0, 100).Select(i => Token(Now, kid: $"random-{Guid.NewGuid():N}")).ToArray();
        var results = await Task.WhenAll(tokens.Select(t => Task.Run(async () => await validator.ValidateAsync(provider, t, Ct), Ct)));

        Assert.All(results, r => Assert.Equal(JwtFailureReason.UnknownKey, r.Failure));
        Assert.Equal(2, _server.JwksRequests);
        Assert.Equal(0, validator.Verifications);

        // Still within the interval: another storm fetches nothing.
        await Task.WhenAll(tokens.Select(t => validator.ValidateAsync(provider, t, Ct).AsTask()));
        Assert.Equal(2, _server.JwksRequests);
    }

    [Fact]
    public async Task J25_EndpointDownOrGarbage_KeepsTheLastGoodKeys()
    {
        var (provider, source) = Remote();
        using var _ = source;
        var validator = new JwtValidator(_time);
        var good = await source.RefreshAsync(Ct);

        _server.Status = HttpStatusCode.InternalServerError;
        Assert.Same(good, await source.RefreshAsync(Ct));
        _server.Status = HttpStatusCode.OK;
        foreach (var garbage in new[] { "not json", "{\"keys\":[]}", "{\"keys\":{}}", "[]", Jwks(Rsa(Rsa1, "k1", use: "enc")) })
        {
            _server.Jwks = garbage;
            Assert.Same(good, await source.RefreshAsync(Ct));
        }
        _server.Jwks = Jwks([.. Enumerable.Range(0, 40).Select(i => Rsa(Rsa1, $"k{i}"))]);
        Assert.Same(good, await source.RefreshAsync(Ct));

        Assert.True((await validator.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        var metrics = _registry.Scrape();
        Assert.Contains("result=\"http_error\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("result=\"invalid\"} 5", metrics, StringComparison.Ordinal);
        Assert.Contains("result=\"too_large\"} 1", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task J25_EndpointUnreachable_KeepsTheLastGoodKeys()
    {
        var (provider, source) = Remote();
        using var _ = source;
        var good = await source.RefreshAsync(Ct);
        await _server.DisposeAsync();
        _server = await JwksServer.StartAsync(Ct); // a different port: the old URL now refuses connections

        Assert.Same(good, await source.RefreshAsync(Ct));
        Assert.True((await new JwtValidator(_time).ValidateAsync(provider, Token(Now), Ct)).Succeeded);
    }

    [Fact]
    public async Task UnchangedKeys_KeepTheSameKeySet()
    {
        var (_, source) = Remote();
        using var __ = source;
        var first = await source.RefreshAsync(Ct);
        Assert.Same(first, await source.RefreshAsync(Ct));
        Assert.Contains("result=\"unchanged\"} 1", _registry.Scrape(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RotatedOutKeys_AreDisposedAtALaterRefresh_AfterTheGrace_WhileTheCurrentKeysKeepWorking()
    {
        var (provider, source) = Remote();
        using var _ = source;
        var validator = new JwtValidator(_time);
        await source.RefreshAsync(Ct);
        // Used once, so the key holds its signature providers (and OpenSSL verifier where there is one).
        Assert.True((await validator.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        var old = source.Current!.Keys;
        var rsa = ((Microsoft.IdentityModel.Tokens.RsaSecurityKey)old.Single(k => k.Kid == "k1").Key).Rsa;

        _server.Jwks = Jwks(Rsa(Rsa2, "k2"));
        await source.RefreshAsync(Ct);
        // Replaced, but a validation may have taken a key from the old set just before: nothing disposed yet.
        await source.RefreshAsync(Ct);
        Assert.DoesNotContain(old, k => k.IsDisposed);
        rsa.ExportParameters(false);

        _time.Advance(JwksSource.RetiredKeysGrace);
        await source.RefreshAsync(Ct);
        Assert.All(old, k => Assert.True(k.IsDisposed));
        Assert.Throws<ObjectDisposedException>(() => rsa.ExportParameters(false));
        Assert.DoesNotContain(source.Current!.Keys, k => k.IsDisposed);
        Assert.True((await validator.ValidateAsync(provider, Token(Now, key: Rsa2, kid: "k2"), Ct)).Succeeded);
        Assert.Equal(JwtFailureReason.UnknownKey, (await validator.ValidateAsync(provider, Token(Now), Ct)).Failure);
    }


    [Fact]
    public async Task Disposed_KeepsServingItsKeysThroughTheGrace_ThenFreesEveryKeyItHeld_AndFetchesNoMore()
    {
        var (provider, source) = Remote();
        var validator = new JwtValidator(_time);
        await source.RefreshAsync(Ct);
        var first = source.Current!.Keys;
        _server.Jwks = Jwks(Rsa(Rsa2, "k2"));
        await source.RefreshAsync(Ct);
        var second = source.Current!.Keys;
        var rsa = ((Microsoft.IdentityModel.Tokens.RsaSecurityKey)second.Single().Key).Rsa;

        source.Dispose();
        Assert.True((await validator.ValidateAsync(provider, Token(Now, key: Rsa2, kid: "k2"), Ct)).Succeeded);
        // An unknown kid after disposal fetches nothing.
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(JwtFailureReason.UnknownKey, (await validator.ValidateAsync(provider, Token(Now, kid: "k9"), Ct)).Failure);
        Assert.Equal(2, _server.JwksRequests);
        Assert.DoesNotContain(second, k => k.IsDisposed);

        _time.Advance(JwksSource.RetiredKeysGrace);
        Assert.All(first.Concat(second), k => Assert.True(k.IsDisposed));
        Assert.Throws<ObjectDisposedException>(() => rsa.ExportParameters(false));
        Assert.Null(source.Current);
        Assert.False((await validator.ValidateAsync(provider, Token(Now, key: Rsa2, kid: "k2"), Ct)).Succeeded);
        Assert.Equal(2, _server.JwksRequests);
    }

    [Fact]
    public async Task BackgroundRefresh_FollowsTheTimeProvider()
    {
        var (_, source) = Remote(o => o with { RefreshInterval = TimeSpan.FromMinutes(5) });
        using var _ = source;
        source.Start();
        await WaitForAsync(() => source.Current is not null);
        Assert.Equal(1, _server.JwksRequests);

        _server.Jwks = Jwks(Rsa(Rsa2, "k2"));
        _time.Advance(TimeSpan.FromMinutes(5));
        await WaitForAsync(() => source.Current!.ByKidContains("k2"));
        Assert.Equal(2, _server.JwksRequests);
    }

    [Fact]
    public async Task BackgroundRefresh_IsJittered_SoReplicasDoNotRefetchInLockstep()
    {
        // Ten replicas started at the same instant, refreshing every 5 min with the default 10 % jitter.
        var sources = Enumerable.Range(0, 10).Select(_ => Remote(o => o with { RefreshInterval = TimeSpan.FromMinutes(5) }).Source).ToList();
        try
        {
            foreach (var source in sources)
                source.Start();
            await WaitForAsync(() => sources.All(s => s.Current is not null && !s.IsFetching));

            // Step the clock a second at a time over two periods; note when each replica starts its next fetches.
            var fetchedAt = sources.Select(_ => new List<int>()).ToList();
            for (var second = 1; second <= 600; second++)
            {
                _time.Advance(TimeSpan.FromSeconds(1));
                for (var i = 0; i < sources.Count; i++)
                {
                    while (fetchedAt[i].Count < sources[i].FetchCount - 1)
                        fetchedAt[i].Add(second);
                }
                // Let fetches started by this tick finish, so the next tick starts a fetch of its own rather than joining one.
                await WaitForAsync(() => sources.All(s => !s.IsFetching));
            }

            foreach (var times in fetchedAt)
            {
                // Never later than the interval (keys at most 5 min old), never more than 10 % early.
                Assert.Equal(2, times.Count);
                Assert.InRange(times[0], 270, 300);
                Assert.InRange(times[1] - times[0], 270, 300);
            }
            // Spread over the 30 s window rather than all at one instant.
            Assert.True(fetchedAt.Select(t => t[0]).Distinct().Count() >= 3, string.Join(", ", fetchedAt.Select(t => t[0])));
        }
        finally
        {
            foreach (var source in sources)
                source.Dispose();
        }
    }

    [Fact]
    public void RefreshJitter_IsBounded()
    {
        var options = Options(DefaultJwks);
        Assert.Contains("p.refreshJitter: must be between 0 and 0.5", JwtProviderOptionsValidator.Validate(options with { RefreshJitter = 0.9 }, "p"));
        Assert.Empty(JwtProviderOptionsValidator.Validate(options with { RefreshJitter = 0 }, "p"));
    }

    [Fact]
    public async Task OidcDiscovery_FindsTheJwks_AndChecksTheIssuer()
    {
        var (provider, source) = Remote(o => o with { JwksUri = null, OidcDiscoveryUri = _server.DiscoveryUri });
        using var _ = source;
        Assert.True((await new JwtValidator(_time).ValidateAsync(provider, Token(Now), Ct)).Succeeded);

        _server.DiscoveryIssuer = "https://impostor.example.com";
        var (other, otherSource) = Remote(o => o with { JwksUri = null, OidcDiscoveryUri = _server.DiscoveryUri });
        using var __ = otherSource;
        Assert.Equal(JwtFailureReason.KeysUnavailable, (await new JwtValidator(_time).ValidateAsync(other, Token(Now), Ct)).Failure);
    }

    [Fact]
    public async Task FileJwks_IsReadAndReread()
    {
        var path = Path.Combine(Path.GetTempPath(), $"legate-jwks-{Guid.NewGuid():N}.json");
        try
        {
            await File.WriteAllTextAsync(path, Jwks(Rsa(Rsa1, "k1")), Ct);
            var options = Options(DefaultJwks) with { InlineJwks = null, JwksFile = path };
            using var source = new JwksSource(options, null, _time);
            var provider = new JwtProvider(options, source);
            var validator = new JwtValidator(_time);
            Assert.True((await validator.ValidateAsync(provider, Token(Now), Ct)).Succeeded);

            await File.WriteAllTextAsync(path, Jwks(Rsa(Rsa2, "k2")), Ct);
            await source.RefreshAsync(Ct);
            Assert.True((await validator.ValidateAsync(provider, Token(Now, key: Rsa2, kid: "k2"), Ct)).Succeeded);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RemoteUrls_MustBeHttpsOrLoopback()
    {
        var plain = Options(DefaultJwks) with { InlineJwks = null, JwksUri = new Uri("http://issuer.example.com/jwks") };
        Assert.Contains("providers[0].jwksUri: must be an absolute https URL (http only for a loopback host)", JwtProviderOptionsValidator.Validate(plain, "providers[0]"));
        Assert.Throws<ArgumentException>(() => new JwksSource(plain, _http, _time));
        Assert.Empty(JwtProviderOptionsValidator.Validate(plain with { JwksUri = new Uri("http://127.0.0.1:8080/jwks") }, "providers[0]"));
        Assert.Empty(JwtProviderOptionsValidator.Validate(plain with { JwksUri = new Uri("https://issuer.example.com/jwks") }, "providers[0]"));
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        for (var i = 0; i < 500 && !condition(); i++)
            await Task.Delay(10, Ct);
        Assert.True(condition());
    }
}

internal static class KeySetExtensions
{
    public static bool ByKidContains(this JwksKeySet keys, string kid) => keys.Keys.Any(k => k.Kid == kid);
}
