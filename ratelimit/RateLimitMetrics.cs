using System.Collections.Concurrent;
using Legate.RateLimit.Config;
using Prometheus;

namespace Legate.RateLimit;

/// <summary>
/// The ratelimit service's own series. Per rule, as envoyproxy/ratelimit counts them (every counter moves by the hits,
/// not by 1): <c>legate_ratelimit_{total_hits,over_limit,near_limit,within_limit,shadow_mode}_total{domain,rule}</c>.
/// The rule label is the rule's path; runtime values appear in it only where <c>detailed_metric</c> or
/// <c>value_to_metric</c> ask, which keeps cardinality bounded by the config. Labels a caller chooses are capped: an
/// override's path (its keys, see <see cref="RateLimitPolicy.ForOverride(string, RlsDescriptor)"/>) beyond
/// <see cref="MaxOverrideRules"/> distinct ones counts as <c>&lt;domain&gt;.(other)</c>, and an unknown domain beyond
/// <see cref="MaxUnknownDomains"/> distinct ones as <c>(other)</c>.
/// </summary>
public sealed class RateLimitMetrics
{
    /// <summary>Distinct override rule labels (domain and key path) kept; later ones share <c>&lt;domain&gt;.(other)</c>.</summary>
    public const int MaxOverrideRules = 256;

    /// <summary>Distinct unknown domains kept as <c>domain_not_found_total</c> labels; later ones share <see cref="OtherLabel"/>.</summary>
    public const int MaxUnknownDomains = 16;

    /// <summary>The label value of what is past a cap.</summary>
    public const string OtherLabel = "(other)";

    private static readonly string[] RuleLabels = ["domain", "rule"];

    private readonly Counter _totalHits;
    private readonly Counter _overLimit;
    private readonly Counter _nearLimit;
    private readonly Counter _withinLimit;
    private readonly Counter _overLimitWithLocalCache;
    private readonly Counter _shadowMode;
    private readonly Counter _domainNotFound;
    private readonly Counter _globalShadowMode;
    private readonly Counter _storeErrors;
    private readonly Histogram _storeLatency;
    private readonly ConcurrentDictionary<(string Domain, string Rule), RuleSeries> _rules = new();

    // Any caller can send keys and domains: each series lives as long as the process, so these labels are capped.
    private readonly BoundedLabel _overrideRules = new(MaxOverrideRules);
    private readonly BoundedLabel _unknownDomains = new(MaxUnknownDomains);

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
        _overLimitWithLocalCache = metrics.CreateCounter("legate_ratelimit_over_limit_with_local_cache_total",
            "Hits over a rule's limit that the local over-limit cache answered without the store.", RuleLabels);
        _domainNotFound = metrics.CreateCounter("legate_ratelimit_domain_not_found_total", "Calls for a domain no config defines (answered OK).", ["domain"]);
        _storeErrors = metrics.CreateCounter("legate_ratelimit_store_errors_total", "Calls answered UNAVAILABLE because the counter store failed, by kind.", ["kind"]);
        _storeLatency = metrics.CreateHistogram("legate_ratelimit_store_seconds", "Time waiting for the counter store when it did not answer at once.",
            new HistogramConfiguration { Buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1] });
        _globalShadowMode = metrics.CreateCounter("legate_ratelimit_global_shadow_mode_total",
            "Calls answered OK only because of the global ShadowMode (they would have been OVER_LIMIT).");
    }

    /// <summary>Counts one descriptor's hits: <paramref name="after"/> is the count they brought the window to.</summary>
    /// <param name="fromLocalCache">The local over-limit cache answered: its over-limit hits also count in
    /// <c>over_limit_with_local_cache</c>, as the reference's stat of that name.</param>
    public void Count(DescriptorMatch match, ulong hits, ulong after, ulong limit, double nearLimitRatio, bool fromLocalCache = false)
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
        // As the reference: within_limit takes a call's hits only when none of them went over; a crossing call's
        // part below the limit shows in near_limit (as far as it is above the near threshold), not here.
        if (over == 0)
            series.WithinLimit.Inc(hits);
        if (over > 0)
        {
            series.OverLimit.Inc(over);
            if (fromLocalCache)
                series.OverLimitWithLocalCache.Inc(over);
            if (match.Policy.ShadowMode)
                series.ShadowMode.Inc(over);
        }
        if (near > 0)
            series.NearLimit.Inc(near);
    }

    private RuleSeries SeriesOf(in DescriptorMatch match)
    {
        var policy = match.Policy;
        var path = match.MetricPath;
        var own = ReferenceEquals(path, policy.MetricPath);
        if (policy.IsOverride)
        {
            // A new policy per call, so no cache by policy; its own path is the keys, which the caller chooses.
            if (own && !_overrideRules.Admit(path))
                path = policy.Domain + "." + OtherLabel;
            own = false;
        }
        if (own && _byPolicy.TryGetValue(policy, out var cached))
            return cached;
        var series = _rules.TryGetValue((policy.Domain, path), out var found)
            ? found
            : _rules.GetOrAdd((policy.Domain, path), key => new RuleSeries(this, key.Domain, key.Rule));
        if (own)
            _byPolicy.TryAdd(policy, series);
        return series;
    }

    /// <summary>Counts a call for a domain no config defines, under its name while fewer than <see cref="MaxUnknownDomains"/> were seen, else <see cref="OtherLabel"/>.</summary>
    public void DomainNotFound(string domain) => _domainNotFound.WithLabels(_unknownDomains.Admit(domain) ? domain : OtherLabel).Inc();

    public void StoreError(string kind) => _storeErrors.WithLabels(kind).Inc();

    public void StoreLatency(TimeSpan elapsed) => _storeLatency.Observe(elapsed.TotalSeconds);

    /// <summary>A call the global shadow mode answered OK instead of OVER_LIMIT (the reference's <c>global_shadow_mode</c>).</summary>
    public void GlobalShadowMode() => _globalShadowMode.Inc();

    private sealed class RuleSeries(RateLimitMetrics owner, string domain, string rule)
    {
        public Counter.Child TotalHits { get; } = owner._totalHits.WithLabels(domain, rule);

        public Counter.Child OverLimit { get; } = owner._overLimit.WithLabels(domain, rule);

        public Counter.Child NearLimit { get; } = owner._nearLimit.WithLabels(domain, rule);

        public Counter.Child WithinLimit { get; } = owner._withinLimit.WithLabels(domain, rule);

        public Counter.Child ShadowMode { get; } = owner._shadowMode.WithLabels(domain, rule);

        public Counter.Child OverLimitWithLocalCache { get; } = owner._overLimitWithLocalCache.WithLabels(domain, rule);
    }

    /// <summary>A label's values as callers send them, the first <c>max</c> distinct ones kept and the rest refused.</summary>
    private sealed class BoundedLabel(int max)
    {
        private readonly ConcurrentDictionary<string, byte> _kept = new(StringComparer.Ordinal);
        private int _count;

        /// <summary>True when the value is kept (seen before, or taken now while there is room).</summary>
        public bool Admit(string value)
        {
            if (_kept.ContainsKey(value))
                return true;
            // Reserve a place first, so racing newcomers never take the count past max.
            if (Interlocked.Increment(ref _count) > max)
            {
                Interlocked.Decrement(ref _count);
                return false;
            }
            if (!_kept.TryAdd(value, 0))
                Interlocked.Decrement(ref _count); // another call added it meanwhile
            return true;
        }
    }
}
