using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

// Native libraries (only libcrypto.so.3) come from the system's search path, as .NET's own crypto loads them: never
// from beside the application.
[assembly: DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]

namespace Legate.Authz.Jwt;

/// <summary>What a native verify found. Only <see cref="Valid"/> allows; <see cref="Error"/> and
/// <see cref="Unavailable"/> send the call to the managed path.</summary>
internal enum NativeVerifyResult
{
    /// <summary>OpenSSL verified the signature (EVP_PKEY_verify returned 1).</summary>
    Valid,

    /// <summary>OpenSSL says the signature is bad (0), or its length is not the modulus size.</summary>
    Invalid,

    /// <summary>An internal error (negative return, no context): not an answer about the signature.</summary>
    Error,

    /// <summary>The verifier was disposed (its key rotated out) before or during the call.</summary>
    Unavailable,
}

/// <summary>
/// RS256/RS384/RS512 (RSASSA-PKCS1-v1_5) verification of one public key through the system OpenSSL (libcrypto.so.3,
/// the library .NET's own RSA uses on Linux), with verification contexts kept and reused. .NET's RSA.VerifyHash builds
/// and initialises a new EVP_PKEY_CTX on every call (OpenSSL 3 looks the algorithm up in its provider each time); a
/// context initialised once (verify_init, PKCS#1 padding, the digest) can verify any number of signatures. Measured on
/// the development machine (OpenSSL 3.0, RSA-2048): 1.13–1.21× .NET's rate, about `openssl speed rsa2048`'s verify rate. The signing input is hashed by .NET (SHA256.HashData etc.) and OpenSSL checks the
/// DigestInfo and padding strictly, as it does for .NET.
/// <para>A context is never used by two threads at once: each call takes one from a small per-digest pool of slots
/// (lock-free exchange) or makes one, and puts it back afterwards. Key and contexts are SafeHandles, so a verifier
/// disposed while a call is running frees the contexts only once they are back (OpenSSL's own reference count keeps
/// the key alive under a context), and one no longer referenced is freed by its finalizers.</para>
/// </summary>
internal sealed class OpenSslRsaVerifier : IDisposable
{
    /// <summary>Index of RS256, RS384, RS512 in the per-digest arrays.</summary>
    private const int Sha256 = 0, Sha384 = 1, Sha512 = 2;

    private readonly EvpPKeyHandle _key;
    private readonly EvpPKeyCtxHandle?[][] _pools;
    private readonly bool _initialiseContexts;
    private long _contextsCreated;
    private volatile bool _disposed;

    private OpenSslRsaVerifier(EvpPKeyHandle key, int signatureLength, bool initialiseContexts)
    {
        _key = key;
        SignatureLength = signatureLength;
        _initialiseContexts = initialiseContexts;
        // Room for every thread that may verify at once (thread-pool threads can outnumber cores), so contexts are not
        // made and freed under load (a context is small: the key is shared, not copied); beyond that, more are made on
        // demand and freed on return.
        var slots = Math.Clamp(Environment.ProcessorCount * 4, 16, 64);
        _pools = [new EvpPKeyCtxHandle?[slots], new EvpPKeyCtxHandle?[slots], new EvpPKeyCtxHandle?[slots]];
    }

    /// <summary>Whether libcrypto.so.3 (OpenSSL 3.x) is loadable here with every function this class calls.</summary>
    public static bool IsSupported => LibCrypto.Available;

    /// <summary>The modulus size in bytes: the only signature length accepted.</summary>
    public int SignatureLength { get; }

    /// <summary>Contexts made so far (a reused context is not counted again): for tests and the benchmark.</summary>
    public long ContextsCreated => Interlocked.Read(ref _contextsCreated);

    /// <summary>The digest index for RS256/RS384/RS512, else -1 (PS*, ES*, HS* are not handled here).</summary>
    public static int HashOf(string alg) => alg switch
    {
        "RS256" => Sha256,
        "RS384" => Sha384,
        "RS512" => Sha512,
        _ => -1,
    };

    /// <summary>
    /// A verifier for the public part of <paramref name="rsa"/>, or null when OpenSSL is not usable here or refuses the
    /// key. <paramref name="initialiseContexts"/> false makes contexts that OpenSSL refuses to verify with (tests of
    /// the error path only).
    /// </summary>
    public static OpenSslRsaVerifier? TryCreate(RSA rsa, bool initialiseContexts = true)
    {
        ArgumentNullException.ThrowIfNull(rsa);
        if (!LibCrypto.Available)
            return null;
        var spki = rsa.ExportSubjectPublicKeyInfo();
        var expectedLength = (rsa.KeySize + 7) / 8;
        EvpPKeyHandle key;
        unsafe
        {
            fixed (byte* der = spki)
            {
                var cursor = der;
                key = LibCrypto.d2i_PUBKEY(0, &cursor, new CLong(spki.Length));
            }
        }
        if (key.IsInvalid || LibCrypto.EVP_PKEY_get_base_id(key) != LibCrypto.EvpPKeyRsa || LibCrypto.EVP_PKEY_get_size(key) != expectedLength)
        {
            key.Dispose();
            LibCrypto.ERR_clear_error();
            return null;
        }
        return new OpenSslRsaVerifier(key, expectedLength, initialiseContexts);
    }

