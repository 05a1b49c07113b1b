using Legate.RateLimit.Stores;
using Microsoft.Extensions.Options;

namespace Legate.RateLimit;

/// <summary>How the ratelimit service counts and answers. Bound from <c>Legate:RateLimit</c>.</summary>
public sealed class RateLimitOptions
{
    public const string SectionName = "Legate:RateLimit";

    /// <summary><c>memory</c> (one instance; the embedded default) or <c>redis</c> (shared by every replica; needs <c>Legate:Redis:Configuration</c>).</summary>
    public string Store { get; set; } = "memory";

    /// <summary>Prefix of every counter key, so several deployments can share one Redis.</summary>
    public string KeyPrefix { get; set; } = "legate:rl:";

    /// <summary>
    /// How long a call may wait for the counter store before answering UNAVAILABLE, so that Envoy's
    /// <c>failure_mode_deny</c> decides instead of its own 20 ms timeout firing first.
    /// </summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Whether hits that are rejected still count (envoyproxy/ratelimit's behaviour, the default). Off, a rejected
    /// request counts against none of its counters (its STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT), so a client hammering
    /// while limited neither extends its own penalty nor uses up its other quotas; see RateLimiter.RejectedByCheck.
    /// </summary>
    public bool CountRejectedHits { get; set; } = true;

    /// <summary>Global shadow mode: decide and count as usual, but always answer OK overall (descriptor statuses still tell).</summary>
    public bool ShadowMode { get; set; }

    /// <summary>Share of a limit above which hits count as near the limit in metrics.</summary>
    public double NearLimitRatio { get; set; } = 0.8;

    /// <summary>
    /// Remember counters found over their limit until their window ends and answer them without asking the store.
    /// Safe because a counter's key names its window. Applies to the Redis store.
    /// </summary>
    public bool LocalOverLimitCache { get; set; } = true;

    /// <summary>
    /// Write-behind counting for the Redis store (off by default): a counter this instance has seen in its window is
    /// decided here and its hits sent to Redis every <see cref="WriteBehindInterval"/>, instead of a round trip per
    /// call. Exact for one instance; with several, a counter can admit more than its limit until each replica has heard
    /// the others' hits (see the README). Replaces the over-limit cache, which it makes redundant.
    /// </summary>
    public bool WriteBehind { get; set; }

    /// <summary>With <see cref="WriteBehind"/>: how often the hits gathered here go to Redis (1 ms..10 s).</summary>
    public TimeSpan WriteBehindInterval { get; set; } = WriteBehindCounterStore.DefaultInterval;

    /// <summary>
    /// Degraded mode for the Redis store: while Redis fails, keep limiting with this instance's own in-memory
    /// counters (each replica on its own) instead of answering UNAVAILABLE; return to Redis once it answers.
    /// </summary>
    public bool DegradedMode { get; set; }

    /// <summary>In degraded mode, how often one call tries Redis again (10 ms..1 h).</summary>
    public TimeSpan DegradedRetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Whether <c>/readyz</c> and the gRPC health service report not-ready while the Redis store is unreachable. Unset,
    /// it follows <see cref="DegradedMode"/>: true without it, false with it (see <see cref="ReadinessFollowsStore"/>).
    /// </summary>
    public bool? ReadinessRequiresStore { get; set; }

    /// <summary>
    /// The readiness rule in force. Degraded mode exists to keep answering while Redis is down; were readiness to
    /// follow Redis too, Kubernetes would take every pod out of service at that very moment and Envoy would get no
    /// answer at all, so a platform team turning degraded mode on expects the pods to stay ready. An explicit
    /// <c>true</c> is still honoured rather than refused: it has a use (in a partial partition, traffic goes to the
    /// pods that still reach Redis) and whoever writes both keys has chosen that trade.
    /// </summary>
    public bool ReadinessFollowsStore => ReadinessRequiresStore ?? !DegradedMode;

    /// <summary>
    /// Group commit on a standalone Redis or a Sentinel's primary: the counter updates of concurrent calls go to Redis
    /// together, in one script run, instead of one script per counter. A Redis Cluster always gets one script per counter.
    /// </summary>
    public bool RedisBatching { get; set; } = true;

