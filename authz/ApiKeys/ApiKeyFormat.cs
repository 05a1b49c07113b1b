using System.Buffers;
using System.Collections.Immutable;
using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text;

namespace Legate.Authz.ApiKeys;

/// <summary>Why a presented key is not even shaped like one of ours.</summary>
public enum ApiKeyFormatError
{
    None,
    Empty,

    /// <summary>Longer than any key can be: rejected before any other work.</summary>
    Oversized,
    WrongLength,
    WrongPrefix,
    BadSeparator,

    /// <summary>A character outside <c>[0-9A-Za-z]</c> in the id, secret or checksum (covers whitespace and control characters).</summary>
    NotBase62,
    BadChecksum,
}

/// <summary>A freshly generated key: <see cref="Key"/> is shown to its owner once; only <see cref="Record"/> is stored.</summary>
public sealed record GeneratedApiKey(string Key, ApiKeyRecord Record)
{
    // The key is a secret: keep it out of anything that prints records (logs, test output, debugger displays).
    public override string ToString() => $"GeneratedApiKey {{ KeyId = {Record.KeyId} }}";
}

/// <summary>
/// Self-identifying API keys, GitHub-token style: <c>{prefix}_{keyId}_{secret}_{checksum}</c>, e.g.
/// <c>lgt_4fT9xQ2mZp0K_…43 chars…_0aB3cD</c>.
/// <list type="bullet">
/// <item>the prefix (default <c>lgt</c>, per deployment) lets secret scanners and people recognise the key;</item>
/// <item>the key id (12 base62 characters, ~71 random bits) is public and is the O(1) lookup key in a store;</item>
/// <item>the secret is 43 base62 characters, ~256 random bits, so a plain SHA-256 at rest suffices (no slow KDF);</item>
/// <item>the checksum is the CRC32 of everything before it, as 6 base62 characters: a typo or garbage fails here,
/// with no store lookup (it is not a MAC: it stops accidents and cheap floods, not forgeries, which the hash stops).</item>
/// </list>
/// Underscores keep the whole key selectable with a double click. The stored hash is SHA-256 of the whole key text,
/// so a key only matches under the prefix it was issued with.
/// </summary>
public sealed class ApiKeyFormat
{
    public const string DefaultPrefix = "lgt";
    public const int KeyIdLength = 12;
    public const int SecretLength = 43;
    public const int ChecksumLength = 6;
    public const int MaxPrefixLength = 16;

    /// <summary>No key of any prefix is longer: presented text beyond this is rejected before anything else.</summary>
    public const int MaxKeyLength = MaxPrefixLength + 3 + KeyIdLength + SecretLength + ChecksumLength;

    private const string Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    private readonly string _prefix;

    /// <summary>What a prefix may be, in words: one rule for this class, the policy file's <c>api_keys.prefix</c> and <c>legate keys create --prefix</c>.</summary>
    public static string PrefixRule { get; } = $"1 to {MaxPrefixLength} lower-case ASCII letters or digits";

    // Before Default: static initialisers run in order, and the constructor checks the prefix with it.
    private static readonly SearchValues<char> PrefixValues = SearchValues.Create("0123456789abcdefghijklmnopqrstuvwxyz");

    public ApiKeyFormat(string prefix = DefaultPrefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (!IsPrefix(prefix))
            throw new ArgumentException($"An API key prefix is {PrefixRule}.", nameof(prefix));
        _prefix = prefix;
        KeyLength = prefix.Length + 3 + KeyIdLength + SecretLength + ChecksumLength;
    }

    /// <summary>The default format (<c>lgt_</c>).</summary>
    public static ApiKeyFormat Default { get; } = new();

    public string Prefix => _prefix;

    /// <summary>The exact length of every key in this format.</summary>
    public int KeyLength { get; }

    private int KeyIdStart => _prefix.Length + 1;

    private int SecretStart => KeyIdStart + KeyIdLength + 1;

    private int ChecksumStart => SecretStart + SecretLength + 1;

    /// <summary>Makes a new key and the record to store for it (hash only).</summary>
    public GeneratedApiKey Generate(string tenant, string clientId, IEnumerable<string>? scopes, DateTimeOffset createdAt,
        DateTimeOffset? expiresAt = null, string? plan = null, string? description = null)
    {
        var key = string.Create(KeyLength, this, static (span, format) =>
        {
            format._prefix.AsSpan().CopyTo(span);
            span[format._prefix.Length] = '_';
            RandomNumberGenerator.GetItems(Base62, span.Slice(format.KeyIdStart, KeyIdLength));
            span[format.SecretStart - 1] = '_';
            RandomNumberGenerator.GetItems(Base62, span.Slice(format.SecretStart, SecretLength));
            span[format.ChecksumStart - 1] = '_';
            WriteChecksum(Checksum(span[..(format.ChecksumStart - 1)]), span.Slice(format.ChecksumStart, ChecksumLength));
        });
        var record = new ApiKeyRecord(key.Substring(KeyIdStart, KeyIdLength), Hash(key), tenant, clientId,
            scopes is null ? [] : [.. scopes], createdAt, expiresAt, Revoked: false, plan, description);
        return new GeneratedApiKey(key, record);
    }