    /// <summary>
    /// Verifies <paramref name="signature"/> over <paramref name="input"/> (the JWS signing input) with digest
    /// <paramref name="hash"/> (<see cref="HashOf"/>). Valid only when OpenSSL returns 1.
    /// </summary>
    public NativeVerifyResult Verify(int hash, ReadOnlySpan<byte> input, ReadOnlySpan<byte> signature)
    {
        if ((uint)hash > Sha512)
            throw new ArgumentOutOfRangeException(nameof(hash));
        if (signature.Length != SignatureLength)
            return NativeVerifyResult.Invalid;
        Span<byte> digest = stackalloc byte[SHA512.HashSizeInBytes];
        var digestLength = hash switch
        {
            Sha256 => SHA256.HashData(input, digest),
            Sha384 => SHA384.HashData(input, digest),
            _ => SHA512.HashData(input, digest),
        };
        if (_disposed)
            return NativeVerifyResult.Unavailable;

        EvpPKeyCtxHandle? context;
        try
        {
            context = Rent(hash);
        }
        catch (ObjectDisposedException)
        {
            // The key handle was disposed between the check above and EVP_PKEY_CTX_new.
            return NativeVerifyResult.Unavailable;
        }
        if (context is null)
            return NativeVerifyResult.Error;

        var result = LibCrypto.EVP_PKEY_verify(context, signature, (nuint)signature.Length, digest[..digestLength], (nuint)digestLength);
        if (result == 1)
        {
            Return(hash, context);
            return NativeVerifyResult.Valid;
        }
        // A failed verify leaves errors on this thread's OpenSSL queue, which .NET's own crypto calls would read later.
        LibCrypto.ERR_clear_error();
        if (result == 0)
        {
            Return(hash, context);
            return NativeVerifyResult.Invalid;
        }
        // An internal error: the context's state is unknown, so it is not reused.
        context.Dispose();
        return NativeVerifyResult.Error;
    }

    public void Dispose()
    {
        _disposed = true;
        Drain();
        _key.Dispose();
    }

    private EvpPKeyCtxHandle? Rent(int hash)
    {
        var slots = _pools[hash];
        var start = (uint)Environment.CurrentManagedThreadId % (uint)slots.Length;
        for (var i = 0; i < slots.Length; i++)
        {
            ref var slot = ref slots[(start + i) % slots.Length];
            if (Volatile.Read(ref slot) is not null && Interlocked.Exchange(ref slot, null) is { } pooled)
                return pooled;
        }
        return CreateContext(hash);
    }

    private void Return(int hash, EvpPKeyCtxHandle context)
    {
        if (!_disposed)
        {
            var slots = _pools[hash];
            var start = (uint)Environment.CurrentManagedThreadId % (uint)slots.Length;
            for (var i = 0; i < slots.Length; i++)
            {
                if (Interlocked.CompareExchange(ref slots[(start + i) % slots.Length], context, null) is null)
                {
                    // Disposed meanwhile: Dispose's drain may have run before this push, so drain again.
                    if (_disposed)
                        Drain();
                    return;
                }
            }
        }
        context.Dispose();
    }

    private void Drain()
    {
        foreach (var slots in _pools)
        {
            for (var i = 0; i < slots.Length; i++)
                Interlocked.Exchange(ref slots[i], null)?.Dispose();
        }
    }

    private EvpPKeyCtxHandle? CreateContext(int hash)
    {
        var context = LibCrypto.EVP_PKEY_CTX_new(_key, 0);
        if (context.IsInvalid
            || (_initialiseContexts
                && (LibCrypto.EVP_PKEY_verify_init(context) <= 0
                    || LibCrypto.EVP_PKEY_CTX_set_rsa_padding(context, LibCrypto.RsaPkcs1Padding) <= 0
                    || LibCrypto.EVP_PKEY_CTX_set_signature_md(context, LibCrypto.Digest(hash)) <= 0)))
        {
            context.Dispose();
            LibCrypto.ERR_clear_error();
            return null;
        }
        Interlocked.Increment(ref _contextsCreated);
        return context;
    }
}

/// <summary>An OpenSSL EVP_PKEY, freed with EVP_PKEY_free.</summary>
internal sealed class EvpPKeyHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public EvpPKeyHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle()
    {
        LibCrypto.EVP_PKEY_free(handle);
        return true;
    }
}

