using Legate.Gateway.Model;

namespace Legate.Gateway.Render;

/// <summary>
/// Which quota applies to whom, the one resolution the ratelimit rules are generated from and checked against: a
/// tenant's own quota, else its plan's, else the file's default (<c>quotas:</c>). A tenant's plan is its <c>plan:</c> in
/// the file, fixed at render time; a client's plan is what authz reports per request (the API key's plan or a JWT's
/// plan claim, else its tenant's, else <see cref="Descriptors.NoPlan"/>), so a plan the file does not list gets the
/// file's default.
/// </summary>
internal static class EffectiveQuotas
{
    /// <summary>The plan named <paramref name="name"/> in the file, or null (not listed, or null).</summary>
    public static PlanConfig? Plan(GatewayConfig config, string? name)
    {
        ArgumentNullException.ThrowIfNull(config);
        return name is null ? null : config.Plans.FirstOrDefault(p => p.Name == name);
    }

    /// <summary>All of a tenant's traffic: its own quota, else its plan's, else the default; null for none.</summary>
    public static Quota? Tenant(GatewayConfig config, TenantConfig tenant)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tenant);
        return tenant.Quotas.Tenant ?? Plan(config, tenant.Plan)?.Quotas.Tenant ?? config.Quotas.Tenant;
    }

    /// <summary>
    /// Each client of <paramref name="tenant"/> whose plan (authz's metadata <c>plan</c>) is <paramref name="plan"/>: the
    /// tenant's own client quota, else that plan's if the file lists it, else the default; null for none.
    /// </summary>
    public static Quota? Client(GatewayConfig config, TenantConfig tenant, string plan)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tenant);
        return tenant.Quotas.Client ?? Plan(config, plan)?.Quotas.Client ?? config.Quotas.Client;
    }

    /// <summary>
    /// Whether a client's quota depends on its plan: some plan has a client quota. Then the per-client descriptor is
    /// <c>(tenant, plan, client)</c> instead of <c>(tenant, client)</c>, and counters stay per client.
    /// </summary>
    public static bool ByPlan(GatewayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Plans.Any(p => p.Quotas.Client is not null);
    }

    /// <summary>Whether the tenant needs a rule of its own, its quotas not being the default tenant rule's.</summary>
    public static bool OwnRule(GatewayConfig config, TenantConfig tenant)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tenant);
        return tenant.Quotas.Tenant is not null || tenant.Quotas.Client is not null || Plan(config, tenant.Plan)?.Quotas.Tenant is not null;
    }
}
