using Legate.Gateway.Model;
using Node = System.Collections.Generic.OrderedDictionary<string, object>;

namespace Legate.Gateway.Render;

/// <summary>
/// The ratelimit service's rules (envoyproxy/ratelimit format) for every descriptor <see cref="Descriptors"/> can
/// produce: per-tenant quotas as values under one <c>tenant</c> key with a key-only default (so a tenant's own quota
/// replaces the default rather than adding to it), per-plan client quotas likewise as values under <c>plan</c> with a
/// key-only default for plans the file does not list, route limits under <c>route: NAME</c>. Which quota is whose is
/// <see cref="EffectiveQuotas"/>'s to say.
/// </summary>
internal static class RateLimitRules
{
    private static readonly Node Unlimited = Yaml.Map(("unlimited", true));

    public static string Render(GatewayConfig config, string header)
    {
        ArgumentNullException.ThrowIfNull(config);
        var tenantLevel = Descriptors.AnyTenantQuota(config);
        var clientLevel = Descriptors.AnyClientQuota(config);
        var descriptors = new List<object>();

        if (tenantLevel || clientLevel)
        {
            descriptors.Add(TenantRule(config, null, tenantLevel, clientLevel));
            foreach (var tenant in config.Tenants.Where(t => EffectiveQuotas.OwnRule(config, t)).OrderBy(t => t.Name, StringComparer.Ordinal))
                descriptors.Add(TenantRule(config, tenant, tenantLevel, clientLevel));
        }
        if (config.Quotas.Source is { } source)
            descriptors.Add(Yaml.Map(("key", Descriptors.RemoteAddressKey), ("rate_limit", Limit(source))));

        foreach (var route in config.Routes.Where(r => r.RateLimits.Count > 0))
        {
            Quota? Of(LimitScope scope) => route.RateLimits.FirstOrDefault(l => l.By == scope)?.Quota;
            var children = new List<object>();
            if (Of(LimitScope.Source) is { } perSource)
                children.Add(Yaml.Map(("key", Descriptors.RemoteAddressKey), ("rate_limit", Limit(perSource))));
            var perTenant = Of(LimitScope.Tenant);
            var perClient = Of(LimitScope.Client);
            if (perTenant is not null || perClient is not null)
            {
                children.Add(Yaml.Map(
                    ("key", Descriptors.TenantKey),
                    ("rate_limit", perTenant is null ? null : Limit(perTenant)),
                    ("descriptors", perClient is null ? null : new List<object> { Yaml.Map(("key", Descriptors.ClientKey), ("rate_limit", Limit(perClient))) })));
            }
            descriptors.Add(Yaml.Map(
                ("key", Descriptors.RouteKey),
                ("value", route.Name),
                ("rate_limit", Of(LimitScope.Route) is { } whole ? Limit(whole) : null),
                ("descriptors", children.Count == 0 ? null : children)));
        }

        return header + Yaml.Serialize(Yaml.Map(("domain", config.Services.RateLimitDomain), ("descriptors", descriptors)));
    }

    /// <summary>The rule of one tenant (null: the key-only default for every tenant without a rule of its own).</summary>
    private static Node TenantRule(GatewayConfig config, TenantConfig? tenant, bool tenantLevel, bool clientLevel)
        => Yaml.Map(
            ("key", Descriptors.TenantKey),
            ("value", tenant?.Name),
            // A level that some route sends must match even without a quota of its own: unlimited, not missing.
            ("rate_limit", tenantLevel ? LimitOrUnlimited(tenant is null ? config.Quotas.Tenant : EffectiveQuotas.Tenant(config, tenant)) : null),
            ("descriptors", clientLevel ? ClientRules(config, tenant) : null));

    /// <summary>
    /// The per-client rules under a tenant rule. By plan, <c>(tenant, plan, client)</c>: a key-only <c>plan</c> rule for
    /// every plan the file does not list (the default client quota), and one rule per listed plan with a client quota;
    /// a tenant's own client quota applies whatever the plan, so it has the key-only rule alone. Beside them stays the
    /// <c>(tenant, client)</c> rule of a file without plans, with the quota of a client without a plan: rules are
    /// published before listeners (and Kubernetes rolls ratelimit and Envoy pods apart), so Envoys still on the old
    /// listeners send that descriptor for a while, which would otherwise match nothing and go unlimited.
    /// </summary>
    private static List<object> ClientRules(GatewayConfig config, TenantConfig? tenant)
    {
        var own = tenant?.Quotas.Client;
        if (!EffectiveQuotas.ByPlan(config))
            return [ClientRule(own ?? config.Quotas.Client)];
        var rules = new List<object>
        {
            ClientRule(own ?? config.Quotas.Client),
            Yaml.Map(("key", Descriptors.PlanKey), ("descriptors", new List<object> { ClientRule(own ?? config.Quotas.Client) })),
        };
        if (own is null)
        {
            foreach (var plan in config.Plans.Where(p => p.Quotas.Client is not null).OrderBy(p => p.Name, StringComparer.Ordinal))
                rules.Add(Yaml.Map(("key", Descriptors.PlanKey), ("value", plan.Name), ("descriptors", new List<object> { ClientRule(plan.Quotas.Client) })));
        }
        return rules;
    }

    private static Node ClientRule(Quota? quota) => Yaml.Map(("key", Descriptors.ClientKey), ("rate_limit", LimitOrUnlimited(quota)));

    private static Node LimitOrUnlimited(Quota? quota) => quota is null ? Unlimited : Limit(quota);

    private static Node Limit(Quota quota) => Yaml.Map(("unit", quota.Per.Name()), ("requests_per_unit", quota.Requests));
}
