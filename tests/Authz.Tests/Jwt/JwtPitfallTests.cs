using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Legate.Authz.Jwt;
using Microsoft.Extensions.Time.Testing;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

/// <summary>Research c.1, J1–J25: each pitfall as a bad-input test at the validator (or locator / key source) level.</summary>
public sealed class JwtPitfallTests : JwtValidatorTestBase
{
    private static readonly string[] ScpArray = ["a", "b"];
    private static readonly string[] CritExp = ["exp"];
    private static readonly string[] CritUrn = ["urn:x"];

    [Fact]
    public async Task Baseline_ValidRs256AndEs256_Succeed()
    {
        var result = await Validator.ValidateAsync(DefaultProvider, Token(Now), Ct);
        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("alice", result.Identity!.Subject);
        Assert.Equal(Issuer, result.Identity.Issuer);
        Assert.Equal(Audience, result.Identity.Audience);
        Assert.Equal(["orders:read", "orders:write"], result.Identity.Scopes);
        Assert.Equal("alice", result.Identity.Claims["sub"]);
        Assert.Equal(Unix(Now).ToString(System.Globalization.CultureInfo.InvariantCulture), result.Identity.Claims["iat"]);

        var ec = SignEc(Ec1, Header("ES256", "e1"), Payload(Now, c => { c.Remove("scope"); c["scp"] = ScpArray; }));
        var ecResult = await Validator.ValidateAsync(DefaultProvider, ec, Ct);
        Assert.True(ecResult.Succeeded, ecResult.ToString());
        Assert.Equal(["a", "b"], ecResult.Identity!.Scopes);
    }