/// <summary>An OpenSSL EVP_PKEY_CTX, freed with EVP_PKEY_CTX_free (which drops its reference to the key).</summary>
internal sealed class EvpPKeyCtxHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public EvpPKeyCtxHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle()
    {
        LibCrypto.EVP_PKEY_CTX_free(handle);
        return true;
    }
}

/// <summary>The few libcrypto.so.3 functions <see cref="OpenSslRsaVerifier"/> calls (all real functions in OpenSSL 3,
/// not macros).</summary>
internal static partial class LibCrypto
{
    public const string Name = "libcrypto.so.3";
    public const int EvpPKeyRsa = 6;
    public const int RsaPkcs1Padding = 1;

    private static readonly string[] Functions =
    [
        "OPENSSL_version_major", "ERR_clear_error", "d2i_PUBKEY", "EVP_PKEY_free", "EVP_PKEY_get_base_id", "EVP_PKEY_get_size",
        "EVP_PKEY_CTX_new", "EVP_PKEY_CTX_free", "EVP_PKEY_verify_init", "EVP_PKEY_CTX_set_rsa_padding",
        "EVP_PKEY_CTX_set_signature_md", "EVP_PKEY_verify", "EVP_sha256", "EVP_sha384", "EVP_sha512",
    ];

    private static readonly nint[] Digests = new nint[3];

    /// <summary>Loaded, OpenSSL 3 or newer, every function present, the digests known.</summary>
    public static readonly bool Available = Probe();

    public static nint Digest(int hash) => Digests[hash];

    private static bool Probe()
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad(Name, typeof(LibCrypto).Assembly, DllImportSearchPath.SafeDirectories, out var library))
            return false;
        foreach (var function in Functions)
        {
            if (!NativeLibrary.TryGetExport(library, function, out _))
                return false;
        }
        if (OPENSSL_version_major() < 3)
            return false;
        Digests[0] = EVP_sha256();
        Digests[1] = EVP_sha384();
        Digests[2] = EVP_sha512();
        return Array.TrueForAll(Digests, d => d != 0);
    }

    [LibraryImport(Name)]
    public static partial uint OPENSSL_version_major();

    [LibraryImport(Name)]
    public static partial void ERR_clear_error();

    [LibraryImport(Name)]
    public static unsafe partial EvpPKeyHandle d2i_PUBKEY(nint existing, byte** der, CLong length);

    [LibraryImport(Name)]
    public static partial void EVP_PKEY_free(nint key);

    [LibraryImport(Name)]
    public static partial int EVP_PKEY_get_base_id(EvpPKeyHandle key);

    [LibraryImport(Name)]
    public static partial int EVP_PKEY_get_size(EvpPKeyHandle key);

    [LibraryImport(Name)]
    public static partial EvpPKeyCtxHandle EVP_PKEY_CTX_new(EvpPKeyHandle key, nint engine);

    [LibraryImport(Name)]
    public static partial void EVP_PKEY_CTX_free(nint context);

    [LibraryImport(Name)]
    public static partial int EVP_PKEY_verify_init(EvpPKeyCtxHandle context);

    [LibraryImport(Name)]
    public static partial int EVP_PKEY_CTX_set_rsa_padding(EvpPKeyCtxHandle context, int padding);

    [LibraryImport(Name)]
    public static partial int EVP_PKEY_CTX_set_signature_md(EvpPKeyCtxHandle context, nint digest);

    [LibraryImport(Name)]
    public static partial int EVP_PKEY_verify(EvpPKeyCtxHandle context, ReadOnlySpan<byte> signature, nuint signatureLength,
        ReadOnlySpan<byte> digest, nuint digestLength);

    [LibraryImport(Name)]
    public static partial nint EVP_sha256();

    [LibraryImport(Name)]
    public static partial nint EVP_sha384();

    [LibraryImport(Name)]
    public static partial nint EVP_sha512();
}

/// <summary>Log events of native RSA verification (ids 310–311; stable, as <see cref="JwtLog"/>'s).</summary>
internal static partial class NativeRsaLog
{
    [LoggerMessage(EventId = 310, EventName = "NativeRsaUnavailable", Level = LogLevel.Information,
        Message = "RS256/RS384/RS512 signatures are verified by .NET's RSA: libcrypto.so.3 (OpenSSL 3) is not usable here")]
    public static partial void Unavailable(ILogger logger);

    [LoggerMessage(EventId = 311, EventName = "NativeRsaFailed", Level = LogLevel.Warning,
        Message = "OpenSSL failed internally verifying an {Alg} signature; that call and later failures use .NET's RSA (logged once)")]
    public static partial void Failed(ILogger logger, string alg);
}
