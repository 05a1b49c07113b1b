using System.Collections.Concurrent;
using Legate.RateLimit.Config;
using Prometheus;

namespace Legate.RateLimit;

/// <summary>
/// The ratelimit service's own series. Per rule, as envoyproxy/ratelimit counts them (every counter moves by the hits,
/// not by 1): <c>legate_ratelimit_{total_hits,over_limit,near_limit,within_limit,shadow_mode}_total{domain,rule}</c>.
/// The rule label is the rule's path; runtime values appear in it only where <c>detailed_metric</c> or
/// <c>value_to_metric</c> ask, which keeps cardinality bounded by the config.
/// </summary>
public sealed class RateLimitMetrics
{
    private static readonly string[] RuleLabels = ["domain", "rule"];

    private readonly Counter _totalHits;
    private readonly Counter _overLimit;
    private readonly Counter _nearLimit;
    private readonly Counter _withinLimit;
    private readonly Counter _shadowMode;
    private readonly Counter _domainNotFound;
    private readonly Counter _storeErrors;
    private readonly Histogram _storeLatency;
    private readonly ConcurrentDictionary<(string Domain, string Rule), RuleSeries> _rules = new();

    // The usual match's metric path is its rule's own: the rule object finds its series without hashing two strings.
    // Weak, so the rules a reload replaced are not kept alive.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<RateLimitPolicy, RuleSeries> _byPolicy = [];

    public RateLimitMetrics(IMetricFactory metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _totalHits = metrics.CreateCounter("legate_ratelimit_total_hits_total", "Hits counted against a rule.", RuleLabels);
        _overLimit = metrics.CreateCounter("legate_ratelimit_over_limit_total", "Hits over a rule's limit.", RuleLabels);
        _nearLimit = metrics.CreateCounter("legate_ratelimit_near_limit_total", "Hits within a rule's limit but above its near-limit ratio.", RuleLabels);
        _withinLimit = metrics.CreateCounter("legate_ratelimit_within_limit_total", "Hits within a rule's limit.", RuleLabels);
        _shadowMode = metrics.CreateCounter("legate_ratelimit_shadow_mode_total", "Hits over the limit of a shadow-mode rule (answered OK).", RuleLabels);
        _domainNotFound = metrics.CreateCounter("legate_ratelimit_domain_not_found_total", "Calls for a domain no config defines (answered OK).", ["domain"]);
        _storeErrors = metrics.CreateCounter("legate_ratelimit_store_errors_total", "Calls answered UNAVAILABLE because the counter store failed, by kind.", ["kind"]);
        _storeLatency = metrics.CreateHistogram("legate_ratelimit_store_seconds", "Time waiting for the counter store when it did not answer at once.",
            new HistogramConfiguration { Buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1] });
    }

    /// <summary>Counts one descriptor's hits: <paramref name="after"/> is the count they brought the window to.</summary>
    public void Count(DescriptorMatch match, ulong hits, ulong after, ulong limit, double nearLimitRatio)
    {
        if (hits == 0)
            return;
        var series = SeriesOf(match);

        var before = after >= hits ? after - hits : 0;
        var over = after > limit ? after - Math.Max(before, limit) : 0;
        var nearThreshold = (ulong)Math.Floor(limit * nearLimitRatio);
        var withinTop = Math.Min(after, limit);
        var near = withinTop > nearThreshold ? withinTop - Math.Max(before, nearThreshold) : 0;
        if (before >= withinTop)
            near = 0;

        series.TotalHits.Inc(hits);
        series.WithinLimit.Inc(hits - over);
        if (over > 0)
        {
            series.OverLimit.Inc(over);
            if (match.Policy.ShadowMode)
                series.ShadowMode.Inc(over);
        }
        if (near > 0)
            series.NearLimit.Inc(near);
    }

    private RuleSeries SeriesOf(in DescriptorMatch match)
    {
        var policy = match.Policy;
        var own = !policy.IsOverride && ReferenceEquals(match.MetricPath, policy.MetricPath); // an override is a new rule per call
        if (own && _byPolicy.TryGetValue(policy, out var cached))
            return cached;
        var series = _rules.TryGetValue((policy.Domain, match.MetricPath), out var found)
            ? found
            : _rules.GetOrAdd((policy.Domain, match.MetricPath), key => new RuleSeries(this, key.Domain, key.Rule));
        if (own)
            _byPolicy.TryAdd(policy, series);
        return series;
    }

    public void DomainNotFound(string domain) => _domainNotFound.WithLabels(domain).Inc();

    public void StoreError(string kind) => _storeErrors.WithLabels(kind).Inc();

    public void StoreLatency(TimeSpan elapsed) => _storeLatency.Observe(elapsed.TotalSeconds);

    private sealed class RuleSeries(RateLimitMetrics owner, string domain, string rule)
    {
        public Counter.Child TotalHits { get; } = owner._totalHits.WithLabels(domain, rule);

        public Counter.Child OverLimit { get; } = owner._overLimit.WithLabels(domain, rule);

        public Counter.Child NearLimit { get; } = owner._nearLimit.WithLabels(domain, rule);

        public Counter.Child WithinLimit { get; } = owner._withinLimit.WithLabels(domain, rule);

        public Counter.Child ShadowMode { get; } = owner._shadowMode.WithLabels(domain, rule);
    }
}
