using Prometheus;

namespace Legate.Authz.Policies;

/// <summary><c>legate_authz_decisions_total{tenant, policy, result, reason}</c>: tenant and policy are configured names or "unknown"; reasons are a fixed set.</summary>
public sealed class AuthzMetrics
{
    private readonly Counter _decisions;

    public AuthzMetrics(IMetricFactory metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _decisions = metrics.CreateCounter("legate_authz_decisions_total", "ext_authz Check decisions by tenant, policy, result (allow|deny) and reason.",
            ["tenant", "policy", "result", "reason"]);
    }

    public void Decided(string tenant, string policy, bool allowed, string reason)
        => _decisions.WithLabels(tenant, policy, allowed ? "allow" : "deny", reason).Inc();
}
