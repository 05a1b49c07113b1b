using System.Buffers.Text;
using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace Legate.Authz.Jwt;

/// <summary>
/// One usable verification key from a JWKS, with its signature providers. Every parse makes its own key objects, so a
/// key set never shares one with another; <see cref="JwksSource"/> disposes a set's keys once nothing can use them.
/// </summary>
public sealed class JwksKey : IDisposable
{
    // No factory-wide cache: providers live as long as their key (see VerifierFor).
    private static readonly CryptoProviderFactory Factory = new() { CacheSignatureProviders = false };

    // Stands for "OpenSSL cannot verify with this key" in _nativeRsa, so that is found out once.
    private static readonly object NoNativeRsa = new();

    // Copy-on-write, one entry per alg this key has verified (at most the provider's few algorithms).
    private Dictionary<string, SignatureProvider>? _verifiers;
    private readonly int _rsaSignatureBytes;
    // null until first asked: an OpenSslRsaVerifier, or NoNativeRsa.
    private object? _nativeRsa;
    private int _disposed;

    internal JwksKey(string? kid, string? alg, JwtKeyKind kind, SecurityKey key, string fingerprint)
    {
        Kid = kid;
        Alg = alg;
        Kind = kind;
        Key = key;
        Fingerprint = fingerprint;
        _rsaSignatureBytes = kind == JwtKeyKind.Rsa ? (key.KeySize + 7) / 8 : 0;
    }

    public string? Kid { get; }

    /// <summary>The key's own <c>alg</c>, when the JWKS states one: the key then verifies only that algorithm.</summary>
    public string? Alg { get; }

    internal JwtKeyKind Kind { get; }

    public SecurityKey Key { get; }

    internal string Fingerprint { get; }

    /// <summary>
    /// The only signature length <paramref name="alg"/> produces with this key (RSA: the modulus size; ECDSA: r || s;
    /// HMAC: the full hash, never a truncated one). Anything else is refused before the provider sees it.
    /// </summary>
    internal int SignatureLength(string alg) => Kind switch
    {
        JwtKeyKind.Rsa => _rsaSignatureBytes,
        JwtKeyKind.EcP256 => 64,
        JwtKeyKind.EcP384 => 96,
        JwtKeyKind.EcP521 => 132,
        JwtKeyKind.Symmetric => alg switch { "HS256" => 32, "HS384" => 48, "HS512" => 64, _ => -1 },
        _ => -1,
    };

    /// <summary>
    /// IdentityModel's signature provider for this key and alg, made once and shared (thread-safe; it pools its hash
    /// and key adapters). Cached here rather than in a factory-wide cache, so a key that rotates out of the JWKS takes
    /// its providers with it.
    /// </summary>
    internal SignatureProvider VerifierFor(string alg)
    {
        var verifiers = Volatile.Read(ref _verifiers);
        if (verifiers is not null && verifiers.TryGetValue(alg, out var cached))
            return cached;
        var created = Factory.CreateForVerifying(Key, alg);
        while (true)
        {
            var before = Volatile.Read(ref _verifiers);
            if (before is not null && before.TryGetValue(alg, out var raced))
                return raced;
            var after = before is null ? new Dictionary<string, SignatureProvider>(StringComparer.Ordinal) : new Dictionary<string, SignatureProvider>(before, StringComparer.Ordinal);
            after[alg] = created;
            if (Interlocked.CompareExchange(ref _verifiers, after, before) == before)
                return created;
        }
    }

    /// <summary>
    /// The OpenSSL verifier of an RSA key (RS256/RS384/RS512), made on first use so a JWKS re-read with unchanged keys
    /// costs no native allocation; null for other keys or where libcrypto.so.3 is not usable. It lives as long as the
    /// key: <see cref="Dispose"/> frees the native key and contexts once the key has left the key set.
    /// </summary>
    internal OpenSslRsaVerifier? NativeRsaVerifier()
    {
        var native = Volatile.Read(ref _nativeRsa);
        if (native is null)
        {
            var created = Kind == JwtKeyKind.Rsa && Key is RsaSecurityKey { Rsa: { } rsa } ? OpenSslRsaVerifier.TryCreate(rsa) : null;
            if (!UseNativeRsa(created))
                created?.Dispose();
            native = Volatile.Read(ref _nativeRsa);
        }
        return native as OpenSslRsaVerifier;
    }

