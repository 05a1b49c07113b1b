using Envoy.Extensions.Common.Ratelimit.V3;
using Legate.Authz.ApiKeys;
using Legate.Authz.Policies;
using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using Legate.RateLimit.Config;
using StackExchange.Redis;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Render;

/// <summary>
/// Loads what render generated with the services' own loaders (authz's policy loader, ratelimit's rules loader) and
/// checks the joins: every policy and tenant a route names exists in the authz policy, every descriptor a route can
/// send matches a ratelimit rule, every cluster a route names is defined. Nothing is published unless this passes.
/// </summary>
internal static class SelfCheck
{
    /// <summary>Client values the descriptor check tries: authz's value without a credential, and any other.</summary>
    private static readonly string[] SampleClients = ["anonymous", "some-client"];

    /// <summary>A plan value no gateway file lists (plan names are lower-case): what a key made with <c>--plan</c> of a plan the file lacks sends.</summary>
    public const string UnlistedPlan = "Unlisted Plan";

    /// <exception cref="GatewayFileException">A service refuses its generated file, or a join does not hold.</exception>
    public static void Run(GatewayConfig config, RenderResult result)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(result);
        var errors = new List<GatewayError>();
        CheckAuthz(config, result, errors);
        CheckRateLimit(config, result, errors);
        if (errors.Count > 0)
            throw new GatewayFileException(errors);
    }

    private static void CheckAuthz(GatewayConfig config, RenderResult result, List<GatewayError> errors)
    {
        var dir = Directory.CreateTempSubdirectory("legate-authz-check-");
        try
        {
            foreach (var file in result.Files.Where(f => f.Path.StartsWith("authz/", StringComparison.Ordinal)))
                File.WriteAllBytes(Path.Combine(dir.FullName, Path.GetFileName(file.Path)), file.Content);
            // With redis: true authz builds its Redis store on the shared connection; here that connection never comes
            // (nothing is looked up), so no connect is tried.
            using var stores = new ApiKeyStores(TimeProvider.System,
                redis: config.ApiKeys is { Redis: true } ? new TaskCompletionSource<IConnectionMultiplexer>().Task : null);
            using var loader = new AuthzPolicyLoader(TimeProvider.System, stores: stores);
            AuthzPolicySet set;
            try
            {
                set = loader.Load(RulesFiles.Read(Path.Combine(dir.FullName, "policies.yaml")));
            }
            catch (RulesException e)
            {
                // Name the files the user wrote, not the temporary copies.
                var error = FromService(config, "authz", e);
                var problem = error.Problem;
                if (config.ApiKeys?.File is { } keys)
                    problem = problem.Replace(Path.Combine(dir.FullName, AuthzPolicies.KeysFileName), keys, StringComparison.Ordinal);
                foreach (var provider in config.JwtProviders.Where(p => p.JwksFile is not null))
                    problem = problem.Replace(Path.Combine(dir.FullName, AuthzPolicies.JwksFileName(provider.Name)), provider.JwksFile, StringComparison.Ordinal);
                errors.Add(error with { Problem = problem.Replace(dir.FullName + Path.DirectorySeparatorChar, "", StringComparison.Ordinal) });
                return;
            }
            foreach (var (route, policy, tenant) in AuthzContexts(config))
            {
                if (!set.Policies.ContainsKey(policy))
                    errors.Add(new GatewayError(config.SourcePath, null, null, $"routes.{route}.auth", $"policy '{policy}' is missing from the generated authz policy file"));
                if (tenant is not null && !set.Tenants.ContainsKey(tenant))
                    errors.Add(new GatewayError(config.SourcePath, null, null, $"routes.{route}.tenant", $"tenant '{tenant}' is missing from the generated authz policy file"));
            }
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>The (route, policy, tenant) context_extensions Envoy sends to authz, catch-all included.</summary>
    public static IEnumerable<(string Route, string Policy, string? Tenant)> AuthzContexts(GatewayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        foreach (var route in config.Routes.Where(r => !r.AuthDisabled))
            yield return (route.Name, route.Auth, route.Tenant);
        if (config.DefaultPolicy != GatewayConfig.NoAuth)
            yield return (EnvoyConfig.CatchAllRoute, config.DefaultPolicy, null);
    }

    private static void CheckRateLimit(GatewayConfig config, RenderResult result, List<GatewayError> errors)
    {
        var path = GatewayRenderer.RateLimitFile(config);
        RateLimitConfig rules;
        try
        {
            rules = new RateLimitConfigLoader().Load([new RulesFile(path, result[path].Text)]);
        }
        catch (RulesException e)
        {
            errors.Add(FromService(config, "ratelimit", e));
            return;
        }
        foreach (var route in config.Routes)
        {
            foreach (var descriptor in Expand(config, Descriptors.For(config, route)))
            {
                var text = string.Join(", ", descriptor.Entries.Select(e => $"{e.Key}={e.Value}"));
                if (rules.Match(config.Services.RateLimitDomain, descriptor) is not { } match)
                {
                    errors.Add(new GatewayError(config.SourcePath, null, null, $"routes.{route.Name}.rate_limits", $"the generated ratelimit rules do not match the descriptor ({text})"));
                }
                else if (TryExpectedQuota(config, descriptor, out var expected) && !Same(match.Policy, expected))
                {
                    var want = expected is { } q ? $"{q.Requests} per {q.Per.Name()}" : "no limit";
                    var got = match.Policy.Unlimited ? "no limit" : $"{match.Policy.RequestsPerUnit} per {match.Policy.Unit.ToString().ToLowerInvariant()}";
                    errors.Add(new GatewayError(config.SourcePath, null, null, $"routes.{route.Name}.rate_limits",
                        $"the generated ratelimit rules give the descriptor ({text}) {got} (rule {match.MetricPath}), where the gateway file gives it {want}"));
                }
            }
        }
    }

    /// <summary>
    /// The quota the gateway file gives a tenant or client descriptor (<see cref="EffectiveQuotas"/>; null: no limit).
    /// False for other descriptors: route and address limits are a rule each, found by the route's name or the key.
    /// </summary>
    public static bool TryExpectedQuota(GatewayConfig config, RateLimitDescriptor descriptor, out Quota? quota)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(descriptor);
        quota = null;
        var entries = descriptor.Entries;
        if (entries.Count == 0 || entries[0].Key != Descriptors.TenantKey || config.Tenants.FirstOrDefault(t => t.Name == entries[0].Value) is not { } tenant)
            return false;
        switch (entries.Select(e => e.Key).ToArray())
        {
            case [Descriptors.TenantKey]:
                quota = EffectiveQuotas.Tenant(config, tenant);
                return true;
            case [Descriptors.TenantKey, Descriptors.ClientKey]:
                quota = EffectiveQuotas.Client(config, tenant, Descriptors.NoPlan);
                return true;
            case [Descriptors.TenantKey, Descriptors.PlanKey, Descriptors.ClientKey]:
                quota = EffectiveQuotas.Client(config, tenant, entries[1].Value);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Whether a matched rule's limit is the quota (null: an unlimited rule).</summary>
    public static bool Same(RateLimitPolicy policy, Quota? quota)
    {
        ArgumentNullException.ThrowIfNull(policy);
        return quota is null
            ? policy.Unlimited
            : !policy.Unlimited && policy.RequestsPerUnit == quota.Requests && policy.Unit.ToString() == quota.Per.ToString();
    }

    /// <summary>Every concrete descriptor the patterns can produce: each tenant of the file, each plan value, sample clients and addresses.</summary>
    public static IEnumerable<RateLimitDescriptor> Expand(GatewayConfig config, IEnumerable<DescriptorPattern> patterns)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(patterns);
        foreach (var pattern in patterns)
        {
            IEnumerable<List<KeyValuePair<string, string>>> combos = [[]];
            foreach (var entry in pattern.Entries)
            {
                IEnumerable<string> values = entry.Source switch
                {
                    EntrySource.Fixed => [entry.Value!],
                    EntrySource.Tenant => config.Tenants.Select(t => t.Name),
                    EntrySource.Client => SampleClients,
                    EntrySource.Plan => PlanValues(config),
                    _ => ["192.0.2.10"],
                };
                combos = combos.SelectMany(c => values.Select(v => new List<KeyValuePair<string, string>>(c) { new(entry.Key, v) })).ToList();
            }
            foreach (var combo in combos)
            {
                var descriptor = new RateLimitDescriptor();
                foreach (var (key, value) in combo)
                    descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
                yield return descriptor;
            }
        }
    }

    /// <summary>Plan values authz can send: every plan the file lists or a tenant names, its value for none, and one no file lists.</summary>
    public static IEnumerable<string> PlanValues(GatewayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Plans.Select(p => p.Name).Concat(config.Tenants.Select(t => t.Plan).OfType<string>())
            .Append(Descriptors.NoPlan).Append(UnlistedPlan).Distinct(StringComparer.Ordinal);
    }

    /// <summary>A service's complaint about its generated file, pointed back at the gateway file by its field path.</summary>
    private static GatewayError FromService(GatewayConfig config, string service, RulesException e)
    {
        var node = config.Root is { } root && e.Field is { Length: > 0 } field ? Find(root, field) : null;
        return new GatewayError(config.SourcePath, node is null ? null : (int)node.Start.Line, node is null ? null : (int)node.Start.Column,
            e.Field ?? "", $"{service} refuses it: {e.Problem}", $"checked by loading the generated file with the {service} service's own loader");
    }

    /// <summary>
    /// The node at a field path such as <c>tenants.acme.tokens_from[1]</c> (names may contain dots: the longest key
    /// that fits wins), or the deepest node found on the way. The authz sections keep authz's field names, so its
    /// paths are the gateway file's.
    /// </summary>
    internal static YamlNode? Find(YamlNode root, string path)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(path);
        var node = root;
        var rest = path;
        while (rest.Length > 0)
        {
            if (node is YamlSequenceNode seq && rest[0] == '[')
            {
                var end = rest.IndexOf(']', StringComparison.Ordinal);
                if (end < 0 || !int.TryParse(rest.AsSpan(1, end - 1), out var index) || index >= seq.Children.Count)
                    return node;
                node = seq.Children[index];
                rest = rest[(end + 1)..].TrimStart('.');
                continue;
            }
            if (node is not YamlMappingNode map)
                return node;
            var next = map.Children
                .Where(kv => kv.Key is YamlScalarNode { Value: { } k } && (rest == k || rest.StartsWith(k + ".", StringComparison.Ordinal) || rest.StartsWith(k + "[", StringComparison.Ordinal)))
                .OrderByDescending(kv => ((YamlScalarNode)kv.Key).Value!.Length)
                .FirstOrDefault();
            if (next.Key is null)
                return node;
            node = next.Value;
            rest = rest[((YamlScalarNode)next.Key).Value!.Length..].TrimStart('.');
        }
        return node;
    }
}
