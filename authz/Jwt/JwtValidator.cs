using System.Buffers.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Legate.Authz.Jwt;

/// <summary>
/// Validates compact JWS tokens for a <see cref="JwtProvider"/>. Order, cheapest and least trusting first:
/// <list type="number">
/// <item>size cap (before any decoding), then a validated-token cache lookup;</item>
/// <item>shape: exactly three base64url segments (no padding, no '+' '/', no JWE);</item>
/// <item>header, parsed here with duplicate-member and depth checks: <c>alg</c> in the provider's list (never none),
/// no <c>crit</c>, <c>typ</c> when configured. <c>jku</c>, <c>x5u</c>, <c>jwk</c>, <c>x5c</c> are never used: keys come
/// only from the provider's JWKS, and <c>kid</c> is only a dictionary key;</item>
/// <item>key selection: by <c>kid</c> (one throttled JWKS re-fetch on an unknown kid); without a kid only when the JWKS
/// holds exactly one key; the key's type (and its own <c>alg</c>) must fit the token's alg;</item>
/// <item>JsonWebTokenHandler with that one key: signature, issuer, audience, exp/nbf (TimeProvider, provider skew);</item>
/// <item><c>iat</c> not in the future, max lifetime.</item>
/// </list>
/// </summary>
public sealed class JwtValidator
{
    /// <summary>Longest accepted <c>kid</c>; a longer one can name no key and triggers no fetch.</summary>
    public const int MaxKidLength = 256;

    private const int MaxHeaderChars = 4096;
    private static readonly JsonReaderOptions HeaderReaderOptions = new() { MaxDepth = 8 };
    private static readonly JsonDocumentOptions PayloadOptions = new() { MaxDepth = 32 };

    private readonly TimeProvider _time;
    private readonly ValidatedTokenCache? _cache;
    private readonly JsonWebTokenHandler _handler = new()
    {
        // Our per-provider cap (MaxTokenBytes, at most 64 KiB) is checked first; this is a backstop.
        MaximumTokenSizeInBytes = 64 * 1024,
        MapInboundClaims = false,
    };

    private long _verifications;

    public JwtValidator(TimeProvider time, ValidatedTokenCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _cache = cache;
    }

    /// <summary>Signature verifications performed (cache misses that reached the handler).</summary>
    public long Verifications => Interlocked.Read(ref _verifications);

    public ValueTask<JwtResult> ValidateAsync(JwtProvider provider, string? token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(provider);
        if (string.IsNullOrEmpty(token))
            return new ValueTask<JwtResult>(JwtResult.Fail(JwtFailureReason.Missing));
        if (token.Length > provider.Options.MaxTokenBytes)
            return new ValueTask<JwtResult>(JwtResult.Fail(JwtFailureReason.TooLarge));

        // Cache hit: one SHA-256 and one lookup, no signature check and no allocation.
        var keys = provider.Keys.Current;
        if (_cache is not null && keys is not null
            && _cache.TryGet(TokenCacheKey.Compute(provider.Id, token), keys.Version, out var hit))
            return new ValueTask<JwtResult>(hit!);

        var shape = CheckShape(token, out var headerEnd, out var payloadEnd);
        if (shape != JwtFailureReason.None)
            return new ValueTask<JwtResult>(JwtResult.Fail(shape));
        var header = ReadHeader(token.AsSpan(0, headerEnd), out var alg, out var kid, out var typ);
        if (header != JwtFailureReason.None)
            return new ValueTask<JwtResult>(JwtResult.Fail(header));
        var headerResult = CheckHeader(provider, alg, typ);
        if (headerResult != JwtFailureReason.None)
            return new ValueTask<JwtResult>(JwtResult.Fail(headerResult));
        if (payloadEnd == token.Length - 1)
            return new ValueTask<JwtResult>(JwtResult.Fail(JwtFailureReason.BadSignature));
        return ValidateSignedAsync(provider, token, alg!, kid, cancellationToken);
    }