    /// <summary>Sets the key's OpenSSL verifier (null: none) unless one was set already (a racing first use, or a test's).</summary>
    internal bool UseNativeRsa(OpenSslRsaVerifier? verifier)
        => Interlocked.CompareExchange(ref _nativeRsa, (object?)verifier ?? NoNativeRsa, null) is null;

    /// <summary>Whether <see cref="Dispose"/> ran.</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Frees the key's native resources now rather than at finalization: its signature providers, its OpenSSL verifier
    /// and the RSA or ECDsa key. Only for a key no validation can reach any more (<see cref="JwksSource"/> decides).
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (Interlocked.Exchange(ref _verifiers, null) is { } verifiers)
        {
            foreach (var verifier in verifiers.Values)
                verifier.Dispose();
        }
        (Interlocked.Exchange(ref _nativeRsa, NoNativeRsa) as OpenSslRsaVerifier)?.Dispose();
        if (Key is RsaSecurityKey { Rsa: { } rsa })
            rsa.Dispose();
        else if (Key is ECDsaSecurityKey { ECDsa: { } ecdsa })
            ecdsa.Dispose();
    }
}

/// <summary>An immutable snapshot of a provider's keys. <see cref="Version"/> changes only when the key material does.</summary>
public sealed class JwksKeySet
{
    internal JwksKeySet(IReadOnlyList<JwksKey> keys, long version)
    {
        Keys = keys;
        Version = version;
        var byKid = new Dictionary<string, JwksKey>(StringComparer.Ordinal);
        var duplicate = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            if (key.Kid is null)
                continue;
            if (!byKid.TryAdd(key.Kid, key))
                duplicate.Add(key.Kid);
        }
        // A kid naming two keys is ambiguous: neither is selectable by it.
        foreach (var kid in duplicate)
            byKid.Remove(kid);
        ByKid = byKid.ToFrozenDictionary(StringComparer.Ordinal);
        Fingerprint = string.Join('\n', keys.Select(k => k.Fingerprint).Order(StringComparer.Ordinal));
    }

    public IReadOnlyList<JwksKey> Keys { get; }

    public long Version { get; }

    internal FrozenDictionary<string, JwksKey> ByKid { get; }

    internal string Fingerprint { get; }
}

