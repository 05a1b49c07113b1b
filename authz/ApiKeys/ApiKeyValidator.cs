using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Legate.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Legate.Authz.ApiKeys;

/// <summary>Why a presented key was refused. Every one is a 401 to the client except <see cref="StoreUnavailable"/> (fail closed, 503).</summary>
public enum ApiKeyFailure
{
    None,

    /// <summary>Not shaped like a key, or a bad checksum: refused without a store lookup.</summary>
    Malformed,

    /// <summary>No such key id, or the id exists but the key does not hash to it (the two are indistinguishable on purpose).</summary>
    Unknown,
    Revoked,
    Expired,

    /// <summary>A real key, but of another tenant than the route's.</summary>
    WrongTenant,
    StoreUnavailable,
}

/// <summary>The outcome of checking a key: the record when it is good, otherwise why not.</summary>
public readonly record struct ApiKeyResult(ApiKeyRecord? Record, ApiKeyFailure Failure)
{
    public bool Succeeded => Failure == ApiKeyFailure.None;

    public static ApiKeyResult Success(ApiKeyRecord record) => new(record, ApiKeyFailure.None);

    public static ApiKeyResult Fail(ApiKeyFailure failure) => new(null, failure);
}

/// <summary>
/// Checks presented API keys: shape and checksum first (no store lookup for garbage), then one lookup by key id, then
/// SHA-256 of the presented key against the stored hash with <see cref="CryptographicOperations.FixedTimeEquals"/>.
/// <para>
/// Timing: an unknown key id still hashes the presented key and compares it with a dummy hash, so a well-formed
/// key costs the same hash and compare whether its id exists or not. (The store lookup itself may differ, e.g. a
/// cache hit; the id is public, unguessable to enumerate at ~71 bits, and learning that an id exists gives nothing
/// without its 256-bit secret.) Revoked and expired are reported only after the hash matched, so only the key's
/// holder learns that state.
/// </para>
/// </summary>
public sealed class ApiKeyValidator
{
    // Compared against when the id is unknown; no key hashes to it in practice.
    private static readonly byte[] DummyHash = SHA256.HashData("legate-api-key-dummy"u8);

    private readonly IApiKeyStore _store;
    private readonly ApiKeyFormat _format;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    // A store outage fails every lookup: at most one log line per interval, with the lookups refused since the last.
    private readonly EventThrottle _refusals;

    public ApiKeyValidator(IApiKeyStore store, TimeProvider time, ApiKeyFormat? format = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(time);
        _store = store;
        _time = time;
        _format = format ?? ApiKeyFormat.Default;
        _logger = logger ?? NullLogger.Instance;
        _refusals = new EventThrottle(time);
    }

    /// <summary>
    /// Checks <paramref name="presentedKey"/>; with <paramref name="tenant"/>, also that the key belongs to it.
    /// Completes synchronously when the store does (the file store always does).
    /// </summary>
    public ValueTask<ApiKeyResult> ValidateAsync(string presentedKey, CancellationToken cancellationToken, string? tenant = null)
    {
        ArgumentNullException.ThrowIfNull(presentedKey);
        if (!_format.TryParse(presentedKey, out var keyId))
        {
            ApiKeysLog.KeyRejected(_logger, ApiKeyFailure.Malformed, null);
            return new ValueTask<ApiKeyResult>(ApiKeyResult.Fail(ApiKeyFailure.Malformed));
        }

        ValueTask<ApiKeyRecord?> lookup;
        try
        {
            lookup = _store.FindAsync(keyId, cancellationToken);
        }
        catch (ApiKeyStoreUnavailableException)
        {
            return new ValueTask<ApiKeyResult>(Unavailable(keyId));
        }
        if (lookup.IsCompletedSuccessfully)
            return new ValueTask<ApiKeyResult>(Decide(presentedKey, keyId, lookup.Result, tenant));
        return AwaitLookupAsync(lookup, presentedKey, keyId, tenant);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private async ValueTask<ApiKeyResult> AwaitLookupAsync(ValueTask<ApiKeyRecord?> lookup, string presentedKey, string keyId, string? tenant)
    {
        ApiKeyRecord? record;
        try
        {
            record = await lookup.ConfigureAwait(false);
        }
        catch (ApiKeyStoreUnavailableException)
        {
            return Unavailable(keyId);
        }
        return Decide(presentedKey, keyId, record, tenant);
    }

    private ApiKeyResult Unavailable(string keyId)
    {
        if (_refusals.TryReport(out var refused))
            ApiKeysLog.StoreUnavailable(_logger, refused, _refusals.Interval.TotalSeconds, keyId);
        return ApiKeyResult.Fail(ApiKeyFailure.StoreUnavailable);
    }

    private ApiKeyResult Decide(string presentedKey, string keyId, ApiKeyRecord? record, string? tenant)
    {
        Span<byte> presented = stackalloc byte[SHA256.HashSizeInBytes];
        ApiKeyFormat.Hash(presentedKey, presented);
        // Same work whether the id exists or not: hash, then one fixed-time compare.
        var stored = record is not null && string.Equals(record.KeyId, keyId, StringComparison.Ordinal) ? record.Sha256.AsSpan() : DummyHash;
        var matches = CryptographicOperations.FixedTimeEquals(presented, stored) && record is not null;
        var failure = !matches ? ApiKeyFailure.Unknown
            : record!.Revoked ? ApiKeyFailure.Revoked
            : record.IsExpiredAt(_time.GetUtcNow()) ? ApiKeyFailure.Expired
            : tenant is not null && !string.Equals(record.Tenant, tenant, StringComparison.Ordinal) ? ApiKeyFailure.WrongTenant
            : ApiKeyFailure.None;
        if (failure != ApiKeyFailure.None)
        {
            ApiKeysLog.KeyRejected(_logger, failure, keyId);
            return ApiKeyResult.Fail(failure);
        }
        return ApiKeyResult.Success(record!);
    }
}

/// <summary>Log events of the API key component. Only key ids (public) are logged, never keys or hashes.</summary>
internal static partial class ApiKeysLog
{
    [LoggerMessage(EventId = 320, EventName = "ApiKeyRejected", Level = LogLevel.Debug, Message = "API key rejected: {Reason} (key id {KeyId})")]
    public static partial void KeyRejected(ILogger logger, ApiKeyFailure reason, string? keyId);

    [LoggerMessage(EventId = 321, EventName = "ApiKeyStoreUnavailable", Level = LogLevel.Warning,
        Message = "API key store unavailable: {RefusedLookups} lookup(s) refused since the last such line (at most one every {IntervalSeconds} s), the latest for key id {KeyId}")]
    public static partial void StoreUnavailable(ILogger logger, long refusedLookups, double intervalSeconds, string keyId);

    [LoggerMessage(EventId = 322, EventName = "ApiKeyRecordInvalid", Level = LogLevel.Error,
        Message = "Stored API key record {KeyId} is invalid: {Problem}; refusing. {InvalidLookups} lookup(s) found an invalid record since the last such line (at most one every {IntervalSeconds} s)")]
    public static partial void RecordInvalid(ILogger logger, string keyId, string problem, long invalidLookups, double intervalSeconds);
}
