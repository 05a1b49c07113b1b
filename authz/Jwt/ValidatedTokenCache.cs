using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Legate.Authz.Jwt;

/// <summary>
/// Tokens already validated, so a repeated token costs a SHA-256 and a dictionary lookup instead of a signature check.
/// <list type="bullet">
/// <item>Keyed by SHA-256 of the token (plus the provider), not the token: the cache then never retains bearer
/// credentials (a heap dump or a debugger shows no usable token), keys are a fixed 32 bytes whatever the token size,
/// and SHA-256's collision resistance means no other token can hit an entry.</item>
/// <item>An entry lives until the token's <c>exp</c> or <c>now + maxEntryLifetime</c>, whichever is first, and only while
/// the provider's key set version is the one it was validated under (a key change re-verifies every token).</item>
/// <item>Bounded: an insert into a full cache drops expired entries, then arbitrary ones down to 90 % of capacity;
/// inserts are skipped (never blocked) while another caller is making room and the cache is 10 % over.</item>
/// </list>
/// </summary>
public sealed class ValidatedTokenCache
{
    private readonly ConcurrentDictionary<TokenCacheKey, Entry> _entries = new();
    private readonly Lock _sweepLock = new();
    private readonly TimeProvider _time;
    private readonly int _capacity;
    private readonly int _ceiling;
    private readonly int _target;
    private readonly TimeSpan _maxEntryLifetime;
    private int _count;
    private readonly Prometheus.Counter.Child? _hits;
    private readonly Prometheus.Counter.Child? _misses;

    /// <param name="metrics">For <c>legate_authz_token_cache_total{result="hit"|"miss"}</c>; none when null.</param>
    public ValidatedTokenCache(TimeProvider time, int capacity = 10_000, TimeSpan? maxEntryLifetime = null, Prometheus.IMetricFactory? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _time = time;
        _capacity = capacity;
        _ceiling = capacity + Math.Max(1, capacity / 10);
        _target = capacity - Math.Max(1, capacity / 10);
        _maxEntryLifetime = maxEntryLifetime ?? TimeSpan.FromMinutes(10);
        if (metrics is not null)
        {
            var lookups = metrics.CreateCounter("legate_authz_token_cache_total", "Lookups of JWTs in the validated-token cache, by result (hit: no signature check).", ["result"]);
            _hits = lookups.WithLabels("hit");
            _misses = lookups.WithLabels("miss");
        }
    }

    public int Count => Volatile.Read(ref _count);

    public int Capacity => _capacity;

    internal bool TryGet(in TokenCacheKey key, long keyVersion, out JwtResult? result)
    {
        if (_entries.TryGetValue(key, out var entry))
        {
            if (entry.KeyVersion == keyVersion && _time.GetUtcNow().UtcTicks < entry.ExpiresAtTicks)
            {
                _hits?.Inc();
                result = entry.Result;
                return true;
            }
            Remove(key, entry);
        }
        _misses?.Inc();
        result = null;
        return false;
    }

    internal void Add(in TokenCacheKey key, long keyVersion, JwtResult result, DateTimeOffset tokenExpiry)
    {
        var now = _time.GetUtcNow();
        var until = Math.Min(tokenExpiry.UtcTicks, (now + _maxEntryLifetime).UtcTicks);
        if (until <= now.UtcTicks)
            return;
        if (Volatile.Read(ref _count) >= _capacity && !MakeRoom(now.UtcTicks))
            return;
        var entry = new Entry(result, keyVersion, until);
        if (_entries.TryAdd(key, entry))
        {
            Interlocked.Increment(ref _count);
        }
        else if (_entries.TryGetValue(key, out var old) && _entries.TryUpdate(key, entry, old))
        {
            // Replaced a stale entry (older key version): the count is unchanged.
        }
    }

    public void Clear()
    {
        foreach (var pair in _entries)
            Remove(pair.Key, pair.Value);
    }

    private void Remove(TokenCacheKey key, Entry entry)
    {
        if (_entries.TryRemove(KeyValuePair.Create(key, entry)))
            Interlocked.Decrement(ref _count);
    }

    /// <summary>False when the cache is over its ceiling and another caller is already sweeping: skip the insert.</summary>
    private bool MakeRoom(long nowTicks)
    {
        if (!_sweepLock.TryEnter())
            return Volatile.Read(ref _count) < _ceiling;
        try
        {
            foreach (var pair in _entries)
            {
                if (pair.Value.ExpiresAtTicks <= nowTicks)
                    Remove(pair.Key, pair.Value);
            }
            if (Volatile.Read(ref _count) > _target)
            {
                foreach (var pair in _entries)
                {
                    Remove(pair.Key, pair.Value);
                    if (Volatile.Read(ref _count) <= _target)
                        break;
                }
            }
            return true;
        }
        finally
        {
            _sweepLock.Exit();
        }
    }

    private sealed record Entry(JwtResult Result, long KeyVersion, long ExpiresAtTicks);
}

/// <summary>SHA-256 of a token, scoped to one provider. A value type: computing and looking it up allocates nothing.</summary>
internal readonly record struct TokenCacheKey(int Provider, ulong A, ulong B, ulong C, ulong D)
{
    private const int StackLimit = 8 * 1024;

    // The buffers are written before they are read: skip zeroing up to 8 KB per call.
    [System.Runtime.CompilerServices.SkipLocalsInit]
    public static TokenCacheKey Compute(int provider, ReadOnlySpan<char> token)
    {
        Span<byte> hash = stackalloc byte[32];
        var count = Encoding.UTF8.GetByteCount(token);
        byte[]? rented = null;
        var buffer = count <= StackLimit ? stackalloc byte[count] : (rented = ArrayPool<byte>.Shared.Rent(count));
        try
        {
            var length = Encoding.UTF8.GetBytes(token, buffer);
            SHA256.HashData(buffer[..length], hash);
        }
        finally
        {
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented, clearArray: true);
        }
        var words = MemoryMarshal.Cast<byte, ulong>(hash);
        return new TokenCacheKey(provider, words[0], words[1], words[2], words[3]);
    }
}
