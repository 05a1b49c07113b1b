using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using Envoy.Extensions.Common.Ratelimit.V3;

namespace Legate.RateLimit.Config;

/// <summary>
/// The loaded rate limit rules: one immutable snapshot, safe to share between threads. Matching follows
/// envoyproxy/ratelimit (exact depth; per level an explicit value, then wildcards in file order, then the key-only
/// default; no fallback to shorter prefixes), but levels are keyed by (key, value) pairs rather than by a
/// <c>key_value</c> string, so <c>("a_b", "c")</c> and <c>("a", "b_c")</c> are different and a pattern only applies to
/// its own key.
/// </summary>
public sealed class RateLimitConfig
{
    private readonly FrozenDictionary<string, RuleLevel?> _domains;

    internal RateLimitConfig(IReadOnlyList<string> domains, FrozenDictionary<string, RuleLevel?> trees, IReadOnlyList<RateLimitPolicy> policies)
    {
        Domains = domains;
        _domains = trees;
        Policies = policies;
        foreach (var policy in policies)
            HasReplaces |= policy.Replaces.Count > 0;
    }

    /// <summary>No domains: every descriptor is under no limit.</summary>
    public static RateLimitConfig Empty { get; } = new([], FrozenDictionary<string, RuleLevel?>.Empty, []);

    /// <summary>The domains, in load order.</summary>
    public IReadOnlyList<string> Domains { get; }

    /// <summary>Every rule that carries a <c>rate_limit</c>, in load order (domain by domain, depth first in file order).</summary>
    public IReadOnlyList<RateLimitPolicy> Policies { get; }

    /// <summary>True when some rule has <c>replaces</c>, i.e. the service has a replaces pass to do at all.</summary>
    public bool HasReplaces { get; }

    /// <summary>Whether the domain is configured (a domain with no descriptors counts).</summary>
    public bool HasDomain(string domain)
    {
        ArgumentNullException.ThrowIfNull(domain);
        return _domains.ContainsKey(domain);
    }

    /// <summary>
    /// The limit for one request descriptor, or null for none: unknown domain, no entries, no rule at some level, a rule
    /// without children before the last entry, or a last rule without <c>rate_limit</c> (whitelisted). A descriptor with
    /// its own limit gets an override policy if the domain is known (null if its unit is UNKNOWN), whose metric path names
    /// the entries' keys only (see <see cref="RateLimitPolicy.ForOverride(string, RlsDescriptor)"/>). Unlimited rules do
    /// match: the caller answers OK without counting. <c>replaces</c> is not applied here: it spans the request's
    /// descriptors (see <see cref="RateLimitPolicy.Replaces"/>). Allocates nothing unless the metric path needs request
    /// values or the counter shared entries.
    /// </summary>
    public DescriptorMatch? Match(string domain, RlsDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(domain);
        if (!_domains.TryGetValue(domain, out var root))
            return null;
        if (descriptor.Limit is not null)
            return MatchOverride(domain, root, descriptor);

        var entries = descriptor.Entries;
        if (!Walk(root, entries, out var node, out var runtimeValues, out var shared))
            return null;
        var policy = node.Policy;
        if (policy is null)
            return null;
        return shared || runtimeValues || policy.DetailedMetric
            ? Resolve(domain, root, entries, policy, shared)
            : new DescriptorMatch(policy, policy.MetricPath, null);
    }

    /// <summary>The same for a parsed descriptor (tools, tests): converted first, which allocates its entries.</summary>
    public DescriptorMatch? Match(string domain, RateLimitDescriptor descriptor) => Match(domain, RlsDescriptor.From(descriptor));

    /// <summary>The loaded rules, one line per rule with a <c>rate_limit</c>, like the reference's <c>/rlconfig</c>.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        foreach (var policy in Policies)
            text.Append(policy.Describe()).Append('\n');
        return text.ToString();
    }

    // The node the entries reach (exact depth, no fallback), and whether its metric path needs request values
    // (value_to_metric on a level matched by pattern or default) or its counter the patterns (share_threshold).
    private static bool Walk(RuleLevel? root, ArraySegment<KeyValuePair<string, string>> entries, [NotNullWhen(true)] out RuleNode? node, out bool runtimeValues, out bool shared)
    {
        node = null;
        runtimeValues = false;
        shared = false;
        if (entries.Count == 0)
            return false;
        var level = root;
        for (var i = 0; i < entries.Count; i++)
        {
            // The previous entry's rule has no children: the request is deeper than the config (no fallback).
            if (level is null)
                return false;
            var entry = entries[i];
            node = level.Find(entry.Key, entry.Value, out var how);
            if (node is null)
                return false;
            if (how == EntryMatch.Wildcard && node.ShareThreshold)
                shared = true;
            else if (how != EntryMatch.Exact && node.ValueToMetric)
                runtimeValues = true;
            level = node.Children;
        }
        return node is not null;
    }

    private static DescriptorMatch? MatchOverride(string domain, RuleLevel? root, RlsDescriptor descriptor)
    {
        // An override without a usable unit cannot be counted. Envoy never sends one (it drops overrides whose unit
        // does not parse); other clients get no limit rather than an error.
        if (!LimitUnitExtensions.TryFromOverride(descriptor.Limit!.Value.Unit, out _))
            return null;
        var policy = RateLimitPolicy.ForOverride(domain, descriptor);
        // The override's own metric path names keys only: the reference's k1_v1.k2_v2 made a series per client when
        // the plan travels with each request (envoyproxy/ratelimit#275). Values appear only where the rule these
        // entries would match asks for them (detailed_metric, value_to_metric), as they would without the override.
        if (Walk(root, descriptor.Entries, out var node, out var runtimeValues, out var shared)
            && node.Policy is { } rule && (runtimeValues || rule.DetailedMetric))
            return new DescriptorMatch(policy, Resolve(domain, root, descriptor.Entries, rule, shared).MetricPath, null);
        return new DescriptorMatch(policy, policy.MetricPath, null);
    }

    // The rare path that needs request values in the metric path or pattern values in the counter key: walk again and
    // build them. Same lookups as Match, so the same nodes.
    private static DescriptorMatch Resolve(string domain, RuleLevel? level, ArraySegment<KeyValuePair<string, string>> entries, RateLimitPolicy policy, bool shared)
    {
        var metric = new StringBuilder(policy.MetricPath.Length + 32).Append(domain);
        var counter = shared ? new KeyValuePair<string, string>[entries.Count] : null;
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            var node = level!.Find(entry.Key, entry.Value, out var how)!;
            metric.Append('.');
            if (how == EntryMatch.Wildcard && node.ShareThreshold)
            {
                // share_threshold beats detailed_metric and value_to_metric: metrics and counter use the pattern.
                metric.Append(node.Segment);
                counter![i] = new(entry.Key, node.Value!);
            }
            else
            {
                if (counter is not null)
                    counter[i] = new(entry.Key, entry.Value);
                if (policy.DetailedMetric || (how != EntryMatch.Exact && node.ValueToMetric))
                {
                    metric.Append(entry.Key);
                    if (entry.Value.Length > 0)
                        metric.Append('_').Append(entry.Value);
                }
                else
                {
                    metric.Append(node.Segment);
                }
            }
            level = node.Children;
        }
        return new DescriptorMatch(policy, metric.ToString(), counter);
    }
}
