using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Prometheus;

namespace Legate.Authz.Policies;

/// <summary><c>legate_authz_decisions_total{tenant, policy, result, reason}</c>: tenant and policy are configured names or "unknown"; reasons are a fixed set.</summary>
public sealed class AuthzMetrics
{
    // Label sets seen before, by the identity of their strings: every call passes the same configured names and
    // constant reasons, so finding the counter costs no string hashing and no label lookup in prometheus-net.
    // A reload brings new name instances; the map is emptied when it grows past this, then refills.
    private const int MaxCachedLabelSets = 4096;

    private readonly Counter _decisions;
    private readonly ConcurrentDictionary<LabelSet, Counter.Child> _children = new();

    public AuthzMetrics(IMetricFactory metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _decisions = metrics.CreateCounter("legate_authz_decisions_total", "ext_authz Check decisions by tenant, policy, result (allow|deny) and reason.",
            ["tenant", "policy", "result", "reason"]);
    }

    public void Decided(string tenant, string policy, bool allowed, string reason)
    {
        var labels = new LabelSet(tenant, policy, allowed, reason);
        if (!_children.TryGetValue(labels, out var child))
        {
            child = _decisions.WithLabels(tenant, policy, allowed ? "allow" : "deny", reason);
            if (_children.Count >= MaxCachedLabelSets)
                _children.Clear();
            _children.TryAdd(labels, child);
        }
        child.Inc();
    }

    private readonly struct LabelSet(string tenant, string policy, bool allowed, string reason) : IEquatable<LabelSet>
    {
        private readonly string _tenant = tenant;
        private readonly string _policy = policy;
        private readonly string _reason = reason;
        private readonly bool _allowed = allowed;

        public bool Equals(LabelSet other) =>
            ReferenceEquals(_tenant, other._tenant) && ReferenceEquals(_policy, other._policy) && ReferenceEquals(_reason, other._reason) && _allowed == other._allowed;

        public override bool Equals(object? obj) => obj is LabelSet other && Equals(other);

        public override int GetHashCode() =>
            HashCode.Combine(RuntimeHelpers.GetHashCode(_tenant), RuntimeHelpers.GetHashCode(_policy), RuntimeHelpers.GetHashCode(_reason), _allowed);
    }
}
