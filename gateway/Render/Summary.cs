using System.Text;
using Legate.Gateway.Model;

namespace Legate.Gateway.Render;

/// <summary>The short account of what was generated, printed by render and written to <c>summary.txt</c>.</summary>
internal static class Summary
{
    public static string OneLine(GatewayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return $"{config.Listeners.Count} listener(s), {config.Routes.Count} route(s), {config.Backends.Count} backend(s), "
            + $"{config.Tenants.Count} tenant(s), {config.Policies.Count} policy(ies)";
    }

    public static string Describe(GatewayConfig config, RenderResult result)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(result);
        var s = config.Services;
        var text = new StringBuilder();
        text.Append("legate render: ").Append(Path.GetFileName(config.SourcePath)).Append('\n');
        text.Append("  listeners: ").AppendJoin(", ", config.Listeners.Select(Describe)).Append('\n');
        text.Append("  routes:    ").Append(config.Routes.Count).Append(", then a catch-all 404 checked with policy '").Append(config.DefaultPolicy).Append("'\n");
        foreach (var route in config.Routes)
        {
            var to = string.Join(" + ", route.Backends.Select(b => route.Backends.Count == 1 ? b.Name : $"{b.Name} {b.Weight}"));
            var auth = route.AuthDisabled ? "auth off" : $"policy {route.Auth}" + (route.Tenant is null ? "" : $", tenant {route.Tenant}");
            var limits = route.RateLimits.Count == 0 ? "" : ", limits " + string.Join(", ", route.RateLimits.Select(l => $"{l.Quota.Requests}/{l.Quota.Per.Name()} per {l.By.ToString().ToLowerInvariant()}"));
            text.Append("    ").Append(route.Name).Append(": ").Append(Describe(route.Match)).Append(" -> ").Append(to).Append(" (").Append(auth).Append(limits).Append(")\n");
        }
        text.Append("  backends:  ").AppendJoin(", ", config.Backends.Select(b => $"{b.Name} ({string.Join(' ', b.Endpoints)}{(b.Tls ? ", tls" : "")})")).Append('\n');
        text.Append("  tenants:   ").AppendJoin(", ", config.Tenants.Select(t => t.Name)).Append('\n');
        if (config.Plans.Count > 0)
            text.Append("  plans:     ").AppendJoin(", ", config.Plans.Select(Describe)).Append("; any other plan: the quotas: defaults\n");
        text.Append("  policies:  ").AppendJoin(", ", config.Policies.Select(p => p.Name)).Append('\n');
        text.Append("  services:  authz ").Append(s.Authz).Append(s.AuthzFailOpen ? " (fails open)" : " (fails closed)")
            .Append(", ratelimit ").Append(s.RateLimit).Append(s.RateLimitFailClosed ? " (fails closed)" : " (fails open)")
            .Append(", domain ").Append(s.RateLimitDomain).Append(", statsink ").Append(s.StatSink)
            .Append(s.Tls is null ? "" : s.Tls.Client is null ? "; over TLS" : "; over mutual TLS").Append('\n');
        text.Append("  files:     ").AppendJoin(", ", result.Files.Select(f => f.Path).Append(GatewayRenderer.SummaryFile)).Append('\n');
        return text.ToString();
    }

    private static string Describe(PlanConfig plan)
    {
        var quotas = new[] { ("tenant", plan.Quotas.Tenant), ("client", plan.Quotas.Client) }
            .Where(q => q.Item2 is not null).Select(q => $"{q.Item1} {q.Item2!.Requests}/{q.Item2.Per.Name()}").ToArray();
        return quotas.Length == 0 ? plan.Name : $"{plan.Name} ({string.Join(", ", quotas)})";
    }

    private static string Describe(ListenerConfig l)
    {
        var text = $"{l.Name} {l.Address}:{l.Port}";
        if (l.HttpsRedirectPort is { } port)
            return text + $" (redirects to https port {port})";
        if (l.Tls is not { } tls)
            return text;
        return text + $" (tls: {tls.Certificates.Count} certificate(s), TLS {(tls.MinVersion == TlsVersion.Tls13 ? "1.3" : "1.2")}+"
            + (tls.ClientCaFile is null ? ")" : ", client certificates required)");
    }

    private static string Describe(RouteMatch m)
    {
        var text = m.Kind switch
        {
            PathMatchKind.Prefix => m.Path == "/" ? "/*" : m.Path + "/*",
            PathMatchKind.Exact => m.Path,
            _ => "~" + m.Path,
        };
        if (m.Methods.Count > 0)
            text = string.Join('|', m.Methods) + " " + text;
        if (m.Hosts.Count > 0)
            text += " on " + string.Join(',', m.Hosts);
        return text;
    }
}