    [Fact]
    public async Task J1_AlgNone_UnsignedToken_IsRejected()
    {
        var token = B64(Header("none", "k1")) + "." + B64(Payload(Now)) + ".";
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(token));
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(B64(Header("None", "k1")) + "." + B64(Payload(Now)) + "."));
        Assert.Equal(0, Validator.Verifications);
    }

    [Fact]
    public async Task J2_Hs256SignedWithThePublicKeyPem_IsRejected()
    {
        var pem = Encoding.ASCII.GetBytes(Rsa1.ExportSubjectPublicKeyInfoPem());
        var der = Rsa1.ExportSubjectPublicKeyInfo();
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(SignHmac(pem, Header("HS256", "k1"), Payload(Now))));
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(SignHmac(der, Header("HS256", "k1"), Payload(Now))));
        Assert.DoesNotContain(DefaultProvider.Options.Algorithms, a => a.StartsWith("HS", StringComparison.Ordinal));

        var mixed = Options(DefaultJwks) with { Algorithms = ["RS256", "HS256"] };
        Assert.Contains(JwtProviderOptionsValidator.Validate(mixed, "providers[0]"), e => e.StartsWith("providers[0].algorithms:", StringComparison.Ordinal));
        Assert.Throws<ArgumentException>(() => Provider(mixed, Time));
    }

    [Fact]
    public async Task J3_AlgorithmOutsideTheAllowList_IsRejected()
    {
        var rs384 = SignRsa(Rsa1, Header("RS384", "k1"), Payload(Now), hash: HashAlgorithmName.SHA384);
        var ps256 = SignRsa(Rsa1, Header("PS256", "k1"), Payload(Now), RSASignaturePadding.Pss);
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(rs384));
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(ps256));
        // An allowed alg that does not fit the key the kid names (RSA key, ES256 token) is refused too.
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(SignEc(Ec1, Header("ES256", "k1"), Payload(Now))));
        Assert.Equal(0, Validator.Verifications);
    }

    // J4 (unknown-kid storm and rotation against a real endpoint) is in JwksSourceTests.

    [Fact]
    public async Task J5_NoKidWithSeveralKeys_IsRejectedWithoutTryingEveryKey()
    {
        var keys = Enumerable.Range(0, 10).Select(i => Rsa(i == 0 ? Rsa1 : Rsa2, $"k{i}")).ToArray();
        var provider = Provider(Options(Jwks(keys)), Time);
        var token = Token(Now, kid: null);
        Assert.Equal(JwtFailureReason.UnknownKey, await FailureAsync(token, provider));
        Assert.Equal(0, Validator.Verifications);

        // With exactly one key a missing kid is unambiguous.
        var single = Provider(Options(Jwks(Rsa(Rsa1, "k1"))), Time);
        Assert.True((await Validator.ValidateAsync(single, token, Ct)).Succeeded);
    }

    [Theory]
    [InlineData("../../../../dev/null")]
    [InlineData("' OR '1'='1")]
    [InlineData("k1\u0000")]
    [InlineData("K1")]
    public async Task J6_KidIsOnlyADictionaryKey(string kid)
    {
        Assert.Equal(JwtFailureReason.UnknownKey, await FailureAsync(Token(Now, kid: kid)));
    }

    [Fact]
    public async Task J6_HugeKid_IsRejectedWithoutAFetch()
    {
        var handler = new RecordingHandler(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(DefaultJwks) });
        var options = Options(DefaultJwks) with { InlineJwks = null, JwksUri = new Uri("https://issuer.example.com/jwks"), MaxTokenBytes = 64 * 1024 };
        var provider = Provider(options, Time, new HttpClient(handler));
        await provider.Keys.RefreshAsync(Ct);
        Time.Advance(TimeSpan.FromMinutes(1));

        // A 10 KB kid makes the header too long to parse; a 300-character one can name no key. Neither triggers a fetch.
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(Token(Now, kid: new string('a', 10_000)), provider));
        Assert.Equal(JwtFailureReason.UnknownKey, await FailureAsync(Token(Now, kid: new string('a', 300)), provider));
        Assert.Single(handler.Requests);
    }

    [Fact]
    public async Task J7_KeysNamedByTheTokenAreNeverUsedNorFetched()
    {
        var handler = new RecordingHandler(_ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(DefaultJwks) });
        var options = Options(DefaultJwks) with { InlineJwks = null, JwksUri = new Uri("https://issuer.example.com/jwks") };
        var provider = Provider(options, Time, new HttpClient(handler));
        await provider.Keys.RefreshAsync(Ct);
        Time.Advance(TimeSpan.FromMinutes(1));

        var attackerJwk = Rsa(Attacker, "evil");
        var evil = Token(Now, key: Attacker, kid: "k1", header: h =>
        {
            h["jwk"] = attackerJwk;
            h["jku"] = "https://evil.example/jwks";
            h["x5u"] = "https://evil.example/cert";
            h["x5c"] = new[] { Convert.ToBase64String(Attacker.ExportSubjectPublicKeyInfo()) };
        });
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(evil, provider));
        var evilKid = Token(Now, key: Attacker, kid: "evil", header: h => h["jwk"] = attackerJwk);
        Assert.Equal(JwtFailureReason.UnknownKey, await FailureAsync(evilKid, provider));
        Assert.All(handler.Requests, uri => Assert.Equal("issuer.example.com", uri.Host));
    }

    [Fact]
    public async Task J8_CritHeader_IsRejectedOnAValidlySignedToken()
    {
        Assert.Equal(JwtFailureReason.CritHeader, await FailureAsync(Token(Now, header: h => h["crit"] = CritExp)));
        Assert.Equal(JwtFailureReason.CritHeader, await FailureAsync(Token(Now, header: h => h["crit"] = CritUrn)));
    }

    [Fact]
    public async Task J9_ClockSkewBoundary()
    {
        var token = Token(Now - TimeSpan.FromMinutes(10), c => c["exp"] = Unix(Now));
        Time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(JwtFailureReason.None, await FailureAsync(token));
        Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(JwtFailureReason.Expired, await FailureAsync(token));
    }

    [Fact]
    public async Task J10_NotBeforeInTheFuture_IsRejected()
    {
        Assert.Equal(JwtFailureReason.NotYetValid, await FailureAsync(Token(Now, c => c["nbf"] = Unix(Now + TimeSpan.FromMinutes(5)))));
        // Within the skew it is accepted.
        Assert.Equal(JwtFailureReason.None, await FailureAsync(Token(Now, c => c["nbf"] = Unix(Now + TimeSpan.FromSeconds(30)))));
    }

    [Fact]
    public async Task J11_IssuedInTheFuture_IsRejected()
    {
        Assert.Equal(JwtFailureReason.IssuedInFuture, await FailureAsync(Token(Now, c =>
        {
            c["iat"] = Unix(Now + TimeSpan.FromHours(1));
            c["exp"] = Unix(Now + TimeSpan.FromHours(2));
        })));
    }

    [Fact]
    public async Task J12_MissingExp_IsRejected()
    {
        Assert.Equal(JwtFailureReason.Expired, await FailureAsync(Token(Now, c => c.Remove("exp"))));
    }

    [Fact]
    public async Task J13_LifetimeOverTheMaximum_IsRejected()
    {
        var provider = Provider(Options(DefaultJwks) with { MaxLifetime = TimeSpan.FromHours(24) }, Time);
        Assert.Equal(JwtFailureReason.LifetimeTooLong, await FailureAsync(Token(Now, c => c["exp"] = Unix(Now + TimeSpan.FromDays(30))), provider));
        // Without iat/nbf, exp - now is what counts.
        Assert.Equal(JwtFailureReason.LifetimeTooLong, await FailureAsync(Token(Now, c =>
        {
            c.Remove("iat");
            c.Remove("nbf");
            c["exp"] = Unix(Now + TimeSpan.FromDays(30));
        }), provider));
        Assert.Equal(JwtFailureReason.None, await FailureAsync(Token(Now, c => c["exp"] = Unix(Now + TimeSpan.FromHours(23))), provider));
    }

    [Fact]
    public async Task J14_OtherIssuer_IsRejected()
    {
        Assert.Equal(JwtFailureReason.WrongIssuer, await FailureAsync(Token(Now, c => c["iss"] = "https://tenant-b.example.com")));
        Assert.Equal(JwtFailureReason.WrongIssuer, await FailureAsync(Token(Now, c => c["iss"] = Issuer + "/")));
        Assert.Equal(JwtFailureReason.WrongIssuer, await FailureAsync(Token(Now, c => c.Remove("iss"))));
    }

    [Fact]
    public async Task J15_Audience()
    {
        Assert.Equal(JwtFailureReason.WrongAudience, await FailureAsync(Token(Now, c => c["aud"] = "other-api")));
        Assert.Equal(JwtFailureReason.WrongAudience, await FailureAsync(Token(Now, c => c["aud"] = Audience + "/")));
        Assert.Equal(JwtFailureReason.WrongAudience, await FailureAsync(Token(Now, c => c.Remove("aud"))));
        var both = await Validator.ValidateAsync(DefaultProvider, Token(Now, c => c["aud"] = new[] { "other", Audience }), Ct);
        Assert.True(both.Succeeded);
        Assert.Equal(Audience, both.Identity!.Audience);
    }

    [Fact]
    public async Task J16_TokenTypeConfusion()
    {
        var provider = Provider(Options(DefaultJwks) with { RequireTyp = "at+jwt" }, Time);
        Assert.Equal(JwtFailureReason.WrongType, await FailureAsync(Token(Now), provider));
        Assert.Equal(JwtFailureReason.WrongType, await FailureAsync(Token(Now, header: h => h.Remove("typ")), provider));
        Assert.Equal(JwtFailureReason.None, await FailureAsync(Token(Now, header: h => h["typ"] = "at+jwt"), provider));
        Assert.Equal(JwtFailureReason.None, await FailureAsync(Token(Now, header: h => h["typ"] = "application/AT+JWT"), provider));
    }

    [Fact]
    public async Task J17_OversizedToken_IsRejectedBeforeAnyDecoding()
    {
        var token = Token(Now, c => c["pad"] = new string('x', 64 * 1024));
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 1000; i++)
            Assert.Equal(JwtFailureReason.TooLarge, await FailureAsync(token));
        watch.Stop();
        Assert.Equal(0, Validator.Verifications);
        // 1000 rejections: generous bound (CI machines vary), still far below one decode of 64 KiB each.
        Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(500), watch.Elapsed.ToString());
    }

    [Fact]
    public async Task J18_MalformedCompactSerialisation()
    {
        var valid = Token(Now);
        var parts = valid.Split('.');
        string[] bad =
        [
            parts[0] + "." + parts[1],
            valid + "." + parts[2],
            valid + ".a.b",
            parts[0] + "=." + parts[1] + "." + parts[2],
            valid.Replace('-', '+').Replace('_', '/') + "+/",
            valid + "é",
            "é" + valid,
            "." + parts[1] + "." + parts[2],
            parts[0] + ".." + parts[2],
            "a.b.c",
            B64("not json") + "." + parts[1] + "." + parts[2],
            B64("[\"alg\",\"RS256\"]") + "." + parts[1] + "." + parts[2],
            B64(Header("RS256", "k1")) + "." + B64("not json") + "." + parts[2],
            B64(Header("RS256", "k1")) + "." + B64(new byte[] { 0xC3, 0x28, 0xFF }) + "." + parts[2],
            " " + valid,
            "a" + valid,
            parts[0] + "a." + parts[1] + "." + parts[2],
        ];
        foreach (var token in bad)
        {
            var result = await Validator.ValidateAsync(DefaultProvider, token, Ct);
            Assert.False(result.Succeeded, token);
        }
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(parts[0] + "." + parts[1]));
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(valid + ".a.b"));
    }

    [Fact]
    public async Task J19_HostileJson()
    {
        var dupAlg = B64("{\"alg\":\"RS256\",\"kid\":\"k1\",\"alg\":\"none\"}");
        var signedDup = SignRsa(Rsa1, "{\"alg\":\"RS256\",\"kid\":\"k1\",\"alg\":\"RS256\"}", Payload(Now));
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(dupAlg + "." + B64(Payload(Now)) + "."));
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(signedDup));

        var dupClaim = SignRsa(Rsa1, Header("RS256", "k1"), Payload(Now).TrimEnd('}') + ",\"sub\":\"admin\"}");
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(dupClaim));

        var deepProvider = Provider(Options(DefaultJwks) with { MaxTokenBytes = 64 * 1024 }, Time);
        var deep = Payload(Now).TrimEnd('}') + ",\"deep\":" + new string('[', 10_000) + new string(']', 10_000) + "}";
        Assert.False((await Validator.ValidateAsync(deepProvider, SignRsa(Rsa1, Header("RS256", "k1"), deep), Ct)).Succeeded);
        var deepHeader = "{\"alg\":\"RS256\",\"kid\":\"k1\",\"x\":" + new string('[', 1000) + new string(']', 1000) + "}";
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(SignRsa(Rsa1, deepHeader, Payload(Now)), deepProvider));

        var huge = Token(Now, c => c["blob"] = new string('x', 1024 * 1024));
        Assert.Equal(JwtFailureReason.TooLarge, await FailureAsync(huge));

        var bigExp = SignRsa(Rsa1, Header("RS256", "k1"), Payload(Now, c => c.Remove("exp")).TrimEnd('}') + ",\"exp\":1e999}");
        Assert.False((await Validator.ValidateAsync(DefaultProvider, bigExp, Ct)).Succeeded);
        var stringExp = Token(Now, c => c["exp"] = "tomorrow");
        Assert.False((await Validator.ValidateAsync(DefaultProvider, stringExp, Ct)).Succeeded);
    }

    [Fact]
    public async Task J20_BitFlipsAndStrippedSignatures()
    {
        var valid = Token(Now);
        var flipped = valid[..^1] + (valid[^1] == 'A' ? 'B' : 'A');
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(flipped));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(valid[..(valid.LastIndexOf('.') + 1)]));
        var parts = valid.Split('.');
        var otherPayload = B64(Payload(Now, c => c["sub"] = "admin"));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(parts[0] + "." + otherPayload + "." + parts[2]));
    }

    [Fact]
    public async Task J21_EcdsaAllZeroSignature_IsRejected()
    {
        var input = B64(Header("ES256", "e1")) + "." + B64(Payload(Now));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(input + "." + B64(new byte[64])));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(input + "." + B64(new byte[1])));
    }

    [Fact]
    public async Task J22_WeakOrMisusedJwksKeys_AreIgnored()
    {
        using var weak = RSA.Create(1024);
        var jwks = Jwks(
            Rsa(Rsa1, "good"),
            new Dictionary<string, object?> { ["kty"] = "oct", ["kid"] = "oct", ["k"] = B64(new byte[32]) },
            Rsa(weak, "weak"),
            Rsa(Rsa2, "enc", use: "enc"),
            Rsa(Rsa2, "ps-only", alg: "PS512"));
        var provider = Provider(Options(jwks), Time);
        Assert.Equal(["good"], provider.Keys.Current!.Keys.Select(k => k.Kid));

        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(SignHmac(new byte[32], Header("HS256", "oct"), Payload(Now)), provider));
        Assert.Equal(JwtFailureReason.UnknownKey, await FailureAsync(Token(Now, kid: "oct"), provider));
        Assert.Equal(JwtFailureReason.UnknownKey, await FailureAsync(Token(Now, key: weak, kid: "weak"), provider));
        Assert.Equal(JwtFailureReason.UnknownKey, await FailureAsync(Token(Now, key: Rsa2, kid: "enc"), provider));
        Assert.Equal(JwtFailureReason.None, await FailureAsync(Token(Now, kid: "good"), provider));

        // A JWKS with no usable key is a configuration error, not an empty key set.
        Assert.Throws<ArgumentException>(() => Provider(Options(Jwks(Rsa(weak, "weak"))), Time));
    }

    [Theory]
    [InlineData("Bearer a.b.c,Bearer d.e.f", TokenLookupStatus.Ambiguous)]
    [InlineData("Bearer a.b.c,d.e.f", TokenLookupStatus.Ambiguous)]
    [InlineData("Basic dXNlcg==,Bearer a.b.c", TokenLookupStatus.Ambiguous)]
    [InlineData("Bearer  ", TokenLookupStatus.Malformed)]
    [InlineData("Bearer", TokenLookupStatus.Malformed)]
    [InlineData("Bearer a.b.c d.e.f", TokenLookupStatus.Malformed)]
    [InlineData("Bearer a.b\tc", TokenLookupStatus.Malformed)]
    [InlineData("Bearer a.b!c", TokenLookupStatus.Malformed)]
    [InlineData("Basic dXNlcg==", TokenLookupStatus.Missing)]
    [InlineData("bearer a.b.c", TokenLookupStatus.Found)]
    [InlineData("BEARER   a.b.c", TokenLookupStatus.Found)]
    public void J23_BearerParsing(string authorization, TokenLookupStatus expected)
    {
        var lookup = TokenLocator.Default.Locate(new Dictionary<string, string> { ["authorization"] = authorization }, "/");
        Assert.Equal(expected, lookup.Status);
        if (expected == TokenLookupStatus.Found)
            Assert.Equal("a.b.c", lookup.Token);
    }

    [Fact]
    public void J24_TokensInSeveralLocations_MustAgree()
    {
        var locator = new TokenLocator([TokenSource.Bearer, new TokenSource(TokenSourceKind.Query, "access_token"), new TokenSource(TokenSourceKind.Cookie, "session")]);
        var headers = new Dictionary<string, string> { ["authorization"] = "Bearer a.b.c" };
        Assert.Equal(TokenLookupStatus.Ambiguous, locator.Locate(headers, "/orders?access_token=garbage").Status);
        Assert.Equal(TokenLookupStatus.Ambiguous, locator.Locate(headers, "/orders?access_token=a.b.c&access_token=x.y.z").Status);
        Assert.Equal(TokenLookupStatus.Found, locator.Locate(headers, "/orders?access_token=a.b.c").Status);
        Assert.Equal(TokenLookupStatus.Found, locator.Locate(headers, "/orders?page=2").Status);
        Assert.Equal(TokenLookupStatus.Malformed, locator.Locate(headers, "/orders?access_token=").Status);
        headers["cookie"] = "theme=dark; session=d.e.f";
        Assert.Equal(TokenLookupStatus.Ambiguous, locator.Locate(headers, "/orders").Status);
    }

    [Fact]
    public async Task J25_ColdStartWithTheEndpointDown_FailsClosed()
    {
        var handler = new RecordingHandler(_ => new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));
        var options = Options(DefaultJwks) with { InlineJwks = null, JwksUri = new Uri("https://issuer.example.com/jwks") };
        var provider = Provider(options, Time, new HttpClient(handler));
        Assert.Equal(JwtFailureReason.KeysUnavailable, await FailureAsync(Token(Now), provider));
        Assert.Equal(JwtFailureReason.KeysUnavailable, await FailureAsync(Token(Now), provider));
        // The second request within MinRefetchInterval did not hit the endpoint again.
        Assert.Single(handler.Requests);
        // Last-good-keys behaviour against a real endpoint is in JwksSourceTests.
    }

    [Fact]
    public async Task FailureDescriptions_NeverContainTokenMaterial()
    {
        var token = Token(Now, c => c["iss"] = "https://secret-issuer.internal");
        var result = await Validator.ValidateAsync(DefaultProvider, token, Ct);
        Assert.Equal(JwtFailureReason.WrongIssuer, result.Failure);
        Assert.DoesNotContain("secret-issuer", result.Description, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Split('.')[1][..10], result.ToString(), StringComparison.Ordinal);
    }
}