    /// <summary>Checks the shape and checksum of presented text, allocating nothing; on success <paramref name="keyId"/> is where the id is.</summary>
    public ApiKeyFormatError Check(ReadOnlySpan<char> text, out Range keyId)
    {
        keyId = default;
        if (text.IsEmpty)
            return ApiKeyFormatError.Empty;
        if (text.Length > MaxKeyLength)
            return ApiKeyFormatError.Oversized;
        if (text.Length != KeyLength)
            return ApiKeyFormatError.WrongLength;
        if (!text.StartsWith(_prefix, StringComparison.Ordinal))
            return ApiKeyFormatError.WrongPrefix;
        if (text[KeyIdStart - 1] != '_' || text[SecretStart - 1] != '_' || text[ChecksumStart - 1] != '_')
            return ApiKeyFormatError.BadSeparator;
        if (!IsBase62(text.Slice(KeyIdStart, KeyIdLength)) || !IsBase62(text.Slice(SecretStart, SecretLength))
            || !IsBase62(text.Slice(ChecksumStart, ChecksumLength)))
        {
            return ApiKeyFormatError.NotBase62;
        }
        Span<char> expected = stackalloc char[ChecksumLength];
        WriteChecksum(Checksum(text[..(ChecksumStart - 1)]), expected);
        if (!expected.SequenceEqual(text.Slice(ChecksumStart, ChecksumLength)))
            return ApiKeyFormatError.BadChecksum;
        keyId = new Range(KeyIdStart, KeyIdStart + KeyIdLength);
        return ApiKeyFormatError.None;
    }

    /// <summary>Whether <paramref name="text"/> is a well-formed key of this format; if so, its key id (the only allocation).</summary>
    public bool TryParse(ReadOnlySpan<char> text, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? keyId)
    {
        if (Check(text, out var range) != ApiKeyFormatError.None)
        {
            keyId = null;
            return false;
        }
        keyId = new string(text[range]);
        return true;
    }

    /// <summary>Whether <paramref name="prefix"/> may be a key prefix (<see cref="PrefixRule"/>).</summary>
    public static bool IsPrefix(ReadOnlySpan<char> prefix) => prefix.Length is > 0 and <= MaxPrefixLength && !prefix.ContainsAnyExcept(PrefixValues);

    /// <summary>Whether <paramref name="keyId"/> has the shape of a key id (the store files and Redis are checked with it).</summary>
    public static bool IsKeyId(ReadOnlySpan<char> keyId) => keyId.Length == KeyIdLength && IsBase62(keyId);

    /// <summary>SHA-256 of a key's text into <paramref name="destination"/> (32 bytes); no allocation for keys of a sane length.</summary>
    public static void Hash(ReadOnlySpan<char> key, Span<byte> destination)
    {
        // Keys are ASCII once checked; anything else is hashed as UTF-8 so distinct inputs never collide.
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = max > 512 ? ArrayPool<byte>.Shared.Rent(max) : null;
        Span<byte> buffer = rented ?? stackalloc byte[512];
        try
        {
            var length = Encoding.UTF8.GetBytes(key, buffer);
            SHA256.HashData(buffer[..length], destination);
        }
        finally
        {
            if (rented is not null)
            {
                CryptographicOperations.ZeroMemory(rented);
                ArrayPool<byte>.Shared.Return(rented);
            }
            else
            {
                CryptographicOperations.ZeroMemory(buffer);
            }
        }
    }

    /// <summary>SHA-256 of a key's text.</summary>
    public static ImmutableArray<byte> Hash(ReadOnlySpan<char> key)
    {
        var hash = new byte[SHA256.HashSizeInBytes];
        Hash(key, hash);
        return ImmutableArray.Create(hash);
    }

    private static bool IsBase62(ReadOnlySpan<char> text) => !text.ContainsAnyExcept(Base62Values);

    private static readonly SearchValues<char> Base62Values = SearchValues.Create(Base62);

    private static uint Checksum(ReadOnlySpan<char> text)
    {
        // Only called on ASCII text of at most MaxKeyLength characters.
        Span<byte> bytes = stackalloc byte[MaxKeyLength];
        var length = Encoding.ASCII.GetBytes(text, bytes);
        return Crc32.HashToUInt32(bytes[..length]);
    }

    // 62^6 > 2^32, so six fixed-width digits hold any CRC32.
    private static void WriteChecksum(uint value, Span<char> destination)
    {
        for (var i = ChecksumLength - 1; i >= 0; i--)
        {
            destination[i] = Base62[(int)(value % 62)];
            value /= 62;
        }
    }
}