    private async ValueTask<JwtResult> ValidateSignedAsync(JwtProvider provider, string token, string alg, string? kid, CancellationToken cancellationToken)
    {
        var keys = provider.Keys.Current ?? await provider.Keys.GetAsync(cancellationToken).ConfigureAwait(false);
        if (keys is null)
            return JwtResult.Fail(JwtFailureReason.KeysUnavailable);

        var selected = SelectKey(keys, alg, kid, out var reason);
        if (selected is null && reason == JwtFailureReason.UnknownKey && kid is not null && kid.Length <= MaxKidLength)
        {
            // A kid we do not know may be a rotation: re-fetch (throttled, single-flight) and look once more.
            var refreshed = await provider.Keys.RefetchAsync(cancellationToken).ConfigureAwait(false);
            if (refreshed is not null && !ReferenceEquals(refreshed, keys))
            {
                keys = refreshed;
                selected = SelectKey(keys, alg, kid, out reason);
            }
        }
        if (selected is null)
            return JwtResult.Fail(reason);

        Interlocked.Increment(ref _verifications);
        TokenValidationResult validation;
        try
        {
            validation = await _handler.ValidateTokenAsync(token, selected.ParametersFor(provider.Template)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or JsonException or FormatException or OverflowException or SecurityTokenException)
        {
            return JwtResult.Fail(JwtFailureReason.Malformed);
        }
        if (!validation.IsValid || validation.SecurityToken is not JsonWebToken jwt)
            return JwtResult.Fail(MapFailure(validation.Exception));

        JwtResult result;
        try
        {
            result = CheckTimesAndBuild(provider, jwt);
        }
        catch (Exception e) when (e is ArgumentException or JsonException or FormatException or OverflowException or SecurityTokenException or InvalidOperationException)
        {
            return JwtResult.Fail(JwtFailureReason.Malformed);
        }
        if (result.Succeeded && _cache is not null)
            _cache.Add(TokenCacheKey.Compute(provider.Id, token), keys.Version, result, result.Identity!.ExpiresAt);
        return result;
    }

    private JwtResult CheckTimesAndBuild(JwtProvider provider, JsonWebToken jwt)
    {
        var options = provider.Options;
        var now = _time.GetUtcNow();
        var expires = new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidTo, DateTimeKind.Utc));
        var issuedAt = jwt.IssuedAt == DateTime.MinValue ? (DateTimeOffset?)null : new DateTimeOffset(DateTime.SpecifyKind(jwt.IssuedAt, DateTimeKind.Utc));
        var notBefore = jwt.ValidFrom == DateTime.MinValue ? (DateTimeOffset?)null : new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidFrom, DateTimeKind.Utc));

        // Boundaries: exp = now - skew is still accepted, one tick later is not (Envoy's and IdentityModel's convention).
        if (now > expires + options.ClockSkew)
            return JwtResult.Fail(JwtFailureReason.Expired);
        if (notBefore > now + options.ClockSkew)
            return JwtResult.Fail(JwtFailureReason.NotYetValid);
        if (issuedAt > now + options.ClockSkew)
            return JwtResult.Fail(JwtFailureReason.IssuedInFuture);
        if (options.MaxLifetime is { } max)
        {
            var start = issuedAt ?? notBefore;
            if ((start is { } s && expires - s > max) || expires - now > max + options.ClockSkew)
                return JwtResult.Fail(JwtFailureReason.LifetimeTooLong);
        }

        string? audience = null;
        foreach (var aud in jwt.Audiences)
        {
            if (provider.Audiences.Contains(aud))
            {
                audience = aud;
                break;
            }
        }
        if (audience is null)
            return JwtResult.Fail(JwtFailureReason.WrongAudience);

        var payload = Base64Url.DecodeFromChars(jwt.EncodedPayload);
        using var document = JsonDocument.Parse(payload, PayloadOptions);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            return JwtResult.Fail(JwtFailureReason.Malformed);
        var claims = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        List<string>? scopes = null;
        JsonElement? scp = null;
        foreach (var claim in document.RootElement.EnumerateObject())
        {
            // Duplicate members are ambiguous (parsers disagree on which wins): refuse rather than guess.
            if (!names.Add(claim.Name))
                return JwtResult.Fail(JwtFailureReason.Malformed);
            var value = claim.Value;
            switch (value.ValueKind)
            {
                case JsonValueKind.String:
                    claims[claim.Name] = value.GetString()!;
                    break;
                case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False:
                    claims[claim.Name] = value.GetRawText();
                    break;
            }
            if (claim.NameEquals("scope") && value.ValueKind == JsonValueKind.String)
                scopes = [.. value.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
            else if (claim.NameEquals("scp"))
                scp = value.Clone();
        }
        if (scopes is null && scp is { } scpValue)
        {
            scopes = scpValue.ValueKind switch
            {
                JsonValueKind.String => [.. scpValue.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries)],
                JsonValueKind.Array => [.. scpValue.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)],
                _ => null,
            };
        }

        var subject = string.IsNullOrEmpty(jwt.Subject) ? null : jwt.Subject;
        return JwtResult.Success(new JwtIdentity(subject, jwt.Issuer, audience, expires,
            scopes?.AsReadOnly() ?? (IReadOnlyList<string>)[], claims.AsReadOnly()));
    }

    private static JwtFailureReason CheckShape(string token, out int headerEnd, out int payloadEnd)
    {
        headerEnd = payloadEnd = -1;
        var dots = 0;
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
                    return JwtFailureReason.Malformed;
            }
            else if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '_')
            {
                // Only unpadded base64url: '=', '+', '/', whitespace and non-ASCII are refused, never "repaired".
                return JwtFailureReason.Malformed;
            }
        }
        if (dots != 2 || headerEnd == 0 || payloadEnd == headerEnd + 1)
            return JwtFailureReason.Malformed;
        return JwtFailureReason.None;
    }

    private static JwtFailureReason ReadHeader(ReadOnlySpan<char> encoded, out string? alg, out string? kid, out string? typ)
    {
        alg = kid = typ = null;
        if (encoded.Length > MaxHeaderChars)
            return JwtFailureReason.Malformed;
        Span<byte> json = stackalloc byte[MaxHeaderChars * 3 / 4 + 3];
        int length;
        try
        {
            if (!Base64Url.TryDecodeFromChars(encoded, json, out length))
                return JwtFailureReason.Malformed;
        }
        catch (FormatException)
        {
            // Thrown, not reported, for an impossible length (4n + 1 characters).
            return JwtFailureReason.Malformed;
        }
        var crit = false;
        var seen = 0;
        try
        {
            var reader = new Utf8JsonReader(json[..length], HeaderReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return JwtFailureReason.Malformed;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var member = MemberOf(ref reader);
                if (member != 0)
                {
                    if ((seen & member) != 0)
                        return JwtFailureReason.Malformed;
                    seen |= member;
                }
                if (!reader.Read())
                    return JwtFailureReason.Malformed;
                switch (member)
                {
                    case Alg:
                        if (reader.TokenType != JsonTokenType.String)
                            return JwtFailureReason.Malformed;
                        alg = reader.GetString();
                        break;
                    case Kid:
                        if (reader.TokenType != JsonTokenType.String)
                            return JwtFailureReason.Malformed;
                        if (reader.ValueSpan.Length > MaxKidLength * 2)
                            return JwtFailureReason.UnknownKey;
                        kid = reader.GetString();
                        break;
                    case Typ:
                        if (reader.TokenType != JsonTokenType.String)
                            return JwtFailureReason.Malformed;
                        typ = reader.GetString();
                        break;
                    case Crit:
                        crit = true;
                        reader.Skip();
                        break;
                    case Enc or Zip or B64:
                        // JWE, compressed payloads and unencoded payloads (RFC 7797) are not accepted.
                        return JwtFailureReason.Malformed;
                    default:
                        reader.Skip();
                        break;
                }
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
                return JwtFailureReason.Malformed;
        }
        catch (JsonException)
        {
            return JwtFailureReason.Malformed;
        }
        if (alg is null)
            return JwtFailureReason.Malformed;
        // RFC 7515 §4.1.11: a recipient must reject a crit it does not understand; we understand none.
        return crit ? JwtFailureReason.CritHeader : JwtFailureReason.None;
    }

    private const int Alg = 1, Kid = 2, Typ = 4, Crit = 8, Enc = 16, Zip = 32, B64 = 64, Jku = 128, X5u = 256, Jwk = 512, X5c = 1024, X5t = 2048, Cty = 4096;

    private static int MemberOf(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.PropertyName)
            throw new JsonException();
        if (reader.ValueTextEquals("alg"u8)) return Alg;
        if (reader.ValueTextEquals("kid"u8)) return Kid;
        if (reader.ValueTextEquals("typ"u8)) return Typ;
        if (reader.ValueTextEquals("crit"u8)) return Crit;
        if (reader.ValueTextEquals("enc"u8)) return Enc;
        if (reader.ValueTextEquals("zip"u8)) return Zip;
        if (reader.ValueTextEquals("b64"u8)) return B64;
        if (reader.ValueTextEquals("jku"u8)) return Jku;
        if (reader.ValueTextEquals("x5u"u8)) return X5u;
        if (reader.ValueTextEquals("jwk"u8)) return Jwk;
        if (reader.ValueTextEquals("x5c"u8)) return X5c;
        if (reader.ValueTextEquals("x5t"u8)) return X5t;
        if (reader.ValueTextEquals("cty"u8)) return Cty;
        return 0;
    }

    private static JwtFailureReason CheckHeader(JwtProvider provider, string? alg, string? typ)
    {
        if (alg is null || string.Equals(alg, "none", StringComparison.OrdinalIgnoreCase) || !provider.Algorithms.Contains(alg))
            return JwtFailureReason.BadAlgorithm;
        if (provider.Options.RequireTyp is { } required && !TypMatches(typ, required))
            return JwtFailureReason.WrongType;
        return JwtFailureReason.None;
    }

    /// <summary>RFC 7515 §4.1.9 / RFC 8725 §3.11: media types compare case-insensitively and "application/" may be omitted.</summary>
    private static bool TypMatches(string? typ, string required)
    {
        if (typ is null)
            return false;
        const string Prefix = "application/";
        var actual = typ.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) ? typ.AsSpan(Prefix.Length) : typ.AsSpan();
        var expected = required.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) ? required.AsSpan(Prefix.Length) : required.AsSpan();
        return actual.Equals(expected, StringComparison.OrdinalIgnoreCase);
    }

    private static JwksKey? SelectKey(JwksKeySet keys, string alg, string? kid, out JwtFailureReason reason)
    {
        JwksKey? key;
        if (kid is not null)
        {
            if (!keys.ByKid.TryGetValue(kid, out key))
            {
                reason = JwtFailureReason.UnknownKey;
                return null;
            }
        }
        else if (keys.Keys.Count == 1)
        {
            key = keys.Keys[0];
        }
        else
        {
            // Without a kid we would have to try every key (TryAllIssuerSigningKeys): N signature checks per request.
            reason = JwtFailureReason.UnknownKey;
            return null;
        }
        if (key.Kind != JwtAlgorithms.KeyKindOf(alg) || (key.Alg is not null && key.Alg != alg))
        {
            reason = JwtFailureReason.BadAlgorithm;
            return null;
        }
        reason = JwtFailureReason.None;
        return key;
    }

    private static JwtFailureReason MapFailure(Exception? exception) => exception switch
    {
        SecurityTokenExpiredException or SecurityTokenNoExpirationException => JwtFailureReason.Expired,
        SecurityTokenNotYetValidException => JwtFailureReason.NotYetValid,
        SecurityTokenInvalidLifetimeException => JwtFailureReason.Expired,
        SecurityTokenInvalidIssuerException => JwtFailureReason.WrongIssuer,
        SecurityTokenInvalidAudienceException => JwtFailureReason.WrongAudience,
        SecurityTokenInvalidAlgorithmException => JwtFailureReason.BadAlgorithm,
        SecurityTokenSignatureKeyNotFoundException => JwtFailureReason.UnknownKey,
        SecurityTokenInvalidSignatureException => JwtFailureReason.BadSignature,
        SecurityTokenInvalidTypeException => JwtFailureReason.WrongType,
        _ => JwtFailureReason.Malformed,
    };
}
