using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

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
/// <item>the signature: RS256/RS384/RS512 by the key's OpenSSL verifier (reused contexts) where libcrypto.so.3 is usable,
/// everything else (and any internal OpenSSL error) by IdentityModel's signature provider for that one key and alg
/// (cached on the key);</item>
/// <item>the payload, parsed once: exp required, exp/nbf/iat against the TimeProvider with the provider's skew, max
/// lifetime, exact issuer, an audience of the provider's.</item>
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
    private readonly bool _nativeRsa;
    private readonly ILogger _logger;

    private long _verifications;
    private long _nativeRsaFallbacks;

    /// <param name="time">The clock for exp, nbf and iat.</param>
    /// <param name="cache">Validated tokens by hash, or null for none.</param>
    /// <param name="nativeRsa">Verify RS256/RS384/RS512 through OpenSSL with reused contexts where libcrypto.so.3 is usable
    /// (<see cref="OpenSslRsaVerifier"/>); false keeps every signature on .NET's RSA via IdentityModel.</param>
    /// <param name="logger">Where an unusable or failing OpenSSL is reported (once).</param>
    public JwtValidator(TimeProvider time, ValidatedTokenCache? cache = null, bool nativeRsa = true, ILogger<JwtValidator>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _cache = cache;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _nativeRsa = nativeRsa && OpenSslRsaVerifier.IsSupported;
        if (nativeRsa && !_nativeRsa)
            NativeRsaLog.Unavailable(_logger);
    }

    /// <summary>Signature verifications performed (cache misses that reached the handler).</summary>
    public long Verifications => Interlocked.Read(ref _verifications);

    /// <summary>Whether RS256/RS384/RS512 signatures go to OpenSSL (asked for, and libcrypto.so.3 usable).</summary>
    public bool NativeRsa => _nativeRsa;

    /// <summary>Native verifies that failed internally and were redone by .NET's RSA (the first one is logged).</summary>
    public long NativeRsaFallbacks => Interlocked.Read(ref _nativeRsaFallbacks);

    public ValueTask<JwtResult> ValidateAsync(JwtProvider provider, string? token, CancellationToken cancellationToken) =>
        ValidateAsync(provider, token.AsMemory(), cancellationToken);

    /// <param name="token">The token, as found in the request (a slice of its header: validating it copies nothing).</param>
    public ValueTask<JwtResult> ValidateAsync(JwtProvider provider, ReadOnlyMemory<char> token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(provider);
        if (token.IsEmpty)
            return new ValueTask<JwtResult>(JwtResult.Fail(JwtFailureReason.Missing));
        if (token.Length > provider.Options.MaxTokenBytes)
            return new ValueTask<JwtResult>(JwtResult.Fail(JwtFailureReason.TooLarge));

        // Cache hit: one SHA-256 and one lookup, no signature check and no allocation.
        var keys = provider.Keys.Current;
        if (_cache is not null && keys is not null
            && _cache.TryGet(TokenCacheKey.Compute(provider.Id, token.Span), keys.Version, out var hit))
            return new ValueTask<JwtResult>(hit!);

        var shape = CheckShape(token.Span, out var headerEnd, out var payloadEnd);
        if (shape != JwtFailureReason.None)
            return new ValueTask<JwtResult>(JwtResult.Fail(shape));
        var header = ReadHeader(token.Span[..headerEnd], out var alg, out var kid, out var typ);
        if (header != JwtFailureReason.None)
            return new ValueTask<JwtResult>(JwtResult.Fail(header));
        var headerResult = CheckHeader(provider, alg, typ);
        if (headerResult != JwtFailureReason.None)
            return new ValueTask<JwtResult>(JwtResult.Fail(headerResult));
        if (payloadEnd == token.Length - 1)
            return new ValueTask<JwtResult>(JwtResult.Fail(JwtFailureReason.BadSignature));
        return ValidateSignedAsync(provider, token, alg!, kid, headerEnd, payloadEnd, cancellationToken);
    }

    private async ValueTask<JwtResult> ValidateSignedAsync(JwtProvider provider, ReadOnlyMemory<char> token, string alg, string? kid, int headerEnd, int payloadEnd,
        CancellationToken cancellationToken)
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
        var signature = VerifySignature(selected, alg, token.Span, payloadEnd);
        if (signature != JwtFailureReason.None)
            return JwtResult.Fail(signature);

        var result = ReadPayload(provider, token.Span.Slice(headerEnd + 1, payloadEnd - headerEnd - 1));
        if (result.Succeeded && _cache is not null)
            _cache.Add(TokenCacheKey.Compute(provider.Id, token.Span), keys.Version, result, result.Identity!.ExpiresAt);
        return result;
    }

    /// <summary>
    /// The JWS signature over the ASCII signing input (alg already checked against the allow-list and the key), of the
    /// one length the key and alg produce. RS256/RS384/RS512 go to the key's OpenSSL verifier, whose reused context
    /// saves .NET's per-call EVP_PKEY_CTX set-up; only its "valid" allows and its "bad signature" denies, while an
    /// internal error (or a verifier disposed by a key rotation) leaves the call to the managed path. Everything else is
    /// verified by the key's cached IdentityModel signature provider. Done here rather than through JsonWebTokenHandler,
    /// whose token parsing and claim validation this class does anyway: that pipeline cost as much as the RSA verify.
    /// </summary>
    private JwtFailureReason VerifySignature(JwksKey key, string alg, ReadOnlySpan<char> token, int payloadEnd)
    {
        var encodedSignature = token[(payloadEnd + 1)..];
        var input = ArrayPool<byte>.Shared.Rent(payloadEnd);
        var signature = ArrayPool<byte>.Shared.Rent(Base64Url.GetMaxDecodedLength(encodedSignature.Length));
        try
        {
            // CheckShape admitted only base64url characters and dots: the signing input is ASCII.
            var inputLength = Encoding.ASCII.GetBytes(token[..payloadEnd], input);
            if (!Base64Url.TryDecodeFromChars(encodedSignature, signature, out var signatureLength) || signatureLength != key.SignatureLength(alg))
                return JwtFailureReason.BadSignature;
            var hash = _nativeRsa ? OpenSslRsaVerifier.HashOf(alg) : -1;
            if (hash >= 0 && key.NativeRsaVerifier() is { } native)
            {
                switch (native.Verify(hash, input.AsSpan(0, inputLength), signature.AsSpan(0, signatureLength)))
                {
                    case NativeVerifyResult.Valid:
                        return JwtFailureReason.None;
                    case NativeVerifyResult.Invalid:
                        return JwtFailureReason.BadSignature;
                    case NativeVerifyResult.Error:
                        if (Interlocked.Increment(ref _nativeRsaFallbacks) == 1)
                            NativeRsaLog.Failed(_logger, alg);
                        break;
                }
            }
            return key.VerifierFor(alg).Verify(input, 0, inputLength, signature, 0, signatureLength)
                ? JwtFailureReason.None
                : JwtFailureReason.BadSignature;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or CryptographicException)
        {
            return JwtFailureReason.BadSignature;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(input);
            ArrayPool<byte>.Shared.Return(signature);
        }
    }

    /// <summary>The (signature-checked) payload's claims checked and turned into an identity; a payload that cannot be
    /// read is a malformed token. Internal for the tests, which compare it with a reference reading.</summary>
    internal JwtResult ReadPayload(JwtProvider provider, ReadOnlySpan<char> encodedPayload)
    {
        try
        {
            return CheckClaimsAndBuild(provider, encodedPayload);
        }
        catch (Exception e) when (e is ArgumentException or JsonException or FormatException or OverflowException or InvalidOperationException)
        {
            return JwtResult.Fail(JwtFailureReason.Malformed);
        }
    }

    /// <summary>The payload, parsed once: iss, aud, exp (required), nbf, iat, max lifetime, then the identity.</summary>
    private JwtResult CheckClaimsAndBuild(JwtProvider provider, ReadOnlySpan<char> encodedPayload)
    {
        var payload = Base64Url.DecodeFromChars(encodedPayload);
        using var document = JsonDocument.Parse(payload, PayloadOptions);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            return JwtResult.Fail(JwtFailureReason.Malformed);
        var claims = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        List<string>? scopes = null;
        JsonElement? scp = null;
        JsonElement? iss = null, aud = null, exp = null, nbf = null, iat = null;
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
            switch (claim.Name)
            {
                case "iss": iss = value; break;
                case "aud": aud = value; break;
                case "exp": exp = value; break;
                case "nbf": nbf = value; break;
                case "iat": iat = value; break;
                case "scope" when value.ValueKind == JsonValueKind.String:
                    scopes = [.. value.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
                    break;
                case "scp": scp = value; break;
            }
        }

        // exp is required (RFC 8725 §3.10 advice; a token without it never expires).
        if (exp is null)
            return JwtResult.Fail(JwtFailureReason.Expired);
        if (!TryReadTime(exp.Value, out var expires) || !TryReadOptionalTime(nbf, out var notBefore) || !TryReadOptionalTime(iat, out var issuedAt))
            return JwtResult.Fail(JwtFailureReason.Malformed);

        var options = provider.Options;
        var now = _time.GetUtcNow();
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

        // Exact, case-sensitive issuer; no trailing-slash or case folding.
        if (iss is not { ValueKind: JsonValueKind.String } issuer || !issuer.ValueEquals(options.Issuer))
            return JwtResult.Fail(JwtFailureReason.WrongIssuer);

        string? audience = null;
        if (aud is { ValueKind: JsonValueKind.String } single)
        {
            audience = provider.Audiences.Contains(single.GetString()!) ? single.GetString() : null;
        }
        else if (aud is { ValueKind: JsonValueKind.Array } several)
        {
            foreach (var element in several.EnumerateArray())
            {
                if (element.ValueKind == JsonValueKind.String && element.GetString() is { } candidate && provider.Audiences.Contains(candidate))
                {
                    audience = candidate;
                    break;
                }
            }
        }
        if (audience is null)
            return JwtResult.Fail(JwtFailureReason.WrongAudience);

        if (scopes is null && scp is { } scpValue)
        {
            scopes = scpValue.ValueKind switch
            {
                JsonValueKind.String => [.. scpValue.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries)],
                JsonValueKind.Array => [.. scpValue.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)],
                _ => null,
            };
        }

        var subject = claims.GetValueOrDefault("sub") is { Length: > 0 } sub ? sub : null;
        return JwtResult.Success(new JwtIdentity(subject, options.Issuer, audience, expires,
            scopes?.AsReadOnly() ?? (IReadOnlyList<string>)[], claims.AsReadOnly()));
    }

    // NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional (truncated, as IdentityModel does).
    private static bool TryReadTime(JsonElement value, out DateTimeOffset time)
    {
        time = default;
        if (value.ValueKind != JsonValueKind.Number)
            return false;
        long seconds;
        if (!value.TryGetInt64(out seconds))
        {
            if (!value.TryGetDouble(out var fractional) || !double.IsFinite(fractional) || Math.Abs(fractional) > 1e15)
                return false;
            seconds = (long)Math.Truncate(fractional);
        }
        if (seconds < MinUnixSeconds || seconds > MaxUnixSeconds)
            return false;
        time = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return true;
    }

    private static bool TryReadOptionalTime(JsonElement? value, out DateTimeOffset? time)
    {
        time = null;
        if (value is null)
            return true;
        if (!TryReadTime(value.Value, out var read))
            return false;
        time = read;
        return true;
    }

    private static readonly long MinUnixSeconds = DateTimeOffset.MinValue.ToUnixTimeSeconds();
    private static readonly long MaxUnixSeconds = DateTimeOffset.MaxValue.ToUnixTimeSeconds();

    private static JwtFailureReason CheckShape(ReadOnlySpan<char> token, out int headerEnd, out int payloadEnd)
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
        // Sized to this header (a few dozen bytes), not the cap: a stackalloc is zeroed, and 3 KB of zeroing per call showed.
        Span<byte> json = stackalloc byte[Base64Url.GetMaxDecodedLength(encoded.Length)];
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
}
