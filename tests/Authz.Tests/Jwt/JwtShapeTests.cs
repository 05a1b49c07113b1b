using System.Buffers.Text;
using Legate.Authz.Jwt;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

/// <summary>
/// The compact-serialisation check (three base64url segments, header and payload not empty) against the character loop
/// it was before it was vectorised, with every kind of bad character in every segment; and the signature, decoded from
/// the token's bytes, against decoding its chars.
/// </summary>
public sealed class JwtShapeTests : JwtValidatorTestBase
{
    [Fact]
    public async Task Shape_AnyBadCharacterOrDotCount_IsMalformed_AsTheCharacterLoopSaid()
    {
        var parts = Token(Now).Split('.');
        var bad = new[] { "=", "+", "/", " ", "\t", "é", "\0", "\u2024", ".", "%", "~", "\uD800" };
        var tokens = new List<string>
        {
            "", ".", "..", "...", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.", ".." + parts[2], parts[0] + ".." + parts[2],
            parts[0] + "." + parts[1] + ".", parts[0] + "." + parts[1] + "." + parts[2] + ".", "." + parts[1] + "." + parts[2],
        };
        foreach (var c in bad)
        {
            for (var segment = 0; segment < 3; segment++)
            {
                foreach (var at in new[] { 0, 1, -1 })
                {
                    var edited = (string[])parts.Clone();
                    var s = edited[segment];
                    var i = at < 0 ? s.Length : at;
                    edited[segment] = s[..i] + c + s[i..];
                    tokens.Add(string.Join('.', edited));
                }
            }
        }
        foreach (var token in tokens)
        {
            var expected = WellShaped(token, out var headerEnd, out var payloadEnd);
            Assert.True(expected == (JwtValidator.CheckShape(token, out var h, out var p) == JwtFailureReason.None), token);
            if (expected)
                Assert.Equal((headerEnd, payloadEnd), (h, p));
        }
        Assert.Equal(JwtFailureReason.BadSignature, await FailureAsync(parts[0] + "." + parts[1] + "."));
        Assert.True((await Validator.ValidateAsync(DefaultProvider, string.Join('.', parts), Ct)).Succeeded);
    }

    [Fact]
    public async Task SignatureEncoding_EveryLastCharacterAndLength_AnswersAsDecodingTheCharsSaid()
    {
        var token = Token(Now);
        var dot = token.LastIndexOf('.');
        var signature = Base64Url.DecodeFromChars(token.AsSpan(dot + 1));
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        var variants = Alphabet.Select(c => token[..^1] + c).Append(token[..^1]).Append(token + "A").Append(token + "AA").Append(token[..^2]);
        foreach (var variant in variants)
        {
            // Accepted exactly when the chars decode (as Base64Url.TryDecodeFromChars does) to the signed bytes.
            var buffer = new byte[512];
            bool decodes;
            try
            {
                decodes = Base64Url.TryDecodeFromChars(variant.AsSpan(dot + 1), buffer, out var written) && buffer.AsSpan(0, written).SequenceEqual(signature);
            }
            catch (FormatException)
            {
                decodes = false;
            }
            var result = await Validator.ValidateAsync(DefaultProvider, variant, Ct);
            Assert.True(decodes == result.Succeeded, $"{variant[(dot + 1)..]}: {result}");
            if (!decodes)
                Assert.Equal(JwtFailureReason.BadSignature, result.Failure);
        }
    }

    [Fact]
    public async Task Header_EscapedOrUnusualAlgAndTyp_AreReadAsTheyDecode()
    {
        var typed = Provider(Options(DefaultJwks) with { RequireTyp = "at+jwt" }, Time);
        Assert.True((await Validator.ValidateAsync(DefaultProvider, SignRsa(Rsa1, """{"alg":"\u0052S256","typ":"\u004aWT","kid":"k1"}""", Payload(Now)), Ct)).Succeeded);
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(SignRsa(Rsa1, """{"alg":"rs256","kid":"k1"}""", Payload(Now))));
        Assert.Equal(JwtFailureReason.BadAlgorithm, await FailureAsync(SignRsa(Rsa1, """{"alg":"RS256 ","kid":"k1"}""", Payload(Now))));
        Assert.True((await Validator.ValidateAsync(typed, SignRsa(Rsa1, """{"alg":"RS256","typ":"application/at+JWT","kid":"k1"}""", Payload(Now)), Ct)).Succeeded);
        Assert.True((await Validator.ValidateAsync(typed, SignRsa(Rsa1, """{"alg":"RS256","typ":"at\u002bjwt","kid":"k1"}""", Payload(Now)), Ct)).Succeeded);
        Assert.Equal(JwtFailureReason.WrongType, (await Validator.ValidateAsync(typed, SignRsa(Rsa1, """{"alg":"RS256","typ":"JWT","kid":"k1"}""", Payload(Now)), Ct)).Failure);
    }

    /// <summary>The check as a character loop (the validator's before it was vectorised).</summary>
    private static bool WellShaped(string token, out int headerEnd, out int payloadEnd)
    {
        var dots = 0;
        headerEnd = payloadEnd = -1;
        for (var i = 0; i < token.Length; i++)
        {
            var c = token[i];
            if (c == '.')
            {
                if (++dots == 1)
                    headerEnd = i;
                else if (dots == 2)
                    payloadEnd = i;
                else
                    return false;
            }
            else if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '_')
            {
                return false;
            }
        }
        return dots == 2 && headerEnd != 0 && payloadEnd != headerEnd + 1;
    }
}
