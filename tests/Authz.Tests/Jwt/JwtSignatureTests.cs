using System.Security.Cryptography;
using Legate.Authz.Jwt;
using Microsoft.Extensions.Time.Testing;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

/// <summary>
/// The validator's own signature and claim checks (it verifies through the key's cached IdentityModel signature
/// provider and parses the payload itself, not through JsonWebTokenHandler).
/// </summary>
public sealed class JwtSignatureTests : JwtValidatorTestBase
{
    private static string WithSignature(string token, byte[] signature) => token[..(token.LastIndexOf('.') + 1)] + B64(signature);

    private static byte[] SignatureOf(string token) => System.Buffers.Text.Base64Url.DecodeFromChars(token.AsSpan(token.LastIndexOf('.') + 1));

    [Fact]
    public async Task Rsa_TruncatedOrExtendedSignature_IsRejected()
    {
        var valid = Token(Now);
        Assert.True((await Validator.ValidateAsync(DefaultProvider, valid, Ct)).Succeeded);
        var signature = SignatureOf(valid);
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(WithSignature(valid, signature[..^1])));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(WithSignature(valid, [0, .. signature])));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(WithSignature(valid, [.. signature, 0])));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(WithSignature(valid, new byte[signature.Length])));
    }

    [Fact]
    public async Task Rsa_SignedByAnotherKeyOfTheSet_IsRejected()
    {
        var provider = Provider(Options(Jwks(Rsa(Rsa1, "k1"), Rsa(Rsa2, "k2"))), Time);
        Assert.True((await Validator.ValidateAsync(provider, Token(Now, kid: "k2", key: Rsa2), Ct)).Succeeded);
        Assert.True((await Validator.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        // Each key's cached verifier is its own: a k1 signature under kid k2 fails, in either order.
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(Token(Now, kid: "k2", key: Rsa1), provider));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(Token(Now, kid: "k1", key: Rsa2), provider));
    }

    [Fact]
    public async Task Hmac_FullSignatureOnly()
    {
        var secret = new byte[32];
        RandomNumberGenerator.Fill(secret);
        var jwks = Jwks(new Dictionary<string, object?> { ["kty"] = "oct", ["kid"] = "s1", ["k"] = B64(secret) });
        var provider = Provider(Options(jwks) with { Algorithms = ["HS256"] }, Time);
        var valid = SignHmac(secret, Header("HS256", "s1"), Payload(Now));
        var result = await Validator.ValidateAsync(provider, valid, Ct);
        Assert.True(result.Succeeded, result.ToString());

        var signature = SignatureOf(valid);
        // A truncated HMAC must not verify as a prefix match.
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(WithSignature(valid, signature[..16]), provider));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(WithSignature(valid, [.. signature, 0]), provider));
        var flipped = (byte[])signature.Clone();
        flipped[^1] ^= 1;
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(WithSignature(valid, flipped), provider));
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(SignHmac(new byte[32], Header("HS256", "s1"), Payload(Now)), provider));
    }

    [Fact]
    public async Task Claims_TypesAreChecked()
    {
        Assert.Equal(JwtFailureReason.WrongIssuer, await FailureAsync(Token(Now, c => c["iss"] = 42)));
        Assert.Equal(JwtFailureReason.WrongIssuer, await FailureAsync(Token(Now, c => c["iss"] = new[] { Issuer })));
        Assert.Equal(JwtFailureReason.WrongIssuer, await FailureAsync(Token(Now, c => c["iss"] = Issuer.ToUpperInvariant())));
        Assert.Equal(JwtFailureReason.WrongAudience, await FailureAsync(Token(Now, c => c["aud"] = new Dictionary<string, string> { ["aud"] = Audience })));
        Assert.Equal(JwtFailureReason.WrongAudience, await FailureAsync(Token(Now, c => c["aud"] = new object[] { 1, new[] { Audience } })));
        Assert.Equal(JwtFailureReason.WrongAudience, await FailureAsync(Token(Now, c => c["aud"] = Array.Empty<string>())));
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(Token(Now, c => c["exp"] = "2000000000")));
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(Token(Now, c => c["exp"] = 1e300)));
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(Token(Now, c => c["nbf"] = true)));
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(Token(Now, c => c["iat"] = null)));

        // A fractional NumericDate is allowed and truncated.
        var fractional = await Validator.ValidateAsync(DefaultProvider, Token(Now, c => c["exp"] = Unix(Now) + 600.75), Ct);
        Assert.True(fractional.Succeeded, fractional.ToString());
        Assert.Equal(Now.AddSeconds(600), fractional.Identity!.ExpiresAt);
    }

    [Fact]
    public async Task ManyThreads_ShareTheCachedVerifiers()
    {
        var provider = Provider(Options(Jwks(Rsa(Rsa1, "k1"), Rsa(Rsa2, "k2"))), Time);
        var good = new[] { Token(Now), Token(Now, kid: "k2", key: Rsa2) };
        var bad = new[] { Token(Now, kid: "k2", key: Rsa1), Token(Now, kid: "k1", key: Rsa2) };
        var failures = 0;
        await Parallel.ForAsync(0, 400, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = Ct }, async (i, ct) =>
        {
            var token = i % 2 == 0 ? good[i / 2 % 2] : bad[i / 2 % 2];
            var result = await Validator.ValidateAsync(provider, token, ct);
            if (result.Succeeded != (i % 2 == 0))
                Interlocked.Increment(ref failures);
        });
        Assert.Equal(0, failures);
        Assert.Equal(400, Validator.Verifications);
    }

    [Fact]
    public async Task NonAsciiToken_IsRefusedBeforeVerifying()
    {
        var token = Token(Now);
        var dot = token.IndexOf('.', StringComparison.Ordinal);
        Assert.Equal(JwtFailureReason.Malformed, await FailureAsync(token[..dot] + "\u00e9" + token[dot..]));
        Assert.Equal(0, Validator.Verifications);
    }
}
