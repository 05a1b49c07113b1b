namespace Legate.RateLimit.Config;

/// <summary>What a request descriptor matched.</summary>
/// <param name="Policy">The limit that applies.</param>
/// <param name="MetricPath">
/// The domain-qualified metric name, the reference's stats key: <see cref="RateLimitPolicy.MetricPath"/> itself
/// (no allocation) unless runtime values are asked for — every level's request value with <c>detailed_metric</c>, the
/// level's value with <c>value_to_metric</c> on a wildcard or key-only level — and wildcard patterns stay where
/// <c>share_threshold</c> applies. Not sanitized for any metrics system.
/// </param>
/// <param name="CounterEntries">
/// Null when the counter is identified by the request's own entries (the usual case). Otherwise, when
/// <c>share_threshold</c> applies on a wildcard level, the entries to key the counter on: the request's entries with
/// those levels' values replaced by the pattern, so every matching value shares one counter.
/// </param>
public readonly record struct DescriptorMatch(
    RateLimitPolicy Policy,
    string MetricPath,
    IReadOnlyList<KeyValuePair<string, string>>? CounterEntries);
