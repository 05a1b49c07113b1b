using System.Collections.Immutable;
using System.Security.Cryptography;

namespace Legate.Authz.ApiKeys;

/// <summary>
/// What is stored for one API key: never the key, only its SHA-256. A client may hold several records at once
/// (rotation: issue the new key, move callers over, then revoke or let the old one expire).
/// </summary>
/// <param name="KeyId">The key's public id (<see cref="ApiKeyFormat.KeyIdLength"/> base62 characters), the lookup key.</param>
/// <param name="Sha256">SHA-256 of the whole key text, 32 bytes.</param>
/// <param name="Scopes">Scopes granted; a route requiring one the key lacks is a 403, not a 401.</param>
/// <param name="ExpiresAt">The key stops working at this instant; null for no expiry.</param>
public sealed record ApiKeyRecord(
    string KeyId,
    ImmutableArray<byte> Sha256,
    string Tenant,
    string ClientId,
    ImmutableArray<string> Scopes,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt = null,
    bool Revoked = false,
    string? Plan = null,
    string? Description = null)
{
    public string KeyId { get; } = ApiKeyFormat.IsKeyId(KeyId) ? KeyId
        : throw new ArgumentException($"A key id is {ApiKeyFormat.KeyIdLength} base62 characters.", nameof(KeyId));

    public ImmutableArray<byte> Sha256 { get; } = !Sha256.IsDefault && Sha256.Length == SHA256.HashSizeInBytes ? Sha256
        : throw new ArgumentException($"A key hash is {SHA256.HashSizeInBytes} bytes.", nameof(Sha256));

    public string Tenant { get; } = !string.IsNullOrWhiteSpace(Tenant) ? Tenant : throw new ArgumentException("A key needs a tenant.", nameof(Tenant));

    public string ClientId { get; } = !string.IsNullOrWhiteSpace(ClientId) ? ClientId : throw new ArgumentException("A key needs a client id.", nameof(ClientId));

    public ImmutableArray<string> Scopes { get; } = Scopes.IsDefault ? [] : Scopes;

    /// <summary>Whether the key grants <paramref name="scope"/> (ordinal; keys hold a handful of scopes).</summary>
    public bool HasScope(string scope)
    {
        foreach (var s in Scopes)
        {
            if (string.Equals(s, scope, StringComparison.Ordinal))
                return true;
        }
        return false;
    }

    /// <summary>Whether the key has expired at <paramref name="now"/> (expiry is exclusive: at <see cref="ExpiresAt"/> it no longer works).</summary>
    public bool IsExpiredAt(DateTimeOffset now) => ExpiresAt is { } expires && now >= expires;

    /// <summary>The hash as lower-case hex, as the keys file and Redis hold it.</summary>
    public string Sha256Hex => Convert.ToHexStringLower(Sha256.AsSpan());

    // Records compare by value, the hash and scopes included (ImmutableArray compares by reference).
    public bool Equals(ApiKeyRecord? other) =>
        other is not null && KeyId == other.KeyId && Sha256.AsSpan().SequenceEqual(other.Sha256.AsSpan()) && Tenant == other.Tenant
        && ClientId == other.ClientId && Scopes.SequenceEqual(other.Scopes) && CreatedAt == other.CreatedAt && ExpiresAt == other.ExpiresAt
        && Revoked == other.Revoked && Plan == other.Plan && Description == other.Description;

    public override int GetHashCode() => HashCode.Combine(KeyId, Tenant, ClientId, CreatedAt, ExpiresAt, Revoked);
}
