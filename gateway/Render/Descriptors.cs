using Legate.Gateway.Model;

namespace Legate.Gateway.Render;

/// <summary>Where a descriptor entry's value comes from when Envoy builds it for a request.</summary>
internal enum EntrySource
{
    /// <summary>A constant (<c>generic_key</c>): the route's name.</summary>
    Fixed,

    /// <summary>authz's dynamic metadata <c>tenant</c>: one of the file's tenants.</summary>
    Tenant,

    /// <summary>authz's dynamic metadata <c>client</c>: any string (<c>anonymous</c> without a credential).</summary>
    Client,

    /// <summary>
    /// authz's dynamic metadata <c>plan</c>: any string (the API key's plan or a JWT's plan claim, else the tenant's,
    /// else <c>default</c>), so also plans the gateway file does not list.
    /// </summary>
    Plan,

    /// <summary>The downstream address (<c>remote_address</c>).</summary>
    RemoteAddress,
}

internal sealed record DescriptorEntry(string Key, EntrySource Source, string? Value = null);

/// <summary>One <c>rate_limits[]</c> entry of a route: the descriptor Envoy sends (all entries, or none when one is missing).</summary>
internal sealed record DescriptorPattern(IReadOnlyList<DescriptorEntry> Entries);

/// <summary>
/// The one place that decides which descriptors a route sends; the Envoy route actions and the ratelimit rules are both
/// generated from it, so they cannot drift apart.
/// </summary>
internal static class Descriptors
{
    public const string TenantKey = "tenant";
    public const string ClientKey = "client";
    public const string RouteKey = "route";
    public const string RemoteAddressKey = "remote_address";
    public const string PlanKey = "plan";

    /// <summary>authz's <c>plan</c> for a caller whose key and tenant name none; also the plan action's <c>default_value</c>.</summary>
    public const string NoPlan = "default";

    /// <summary>Whether some tenant quota applies at all (then every authenticated route sends <c>(tenant)</c>).</summary>
    public static bool AnyTenantQuota(GatewayConfig config) => config.Quotas.Tenant is not null || config.Tenants.Any(t => EffectiveQuotas.Tenant(config, t) is not null);

    /// <summary>
    /// Whether some client quota applies at all (then every authenticated route sends <c>(tenant, client)</c>, or
    /// <c>(tenant, plan, client)</c> when a plan has one).
    /// </summary>
    public static bool AnyClientQuota(GatewayConfig config)
        => config.Quotas.Client is not null || config.Tenants.Any(t => t.Quotas.Client is not null) || EffectiveQuotas.ByPlan(config);

    public static IReadOnlyList<DescriptorPattern> For(GatewayConfig config, RouteConfig route)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(route);
        var list = new List<DescriptorPattern>();
        var tenant = new DescriptorEntry(TenantKey, EntrySource.Tenant);
        var client = new DescriptorEntry(ClientKey, EntrySource.Client);
        var remote = new DescriptorEntry(RemoteAddressKey, EntrySource.RemoteAddress);
        if (!route.AuthDisabled)
        {
            // Without authz there is no tenant metadata: these would never be sent, so they are not generated.
            if (AnyTenantQuota(config))
                list.Add(new([tenant]));
            if (AnyClientQuota(config))
                list.Add(new(EffectiveQuotas.ByPlan(config) ? [tenant, new DescriptorEntry(PlanKey, EntrySource.Plan), client] : [tenant, client]));
        }
        if (config.Quotas.Source is not null)
            list.Add(new([remote]));
        var self = new DescriptorEntry(RouteKey, EntrySource.Fixed, route.Name);
        foreach (var limit in route.RateLimits)
        {
            list.Add(new(limit.By switch
            {
                LimitScope.Route => [self],
                LimitScope.Source => [self, remote],
                LimitScope.Tenant => [self, tenant],
                _ => [self, tenant, client],
            }));
        }
        return list;
    }
}