    /// <summary>A batch closes once it holds this many counters (1..4096).</summary>
    public int RedisBatchMaxCounters { get; set; } = RedisBatchOptions.DefaultMaxCounters;

    /// <summary>Batches sent and not yet answered at once (1..64); while all are out, calls gather for the next one.</summary>
    public int RedisBatchesInFlight { get; set; } = RedisBatchOptions.DefaultMaxInFlight;

    /// <summary>Most counters the in-memory store keeps; beyond it the ones closest to expiry go first.</summary>
    public int MaxMemoryCounters { get; set; } = 1_000_000;

    /// <summary>Accept the same domain in several files, merging them (envoyproxy/ratelimit's MERGE_DOMAIN_CONFIG).</summary>
    public bool MergeDomains { get; set; }

    /// <summary>Add <c>RateLimit-Limit</c>, <c>RateLimit-Remaining</c> and <c>RateLimit-Reset</c> response headers (envoyproxy/ratelimit's LIMIT_RESPONSE_HEADERS_ENABLED).</summary>
    public bool ResponseHeaders { get; set; }

    public string LimitHeader { get; set; } = "RateLimit-Limit";

    public string RemainingHeader { get; set; } = "RateLimit-Remaining";

    public string ResetHeader { get; set; } = "RateLimit-Reset";

    /// <summary>Return the decision as response dynamic metadata (envoyproxy/ratelimit's RESPONSE_DYNAMIC_METADATA).</summary>
    public bool ResponseDynamicMetadata { get; set; }
}

internal sealed class RateLimitOptionsValidator : IValidateOptions<RateLimitOptions>
{
    public ValidateOptionsResult Validate(string? name, RateLimitOptions options)
    {
        const string S = RateLimitOptions.SectionName;
        var errors = new List<string>();
        if (options.Store is not ("memory" or "redis"))
            errors.Add($"{S}:Store must be 'memory' or 'redis' (was '{options.Store}').");
        if (options.StoreTimeout <= TimeSpan.Zero || options.StoreTimeout > TimeSpan.FromSeconds(30))
            errors.Add($"{S}:StoreTimeout must be above zero and at most 30 s (was {options.StoreTimeout}).");
        if (options.DegradedRetryInterval < TimeSpan.FromMilliseconds(10) || options.DegradedRetryInterval > TimeSpan.FromHours(1))
            errors.Add($"{S}:DegradedRetryInterval must be 10 ms..1 h (was {options.DegradedRetryInterval}).");
        if (options.WriteBehindInterval < TimeSpan.FromMilliseconds(1) || options.WriteBehindInterval > TimeSpan.FromSeconds(10))
            errors.Add($"{S}:WriteBehindInterval must be 1 ms..10 s (was {options.WriteBehindInterval}).");
        if (options.NearLimitRatio is <= 0 or > 1)
            errors.Add($"{S}:NearLimitRatio must be in (0, 1] (was {options.NearLimitRatio}).");
        if (options.RedisBatchMaxCounters is < 1 or > RedisBatchOptions.MaxCountersLimit)
            errors.Add($"{S}:RedisBatchMaxCounters must be 1..{RedisBatchOptions.MaxCountersLimit} (was {options.RedisBatchMaxCounters}).");
        if (options.RedisBatchesInFlight is < 1 or > RedisBatchOptions.MaxInFlightLimit)
            errors.Add($"{S}:RedisBatchesInFlight must be 1..{RedisBatchOptions.MaxInFlightLimit} (was {options.RedisBatchesInFlight}).");
        if (options.MaxMemoryCounters < 1000)
            errors.Add($"{S}:MaxMemoryCounters must be at least 1000 (was {options.MaxMemoryCounters}).");
        foreach (var (key, value) in new[] { ("LimitHeader", options.LimitHeader), ("RemainingHeader", options.RemainingHeader), ("ResetHeader", options.ResetHeader) })
        {
            if (string.IsNullOrWhiteSpace(value) || value.Any(c => c <= ' ' || c == ':' || c > '~'))
                errors.Add($"{S}:{key} '{value}' is not a valid header name.");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
