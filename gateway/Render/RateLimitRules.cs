using Legate.Gateway.Model;
using Node = System.Collections.Generic.OrderedDictionary<string, object>;

namespace Legate.Gateway.Render;

/// <summary>
/// The ratelimit service's rules (envoyproxy/ratelimit format) for every descriptor <see cref="Descriptors"/> can
/// produce: per-tenant quotas as values under one <c>tenant</c> key with a key-only default (so a tenant's own quota
/// replaces the default rather than adding to it), route limits under <c>route: NAME</c>.
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
            descriptors.Add(TenantRule(null, config.Quotas, tenantLevel, clientLevel));
            foreach (var tenant in config.Tenants.Where(t => t.Quotas.Tenant is not null || t.Quotas.Client is not null).OrderBy(t => t.Name, StringComparer.Ordinal))
            {
                var merged = new QuotaSet(tenant.Quotas.Tenant ?? config.Quotas.Tenant, tenant.Quotas.Client ?? config.Quotas.Client, null);
                descriptors.Add(TenantRule(tenant.Name, merged, tenantLevel, clientLevel));
            }
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

    private static Node TenantRule(string? tenant, QuotaSet quotas, bool tenantLevel, bool clientLevel)
        => Yaml.Map(
            ("key", Descriptors.TenantKey),
            ("value", tenant),
            // A level that some route sends must match even without a quota of its own: unlimited, not missing.
            ("rate_limit", tenantLevel ? quotas.Tenant is { } t ? Limit(t) : Unlimited : null),
            ("descriptors", clientLevel
                ? new List<object> { Yaml.Map(("key", Descriptors.ClientKey), ("rate_limit", quotas.Client is { } c ? Limit(c) : Unlimited)) }
                : null));

    private static Node Limit(Quota quota) => Yaml.Map(("unit", quota.Per.Name()), ("requests_per_unit", quota.Requests));
}