/// <summary>
/// Parses a JWKS into verification keys for one provider. Keys that cannot serve the provider are skipped, never
/// fatal: <c>use</c> other than "sig", <c>key_ops</c> without "verify", an <c>alg</c> outside the provider's list,
/// RSA under 2048 bits, EC curves other than P-256/384/521, <c>oct</c> keys for an asymmetric provider (and under
/// 256 bits for HS*). Private members (d, p, q, ...) are never read. A document with no usable key is a failure.
/// </summary>
internal static class JwksParser
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 16 };

    public static bool TryParse(string json, JwtProviderOptions options, [NotNullWhen(true)] out List<JwksKey>? keys, out string error)
        => TryParse(Encoding.UTF8.GetBytes(json), options, out keys, out error);

    public static bool TryParse(ReadOnlyMemory<byte> json, JwtProviderOptions options, [NotNullWhen(true)] out List<JwksKey>? keys, out string error)
    {
        keys = null;
        if (json.Length > options.MaxJwksBytes)
        {
            error = "the JWKS is larger than maxJwksBytes";
            return false;
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException)
        {
            error = "the JWKS is not valid JSON";
            return false;
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("keys", out var array) || array.ValueKind != JsonValueKind.Array)
            {
                error = "the JWKS has no 'keys' array";
                return false;
            }
            if (array.GetArrayLength() > options.MaxKeys)
            {
                error = "the JWKS holds more keys than maxKeys";
                return false;
            }
            var found = new List<JwksKey>();
            foreach (var element in array.EnumerateArray())
            {
                if (TryReadKey(element, options) is { } key)
                    found.Add(key);
            }
            if (found.Count == 0)
            {
                error = "the JWKS holds no key usable with the provider's algorithms";
                return false;
            }
            keys = found;
            error = "";
            return true;
        }
    }

    private static JwksKey? TryReadKey(JsonElement element, JwtProviderOptions options)
    {
        if (element.ValueKind != JsonValueKind.Object)
            return null;
        var kty = String(element, "kty");
        var use = String(element, "use");
        var alg = String(element, "alg");
        var kid = String(element, "kid");
        if (use is not null && use != "sig")
            return null;
        if (element.TryGetProperty("key_ops", out var ops))
        {
            if (ops.ValueKind != JsonValueKind.Array || !ops.EnumerateArray().Any(o => o.ValueKind == JsonValueKind.String && o.ValueEquals("verify")))
                return null;
        }
        if (alg is not null && !options.Algorithms.Contains(alg, StringComparer.Ordinal))
            return null;
        if (kid is { Length: > JwtValidator.MaxKidLength })
            return null;
        try
        {
            return kty switch
            {
                "RSA" => ReadRsa(element, kid, alg, options),
                "EC" => ReadEc(element, kid, alg, options),
                "oct" => ReadOct(element, kid, alg, options),
                _ => null,
            };
        }
        catch (Exception e) when (e is CryptographicException or FormatException or ArgumentException)
        {
            return null;
        }
    }

    private static JwksKey? ReadRsa(JsonElement element, string? kid, string? alg, JwtProviderOptions options)
    {
        if (!options.Algorithms.Any(a => JwtAlgorithms.KeyKindOf(a) == JwtKeyKind.Rsa))
            return null;
        var n = Bytes(element, "n");
        var e = Bytes(element, "e");
        if (n is null || e is null || e.Length > 8)
            return null;
        var modulus = n.AsSpan().TrimStart((byte)0);
        if (modulus.Length * 8 < 2048 || modulus.Length * 8 > 16384)
            return null;
        var rsa = RSA.Create();
        try
        {
            rsa.ImportParameters(new RSAParameters { Modulus = modulus.ToArray(), Exponent = e });
        }
        catch (CryptographicException)
        {
            rsa.Dispose();
            throw;
        }
        var key = new RsaSecurityKey(rsa) { KeyId = kid };
        return new JwksKey(kid, alg, JwtKeyKind.Rsa, key, $"RSA|{kid}|{alg}|{Convert.ToBase64String(modulus)}|{Convert.ToBase64String(e)}");
    }

    private static JwksKey? ReadEc(JsonElement element, string? kid, string? alg, JwtProviderOptions options)
    {
        var (kind, curve, size) = String(element, "crv") switch
        {
            "P-256" => (JwtKeyKind.EcP256, ECCurve.NamedCurves.nistP256, 32),
            "P-384" => (JwtKeyKind.EcP384, ECCurve.NamedCurves.nistP384, 48),
            "P-521" => (JwtKeyKind.EcP521, ECCurve.NamedCurves.nistP521, 66),
            _ => (JwtKeyKind.None, default, 0),
        };
        if (kind == JwtKeyKind.None || !options.Algorithms.Any(a => JwtAlgorithms.KeyKindOf(a) == kind))
            return null;
        var x = Bytes(element, "x");
        var y = Bytes(element, "y");
        if (x is null || y is null || x.Length != size || y.Length != size)
            return null;
        // Import validates that the point is on the curve.
        var ecdsa = ECDsa.Create(new ECParameters { Curve = curve, Q = new ECPoint { X = x, Y = y } });
        var key = new ECDsaSecurityKey(ecdsa) { KeyId = kid };
        return new JwksKey(kid, alg, kind, key, $"EC|{kid}|{alg}|{size}|{Convert.ToBase64String(x)}|{Convert.ToBase64String(y)}");
    }

    private static JwksKey? ReadOct(JsonElement element, string? kid, string? alg, JwtProviderOptions options)
    {
        // A symmetric key is usable only by an HS* provider; the options validator forbids HS* beside asymmetric algorithms.
        if (!options.Algorithms.Any(JwtAlgorithms.IsSymmetric))
            return null;
        var k = Bytes(element, "k");
        if (k is null || k.Length < 32)
            return null;
        var key = new SymmetricSecurityKey(k) { KeyId = kid };
        var fingerprint = Convert.ToHexString(SHA256.HashData(k));
        return new JwksKey(kid, alg, JwtKeyKind.Symmetric, key, $"oct|{kid}|{alg}|{fingerprint}");
    }

    private static string? String(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static byte[]? Bytes(JsonElement element, string name)
    {
        var text = String(element, name);
        if (string.IsNullOrEmpty(text) || text.Length > 4096)
            return null;
        try
        {
            return Base64Url.DecodeFromChars(text);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
