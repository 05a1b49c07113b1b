using Legate.Authz.Jwt;
using Microsoft.Extensions.Time.Testing;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

public sealed class ValidatedTokenCacheTests
{
    private readonly FakeTimeProvider _time = new(Now);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Hit_SkipsVerification_AndReturnsTheSameResult()
    {
        var validator = new JwtValidator(_time, new ValidatedTokenCache(_time));
        var provider = Provider(Options(DefaultJwks), _time);
        var token = Token(Now);

        var first = await validator.ValidateAsync(provider, token, Ct);
        var second = await validator.ValidateAsync(provider, token, Ct);

        Assert.True(first.Succeeded);
        Assert.Same(first, second);
        Assert.Equal(1, validator.Verifications);
    }

    [Fact]
    public async Task Hit_CompletesSynchronously_WithoutAllocating()
    {
        var validator = new JwtValidator(_time, new ValidatedTokenCache(_time));
        var provider = Provider(Options(DefaultJwks), _time);
        var token = Token(Now);
        await validator.ValidateAsync(provider, token, Ct);
        var warm = validator.ValidateAsync(provider, token, Ct);
        Assert.True(warm.IsCompletedSuccessfully);

        await warm;
        var completed = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            var pending = validator.ValidateAsync(provider, token, Ct);
            if (pending.IsCompletedSuccessfully)
                completed++;
            await pending;
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(100, completed);
        Assert.Equal(0, allocated);
    }

    [Fact]
    public async Task Entry_EndsAtTheTokensExpiry()
    {
        var validator = new JwtValidator(_time, new ValidatedTokenCache(_time));
        var provider = Provider(Options(DefaultJwks) with { ClockSkew = TimeSpan.Zero }, _time);
        var token = Token(Now);
        Assert.True((await validator.ValidateAsync(provider, token, Ct)).Succeeded);

        _time.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
        Assert.Equal(JwtFailureReason.Expired, (await validator.ValidateAsync(provider, token, Ct)).Failure);
        Assert.Equal(2, validator.Verifications);
    }

    [Fact]
    public async Task Entry_EndsAtTheCacheCap()
    {
        var validator = new JwtValidator(_time, new ValidatedTokenCache(_time, maxEntryLifetime: TimeSpan.FromMinutes(1)));
        var provider = Provider(Options(DefaultJwks), _time);
        var token = Token(Now);
        await validator.ValidateAsync(provider, token, Ct);
        _time.Advance(TimeSpan.FromMinutes(2));
        Assert.True((await validator.ValidateAsync(provider, token, Ct)).Succeeded);
        Assert.Equal(2, validator.Verifications);
    }

    [Fact]
    public async Task Failures_AreNotCached()
    {
        var validator = new JwtValidator(_time, new ValidatedTokenCache(_time));
        var provider = Provider(Options(DefaultJwks), _time);
        var token = Token(Now, c => c["aud"] = "other");
        await validator.ValidateAsync(provider, token, Ct);
        await validator.ValidateAsync(provider, token, Ct);
        Assert.Equal(2, validator.Verifications);
    }

    [Fact]
    public async Task Cache_IsBounded()
    {
        var cache = new ValidatedTokenCache(_time, capacity: 10);
        var validator = new JwtValidator(_time, cache);
        var provider = Provider(Options(DefaultJwks), _time);
        for (var i = 0; i < 50; i++)
            Assert.True((await validator.ValidateAsync(provider, Token(Now, c => c["jti"] = $"t{i}"), Ct)).Succeeded);
        Assert.InRange(cache.Count, 1, 11);
    }

    [Fact]
    public async Task Cache_IsPerProvider()
    {
        var cache = new ValidatedTokenCache(_time);
        var validator = new JwtValidator(_time, cache);
        var a = Provider(Options(DefaultJwks), _time);
        var b = Provider(Options(DefaultJwks) with { Name = "b", Audiences = ["billing-api"] }, _time);
        var token = Token(Now);
        Assert.True((await validator.ValidateAsync(a, token, Ct)).Succeeded);
        Assert.Equal(JwtFailureReason.WrongAudience, (await validator.ValidateAsync(b, token, Ct)).Failure);
    }

    [Fact]
    public async Task KeyChange_InvalidatesEntries()
    {
        var path = Path.Combine(Path.GetTempPath(), $"legate-jwks-{Guid.NewGuid():N}.json");
        try
        {
            await File.WriteAllTextAsync(path, Jwks(Rsa(Rsa1, "k1")), Ct);
            var options = Options(DefaultJwks) with { InlineJwks = null, JwksFile = path };
            using var source = new JwksSource(options, null, _time);
            var provider = new JwtProvider(options, source);
            var validator = new JwtValidator(_time, new ValidatedTokenCache(_time));
            var token = Token(Now);
            Assert.True((await validator.ValidateAsync(provider, token, Ct)).Succeeded);

            // Same keys re-read: same version, still a hit.
            await source.RefreshAsync(Ct);
            Assert.True((await validator.ValidateAsync(provider, token, Ct)).Succeeded);
            Assert.Equal(1, validator.Verifications);

            // k1 removed: the cached success must not outlive the key.
            await File.WriteAllTextAsync(path, Jwks(Rsa(Rsa2, "k2")), Ct);
            await source.RefreshAsync(Ct);
            Assert.Equal(JwtFailureReason.UnknownKey, (await validator.ValidateAsync(provider, token, Ct)).Failure);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
