using System.Buffers;
using System.Buffers.Text;
using System.Collections.ObjectModel;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Legate.Authz.ApiKeys;
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

    /// <summary>Whether validated tokens are cached (a repeated token then brings back the same <see cref="JwtIdentity"/>).</summary>
    internal bool CachesTokens => _cache is not null;

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

        // Cache hit: one SHA-256 and one lookup, no signature check and no allocation. On a miss the same key stores
        // the result (a second SHA-256 of the token cost about a microsecond).
        var keys = provider.Keys.Current;
        TokenCacheKey? cacheKey = null;
        if (_cache is not null && keys is not null)
        {
            var key = TokenCacheKey.Compute(provider.Id, token.Span);
            if (_cache.TryGet(key, keys.Version, out var hit))
                return new ValueTask<JwtResult>(hit!);
            cacheKey = key;
        }

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
        return ValidateSignedAsync(provider, token, alg!, kid, headerEnd, payloadEnd, cacheKey, cancellationToken);
    }

    private async ValueTask<JwtResult> ValidateSignedAsync(JwtProvider provider, ReadOnlyMemory<char> token, string alg, string? kid, int headerEnd, int payloadEnd,
        TokenCacheKey? cacheKey, CancellationToken cancellationToken)
    {
        var keys = provider.Keys.Current;
        if (keys is null)
        {
            // Waiting for this provider's keys is for its own tokens only: a tenant trusting several issuers must not
            // hold another issuer's token up behind this one's slow or failing JWKS endpoint.
            if (!MayBeIssuedBy(provider, token.Span, headerEnd, payloadEnd))
                return JwtResult.Fail(JwtFailureReason.WrongIssuer);
            keys = await provider.Keys.GetAsync(cancellationToken).ConfigureAwait(false);
            if (keys is null)
                return JwtResult.Fail(JwtFailureReason.KeysUnavailable);
        }

        var selected = SelectKey(keys, alg, kid, out var reason);
        if (selected is null && reason == JwtFailureReason.UnknownKey && kid is not null && kid.Length <= MaxKidLength)
        {
            if (!MayBeIssuedBy(provider, token.Span, headerEnd, payloadEnd))
                return JwtResult.Fail(JwtFailureReason.WrongIssuer);
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
            _cache.Add(cacheKey ?? TokenCacheKey.Compute(provider.Id, token.Span), keys.Version, result, result.Identity!.ExpiresAt);
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
    [SkipLocalsInit]
    private JwtFailureReason VerifySignature(JwksKey key, string alg, ReadOnlySpan<char> token, int payloadEnd)
    {
        // Only the key's one length decodes to a usable signature, and base64url maps lengths one to one: a segment of
        // any other length is refused undecoded.
        var signatureLength = key.SignatureLength(alg);
        if (signatureLength <= 0 || token.Length - payloadEnd - 1 != Base64Url.GetEncodedLength(signatureLength))
            return JwtFailureReason.BadSignature;
        // On the stack (not zeroed: every byte read is written first) unless the token is unusually long.
        byte[]? rented = null;
        var bytes = token.Length <= StackTokenBytes ? stackalloc byte[StackTokenBytes] : (rented = ArrayPool<byte>.Shared.Rent(token.Length));
        var signature = signatureLength <= StackSignatureBytes ? stackalloc byte[StackSignatureBytes] : new byte[signatureLength];
        try
        {
            // CheckShape admitted only base64url characters and dots: the token is ASCII. The signature is decoded from
            // these bytes, which takes a fraction of decoding it from the chars.
            Encoding.ASCII.GetBytes(token, bytes);
            var input = bytes[..payloadEnd];
            if (Base64Url.DecodeFromUtf8(bytes[(payloadEnd + 1)..token.Length], signature, out _, out var written) != OperationStatus.Done
                || written != signatureLength)
                return JwtFailureReason.BadSignature;
            signature = signature[..signatureLength];
            var hash = _nativeRsa ? OpenSslRsaVerifier.HashOf(alg) : -1;
            if (hash >= 0 && key.NativeRsaVerifier() is { } native)
            {
                switch (native.Verify(hash, input, signature))
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
            return VerifyManaged(key, alg, input, signature) ? JwtFailureReason.None : JwtFailureReason.BadSignature;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or CryptographicException)
        {
            return JwtFailureReason.BadSignature;
        }
        finally
        {
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private const int StackTokenBytes = 2048;

    /// <summary>An RSA-16384 signature, OpenSSL's largest; HMAC and ECDSA ones are far shorter.</summary>
    private const int StackSignatureBytes = 2048;

    /// <summary>The key's IdentityModel signature provider, which takes arrays (pooled here).</summary>
    private static bool VerifyManaged(JwksKey key, string alg, ReadOnlySpan<byte> input, ReadOnlySpan<byte> signature)
    {
        var inputArray = ArrayPool<byte>.Shared.Rent(input.Length);
        var signatureArray = ArrayPool<byte>.Shared.Rent(signature.Length);
        try
        {
            input.CopyTo(inputArray);
            signature.CopyTo(signatureArray);
            return key.VerifierFor(alg).Verify(inputArray, 0, input.Length, signatureArray, 0, signature.Length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(inputArray);
            ArrayPool<byte>.Shared.Return(signatureArray);
        }
    }

    /// <summary>The (signature-checked) payload's claims checked and turned into an identity; a payload that cannot be
    /// read is a malformed token. Internal for the tests, which compare it with a reference reading.</summary>
    [SkipLocalsInit]
    internal JwtResult ReadPayload(JwtProvider provider, ReadOnlySpan<char> encodedPayload)
    {
        // Decoded onto the stack (a usual payload is a few hundred bytes; the stack buffer is not zeroed), else pooled.
        var maxLength = Base64Url.GetMaxDecodedLength(encodedPayload.Length);
        byte[]? rented = null;
        var json = maxLength <= StackPayloadBytes ? stackalloc byte[StackPayloadBytes] : (rented = ArrayPool<byte>.Shared.Rent(maxLength));
        var members = new PayloadMembers();
        try
        {
            if (!Base64Url.TryDecodeFromChars(encodedPayload, json, out var length))
                return JwtResult.Fail(JwtFailureReason.Malformed);
            return CheckClaimsAndBuild(provider, json[..length], ref members);
        }
        catch (Exception e) when (IsPayloadError(e))
        {
            return JwtResult.Fail(JwtFailureReason.Malformed);
        }
        finally
        {
            members.Return();
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private const int StackPayloadBytes = 2048;

    /// <summary>
    /// Whether the payload, not yet verified, may be this provider's: false only when its top-level <c>iss</c> is
    /// readable and is not the provider's issuer (or there is none: <c>iss</c> is required). Read only to decide whether to
    /// wait for a key fetch; such a token would fail the verified claim check anyway. Unreadable payloads answer true and
    /// are refused as before.
    /// </summary>
    [SkipLocalsInit]
    private static bool MayBeIssuedBy(JwtProvider provider, ReadOnlySpan<char> token, int headerEnd, int payloadEnd)
    {
        var encoded = token.Slice(headerEnd + 1, payloadEnd - headerEnd - 1);
        var maxLength = Base64Url.GetMaxDecodedLength(encoded.Length);
        byte[]? rented = null;
        var json = maxLength <= StackPayloadBytes ? stackalloc byte[StackPayloadBytes] : (rented = ArrayPool<byte>.Shared.Rent(maxLength));
        try
        {
            if (!Base64Url.TryDecodeFromChars(encoded, json, out var length))
                return true;
            var reader = new Utf8JsonReader(json[..length], PayloadReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return true;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isIssuer = reader.ValueTextEquals("iss"u8);
                if (!reader.Read())
                    return true;
                if (isIssuer)
                    return reader.TokenType != JsonTokenType.String || reader.ValueTextEquals(provider.Options.Issuer);
                reader.Skip();
            }
            return reader.TokenType != JsonTokenType.EndObject;
        }
        catch (Exception e) when (IsPayloadError(e))
        {
            return true;
        }
        finally
        {
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>What reading a payload throws on bad input: JSON syntax or depth, undecodable text or escapes, bad base64.</summary>
    private static bool IsPayloadError(Exception e) =>
        e is ArgumentException or JsonException or FormatException or OverflowException or InvalidOperationException;

    /// <summary>
    /// The payload, read once by a <see cref="Utf8JsonReader"/>: iss, aud, exp (required), nbf, iat, max lifetime, then
    /// the identity. It answers exactly as the <see cref="JsonDocument"/> reading it replaced (the tests compare the two),
    /// which cost a document, a dictionary and a set per call: a duplicate member (names compared unescaped, so
    /// "\u0069ss" is iss) is malformed wherever it is, top-level names and string values must decode, numbers and
    /// booleans are kept as written, and an aud or scp array's elements are decoded only when that check is reached.
    /// </summary>
    private JwtResult CheckClaimsAndBuild(JwtProvider provider, ReadOnlySpan<byte> json, ref PayloadMembers members)
    {
        var options = provider.Options;
        var reader = new Utf8JsonReader(json, PayloadReaderOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            return JwtResult.Fail(JwtFailureReason.Malformed);
        string? issuer = null, subject = null, scope = null, scpText = null, audience = null;
        List<string>? scpList = null;
        Dictionary<string, IReadOnlyList<string>>? policyClaims = null;
        bool scpArray = false, audArray = false, undecodableAud = false, undecodableScp = false;
        TimeClaim exp = default, nbf = default, iat = default;
        var planClaim = provider.PlanClaim;
        var planState = PlanState.Absent;
        string? plan = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var name = NameOf(ref reader);
            // Duplicate members are ambiguous (parsers disagree on which wins): refuse rather than guess.
            if (!members.AddName(name) || !reader.Read())
                return JwtResult.Fail(JwtFailureReason.Malformed);
            var kind = reader.TokenType;
            var text = kind switch
            {
                JsonTokenType.String => name switch
                {
                    "iss" => SharedOrString(ref reader, options.Issuer),
                    "aud" => SharedOrString(ref reader, options.Audiences),
                    _ => reader.GetString()!,
                },
                JsonTokenType.Number => Encoding.UTF8.GetString(reader.ValueSpan),
                JsonTokenType.True => "true",
                JsonTokenType.False => "false",
                _ => null,
            };
            if (text is not null)
                members.AddClaim(name, text);
            if (kind is not JsonTokenType.StartArray && text is not null && provider.PolicyClaims.Contains(name))
                (policyClaims ??= new(StringComparer.Ordinal))[name] = [Typed(kind, text)];
            switch (name)
            {
                case "iss":
                    issuer = kind == JsonTokenType.String ? text : null;
                    break;
                case "sub":
                    subject = text;
                    break;
                case "aud" when kind == JsonTokenType.String:
                    audience = provider.Audiences.Contains(text!) ? text : null;
                    break;
                case "aud" when kind == JsonTokenType.StartArray:
                    audArray = true;
                    undecodableAud = !TryReadAudience(ref reader, provider, out audience);
                    break;
                case "exp": exp = ReadTime(ref reader); break;
                case "nbf": nbf = ReadTime(ref reader); break;
                case "iat": iat = ReadTime(ref reader); break;
                case "scope" when kind == JsonTokenType.String:
                    scope = text;
                    break;
                case "scp" when kind == JsonTokenType.String:
                    scpText = text;
                    break;
                case "scp" when kind == JsonTokenType.StartArray:
                    scpArray = true;
                    undecodableScp = !TryReadStrings(ref reader, out scpList);
                    break;
                case var listed when kind == JsonTokenType.StartArray && provider.PolicyClaims.Contains(listed):
                    // An element that does not decode leaves the claim out: a policy requiring it then denies.
                    if (TryReadTypedScalars(ref reader, out var list))
                        (policyClaims ??= new(StringComparer.Ordinal))[listed] = list;
                    break;
            }
            // After the cases above: a plan path goes through an object, which none of them reads.
            if (planClaim is not null && string.Equals(name, planClaim[0], StringComparison.Ordinal))
                planState = planClaim.Length == 1 ? PlanOf(kind, text, out plan) : kind == JsonTokenType.StartObject ? ReadNestedPlan(ref reader, planClaim, 1, out plan) : PlanState.Invalid;
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                reader.Skip();
        }
        // Nothing may follow the object (the reader throws on anything but whitespace).
        if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            return JwtResult.Fail(JwtFailureReason.Malformed);

        // exp is required (RFC 8725 §3.10 advice; a token without it never expires).
        if (!exp.Present)
            return JwtResult.Fail(JwtFailureReason.Expired);
        if (!exp.Valid || (nbf.Present && !nbf.Valid) || (iat.Present && !iat.Valid))
            return JwtResult.Fail(JwtFailureReason.Malformed);
        var expires = exp.Time;
        DateTimeOffset? notBefore = nbf.Present ? nbf.Time : null, issuedAt = iat.Present ? iat.Time : null;

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
        if (issuer is null || !string.Equals(issuer, options.Issuer, StringComparison.Ordinal))
            return JwtResult.Fail(JwtFailureReason.WrongIssuer);
        if (audArray && undecodableAud)
            return JwtResult.Fail(JwtFailureReason.Malformed);
        if (audience is null)
            return JwtResult.Fail(JwtFailureReason.WrongAudience);

        // From scope (a space-separated string), else scp (the same, or an array of strings).
        IReadOnlyList<string> scopes = [];
        if (scope is not null)
        {
            scopes = SplitScopes(scope);
        }
        else if (scpText is not null)
        {
            scopes = SplitScopes(scpText);
        }
        else if (scpArray)
        {
            if (undecodableScp)
                return JwtResult.Fail(JwtFailureReason.Malformed);
            scopes = scpList!.AsReadOnly();
        }

        return JwtResult.Success(new JwtIdentity(subject is { Length: > 0 } ? subject : null, options.Issuer, audience, expires, scopes,
            members.Claims(), policyClaims, plan, planState == PlanState.Invalid));
    }

    /// <summary>What a token says about its plan claim (see <see cref="JwtIdentity.PlanInvalid"/>).</summary>
    private enum PlanState
    {
        Absent,
        Found,
        Invalid,
    }

    /// <summary>The plan claim's value: a string that holds to the plan rule (the one API key records keep), or invalid.</summary>
    private static PlanState PlanOf(JsonTokenType kind, string? text, out string? plan)
    {
        plan = kind == JsonTokenType.String && ApiKeyRecordRules.IsPlan(text!) ? text : null;
        return plan is null ? PlanState.Invalid : PlanState.Found;
    }

    /// <summary>
    /// Follows a nested plan claim from the object the reader is at (the value of <paramref name="path"/>[level - 1]) to
    /// its end, member names compared unescaped. A member of the path named twice in one object is ambiguous (parsers
    /// disagree on which wins, as with top-level duplicates): invalid. Only this path's strings are decoded.
    /// </summary>
    private static PlanState ReadNestedPlan(ref Utf8JsonReader reader, string[] path, int level, out string? plan)
    {
        plan = null;
        var state = PlanState.Absent;
        var seen = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var member = reader.ValueTextEquals(path[level]);
            if (!reader.Read())
                throw new JsonException();
            if (member)
            {
                PlanState found;
                string? value = null;
                if (level == path.Length - 1)
                    found = reader.TokenType == JsonTokenType.String && TryGetString(ref reader, out value) ? PlanOf(JsonTokenType.String, value, out value) : PlanState.Invalid;
                else if (reader.TokenType == JsonTokenType.StartObject)
                    found = ReadNestedPlan(ref reader, path, level + 1, out value);
                else
                    found = PlanState.Invalid;
                (state, plan) = seen ? (PlanState.Invalid, null) : (found, value);
                seen = true;
            }
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                reader.Skip();
        }
        if (state == PlanState.Invalid)
            plan = null;
        return state;
    }

    private static readonly JsonReaderOptions PayloadReaderOptions = new() { MaxDepth = 32 };

    /// <summary>A member name; the names most tokens carry are shared strings, so reading them allocates nothing.</summary>
    private static string NameOf(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.PropertyName)
            throw new JsonException();
        if (!reader.ValueIsEscaped)
        {
            var name = reader.ValueSpan;
            var known = name.Length switch
            {
                3 => name.SequenceEqual("iss"u8) ? "iss" : name.SequenceEqual("sub"u8) ? "sub" : name.SequenceEqual("aud"u8) ? "aud"
                    : name.SequenceEqual("exp"u8) ? "exp" : name.SequenceEqual("nbf"u8) ? "nbf" : name.SequenceEqual("iat"u8) ? "iat"
                    : name.SequenceEqual("jti"u8) ? "jti" : name.SequenceEqual("azp"u8) ? "azp" : name.SequenceEqual("scp"u8) ? "scp"
                    : name.SequenceEqual("sid"u8) ? "sid" : name.SequenceEqual("acr"u8) ? "acr" : name.SequenceEqual("amr"u8) ? "amr"
                    : name.SequenceEqual("tid"u8) ? "tid" : name.SequenceEqual("oid"u8) ? "oid" : null,
                4 => name.SequenceEqual("name"u8) ? "name" : null,
                5 => name.SequenceEqual("scope"u8) ? "scope" : name.SequenceEqual("email"u8) ? "email" : name.SequenceEqual("nonce"u8) ? "nonce"
                    : name.SequenceEqual("roles"u8) ? "roles" : null,
                6 => name.SequenceEqual("groups"u8) ? "groups" : null,
                9 => name.SequenceEqual("client_id"u8) ? "client_id" : name.SequenceEqual("auth_time"u8) ? "auth_time" : null,
                18 => name.SequenceEqual("preferred_username"u8) ? "preferred_username" : null,
                _ => null,
            };
            if (known is not null)
                return known;
        }
        return reader.GetString()!;
    }

    /// <summary>A string value that is the configured text (the usual iss and aud) as that string: no copy, nothing to decode.</summary>
    private static string SharedOrString(ref Utf8JsonReader reader, string shared) =>
        reader.ValueTextEquals(shared) ? shared : reader.GetString()!;

    private static string SharedOrString(ref Utf8JsonReader reader, IReadOnlyList<string> shared)
    {
        for (var i = 0; i < shared.Count; i++)
        {
            if (reader.ValueTextEquals(shared[i]))
                return shared[i];
        }
        return reader.GetString()!;
    }

    /// <summary>
    /// An aud array: the first string element that is one of the provider's audiences. False when an element before it
    /// cannot be decoded (bad UTF-8, a lone surrogate escape): the token is then malformed, but only once the audience
    /// check is reached, as when elements were decoded on demand.
    /// </summary>
    private static bool TryReadAudience(ref Utf8JsonReader reader, JwtProvider provider, out string? audience)
    {
        audience = null;
        var decodable = true;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.String && audience is null && decodable)
            {
                decodable = TryGetString(ref reader, out var candidate);
                if (decodable && provider.Audiences.Contains(candidate!))
                    audience = candidate;
            }
            else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                reader.Skip();
            }
        }
        return decodable;
    }

    /// <summary>An scp array's string elements; false when one cannot be decoded (malformed once scp is used).</summary>
    private static bool TryReadStrings(ref Utf8JsonReader reader, out List<string> strings)
    {
        strings = [];
        var decodable = true;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.String && decodable)
            {
                decodable = TryGetString(ref reader, out var value);
                if (decodable)
                    strings.Add(value!);
            }
            else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                reader.Skip();
            }
        }
        return decodable;
    }

    private static string Typed(JsonTokenType kind, string text) => kind switch
    {
        JsonTokenType.String => TypedClaim.OfString(text),
        JsonTokenType.Number => TypedClaim.OfNumber(text),
        _ => TypedClaim.OfBoolean(kind == JsonTokenType.True),
    };

    /// <summary>An array claim's scalar elements with their types (objects, arrays and nulls skipped); false when a string does not decode.</summary>
    private static bool TryReadTypedScalars(ref Utf8JsonReader reader, out List<string> values)
    {
        values = [];
        var decodable = true;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String when decodable:
                    decodable = TryGetString(ref reader, out var value);
                    if (decodable)
                        values.Add(TypedClaim.OfString(value!));
                    break;
                case JsonTokenType.Number:
                    values.Add(TypedClaim.OfNumber(Encoding.UTF8.GetString(reader.ValueSpan)));
                    break;
                case JsonTokenType.True or JsonTokenType.False:
                    values.Add(TypedClaim.OfBoolean(reader.TokenType == JsonTokenType.True));
                    break;
                case JsonTokenType.StartObject or JsonTokenType.StartArray:
                    reader.Skip();
                    break;
            }
        }
        return decodable;
    }

    private static bool TryGetString(ref Utf8JsonReader reader, out string? value)
    {
        try
        {
            value = reader.GetString();
            return true;
        }
        catch (Exception e) when (IsPayloadError(e))
        {
            value = null;
            return false;
        }
    }

    private static ReadOnlyCollection<string> SplitScopes(string scope)
    {
        var count = 0;
        for (var i = 0; i < scope.Length; i++)
        {
            if (scope[i] != ' ' && (i == 0 || scope[i - 1] == ' '))
                count++;
        }
        if (count == 0)
            return ReadOnlyCollection<string>.Empty;
        var scopes = new string[count];
        var n = 0;
        foreach (var range in scope.AsSpan().Split(' '))
        {
            if (range.End.Value > range.Start.Value)
                scopes[n++] = scope[range];
        }
        return new ReadOnlyCollection<string>(scopes);
    }

    /// <summary>A NumericDate member: absent, unusable (not a number, out of range), or a time.</summary>
    private readonly record struct TimeClaim(bool Present, bool Valid, DateTimeOffset Time);

    // NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional (truncated, as IdentityModel does).
    private static TimeClaim ReadTime(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.Number)
            return new TimeClaim(true, false, default);
        if (!reader.TryGetInt64(out var seconds))
        {
            if (!reader.TryGetDouble(out var fractional) || !double.IsFinite(fractional) || Math.Abs(fractional) > 1e15)
                return new TimeClaim(true, false, default);
            seconds = (long)Math.Truncate(fractional);
        }
        if (seconds < MinUnixSeconds || seconds > MaxUnixSeconds)
            return new TimeClaim(true, false, default);
        return new TimeClaim(true, true, DateTimeOffset.FromUnixTimeSeconds(seconds));
    }

    /// <summary>
    /// The payload's member names, for duplicates (compared in order while there are few, in a set beyond that), and its
    /// claims with a scalar value, while reading: the first 16 of each in buffers on the stack, more in pooled arrays; the
    /// identity gets an exact-size copy of the claims.
    /// </summary>
    private struct PayloadMembers
    {
        private const int Inline = 16;
        private const int LinearNames = 32;
        private InlineStrings _inlineNames;
        private InlineClaims _inlineClaims;
        private string[]? _names;
        private KeyValuePair<string, string>[]? _claims;
        private HashSet<string>? _nameSet;
        private int _nameCount;
        private int _claimCount;

        public bool AddName(string name)
        {
            if (_nameSet is not null)
                return _nameSet.Add(name);
            Span<string> names = _names ?? (Span<string>)_inlineNames;
            for (var i = 0; i < _nameCount; i++)
            {
                if (string.Equals(names[i], name, StringComparison.Ordinal))
                    return false;
            }
            if (_nameCount == LinearNames)
            {
                _nameSet = new HashSet<string>(new ArraySegment<string>(_names!, 0, _nameCount), StringComparer.Ordinal);
                return _nameSet.Add(name);
            }
            if (_nameCount == Inline)
            {
                _names = ArrayPool<string>.Shared.Rent(LinearNames);
                names[.._nameCount].CopyTo(_names);
                names = _names;
            }
            names[_nameCount++] = name;
            return true;
        }

        public void AddClaim(string name, string value)
        {
            Span<KeyValuePair<string, string>> claims = _claims ?? (Span<KeyValuePair<string, string>>)_inlineClaims;
            if (_claimCount == claims.Length)
            {
                var larger = ArrayPool<KeyValuePair<string, string>>.Shared.Rent(claims.Length * 2);
                claims.CopyTo(larger);
                if (_claims is not null)
                    ArrayPool<KeyValuePair<string, string>>.Shared.Return(_claims, clearArray: true);
                _claims = larger;
                claims = larger;
            }
            claims[_claimCount++] = KeyValuePair.Create(name, value);
        }

        public JwtClaims Claims()
        {
            ReadOnlySpan<KeyValuePair<string, string>> claims = _claims ?? (Span<KeyValuePair<string, string>>)_inlineClaims;
            return new JwtClaims(claims[.._claimCount].ToArray());
        }

        public void Return()
        {
            if (_names is not null)
                ArrayPool<string>.Shared.Return(_names, clearArray: true);
            if (_claims is not null)
                ArrayPool<KeyValuePair<string, string>>.Shared.Return(_claims, clearArray: true);
            _names = null;
            _claims = null;
        }

        [InlineArray(Inline)]
        private struct InlineStrings
        {
            private string _first;
        }

        [InlineArray(Inline)]
        private struct InlineClaims
        {
            private KeyValuePair<string, string> _first;
        }
    }

    private static readonly long MinUnixSeconds = DateTimeOffset.MinValue.ToUnixTimeSeconds();
    private static readonly long MaxUnixSeconds = DateTimeOffset.MaxValue.ToUnixTimeSeconds();

    // Only unpadded base64url: '=', '+', '/', whitespace and non-ASCII are refused, never "repaired".
    private static readonly SearchValues<char> Base64UrlChars = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

    /// <summary>Exactly two dots, a header and a payload, and base64url characters only (vectorised: a char loop over a
    /// 600-character token cost about a microsecond). Internal for the tests, which compare it with that loop.</summary>
    internal static JwtFailureReason CheckShape(ReadOnlySpan<char> token, out int headerEnd, out int payloadEnd)
    {
        headerEnd = token.IndexOf('.');
        payloadEnd = headerEnd <= 0 ? -1 : token[(headerEnd + 1)..].IndexOf('.');
        if (payloadEnd <= 0)
            return JwtFailureReason.Malformed;
        payloadEnd += headerEnd + 1;
        // A third dot is outside the alphabet too.
        if (token[..headerEnd].ContainsAnyExcept(Base64UrlChars) || token[(headerEnd + 1)..payloadEnd].ContainsAnyExcept(Base64UrlChars)
            || token[(payloadEnd + 1)..].ContainsAnyExcept(Base64UrlChars))
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
                        alg = Shared(ref reader, KnownAlgorithms);
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
                        typ = Shared(ref reader, KnownTypes);
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

    // Header values nearly every token carries, as shared strings (compared unescaped, as GetString would read them).
    private static readonly string[] KnownAlgorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
    private static readonly string[] KnownTypes = ["JWT", "at+jwt", "application/at+jwt"];

    private static string? Shared(ref Utf8JsonReader reader, string[] known)
    {
        if (!reader.ValueIsEscaped)
        {
            foreach (var text in known)
            {
                if (reader.ValueSpan.Length == text.Length && reader.ValueTextEquals(text))
                    return text;
            }
        }
        return reader.GetString();
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
