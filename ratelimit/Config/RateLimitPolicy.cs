using System.Collections.Frozen;
using System.Globalization;
using System.Text;
using Envoy.Extensions.Common.Ratelimit.V3;
using Google.Protobuf;
using ProtoRateLimit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit;

namespace Legate.RateLimit.Config;

/// <summary>
/// One limit: a config rule that carries a <c>rate_limit</c>, or a per-request override. Immutable and shared by
/// every request that matches it.
/// </summary>
public sealed class RateLimitPolicy
{
    private static readonly FrozenDictionary<string, object?> NoMetadata = FrozenDictionary<string, object?>.Empty;

    /// <summary>A config rule's limit.</summary>
    /// <param name="domain">The domain the rule belongs to.</param>
    /// <param name="rulePath">The rule's place in the tree, e.g. <c>key1_value1.subkey1</c> (see <see cref="RulePath"/>).</param>
    /// <param name="unit">The window; <see cref="LimitUnit.Unknown"/> only for unlimited rules.</param>
    /// <param name="requestsPerUnit">Hits allowed per window; 0 blocks everything.</param>
    /// <param name="name">The rule's <c>rate_limit.name</c>, or null.</param>
    /// <param name="unlimited">The rule's <c>rate_limit.unlimited</c>.</param>
    /// <param name="replaces">Names from <c>rate_limit.replaces</c>.</param>
    /// <param name="shadowMode">The rule's <c>shadow_mode</c>.</param>
    /// <param name="quotaMode">The rule's <c>quota_mode</c>.</param>
    /// <param name="algorithm">The rule's <c>rate_limit.algorithm</c> (Legate extension).</param>
    /// <param name="detailedMetric">The rule's <c>detailed_metric</c>.</param>
    /// <param name="metadata">The rule's free-form <c>metadata</c>, as plain CLR values.</param>
    public RateLimitPolicy(
        string domain,
        string rulePath,
        LimitUnit unit,
        uint requestsPerUnit,
        string? name = null,
        bool unlimited = false,
        IReadOnlyList<string>? replaces = null,
        bool shadowMode = false,
        bool quotaMode = false,
        LimitAlgorithm algorithm = LimitAlgorithm.FixedWindow,
        bool detailedMetric = false,
        IReadOnlyDictionary<string, object?>? metadata = null)
        : this(domain, rulePath, unit, requestsPerUnit, name, unlimited, replaces, shadowMode, quotaMode, algorithm, detailedMetric, metadata, isOverride: false)
    {
    }

    private RateLimitPolicy(
        string domain,
        string rulePath,
        LimitUnit unit,
        uint requestsPerUnit,
        string? name,
        bool unlimited,
        IReadOnlyList<string>? replaces,
        bool shadowMode,
        bool quotaMode,
        LimitAlgorithm algorithm,
        bool detailedMetric,
        IReadOnlyDictionary<string, object?>? metadata,
        bool isOverride)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(rulePath);
        if (!unlimited && unit == LimitUnit.Unknown)
            throw new ArgumentOutOfRangeException(nameof(unit), unit, "A limited rule needs a unit.");
        Domain = domain;
        RulePath = rulePath;
        MetricPath = domain + "." + rulePath;
        Unit = unit;
        RequestsPerUnit = requestsPerUnit;
        Name = string.IsNullOrEmpty(name) ? null : name;
        Unlimited = unlimited;
        Replaces = replaces is null || replaces.Count == 0 ? [] : [.. replaces];
        ShadowMode = shadowMode;
        QuotaMode = quotaMode;
        Algorithm = algorithm;
        DetailedMetric = detailedMetric;
        Metadata = metadata is null || metadata.Count == 0 ? NoMetadata : metadata as FrozenDictionary<string, object?> ?? metadata.ToFrozenDictionary(StringComparer.Ordinal);
        IsOverride = isOverride;
        CurrentLimit = new ProtoRateLimit { RequestsPerUnit = requestsPerUnit, Unit = unit.ToProto(), Name = Name ?? "" };
        CurrentLimitBytes = CurrentLimit.ToByteArray();
    }

    /// <summary>The domain.</summary>
    public string Domain { get; }

    /// <summary>
    /// The rule's place in the tree, the reference's stats KEY_PATH: levels joined by <c>.</c>, each <c>key_value</c>
    /// for an explicit value, <c>key</c> for a key-only default, <c>key_pattern</c> for a wildcard
    /// (<c>key1_value1.subkey1</c>, <c>wild_foo*</c>). For an override: the request's keys, <c>k1.k2</c>, never its
    /// values (see <see cref="ForOverride(string, RlsDescriptor)"/>).
    /// </summary>
    public string RulePath { get; }

    /// <summary><c>Domain + "." + RulePath</c>, built once: the metric name of matches that need no runtime values.</summary>
    public string MetricPath { get; }

    /// <summary>The <c>rate_limit.name</c>, or null.</summary>
    public string? Name { get; }

    /// <summary>The window; <see cref="LimitUnit.Unknown"/> only when <see cref="Unlimited"/>.</summary>
    public LimitUnit Unit { get; }

    /// <summary>Hits allowed per window. 0 blocks everything (the reference's "black list" idiom).</summary>
    public uint RequestsPerUnit { get; }

    /// <summary>Matches but never counts: the answer is OK with the maximum remaining and no current limit.</summary>
    public bool Unlimited { get; }

    /// <summary>
    /// Names of other rules (<see cref="Name"/>) this one replaces. The service applies them across the whole request:
    /// matched rules whose name is listed by any matched rule get no limit.
    /// </summary>
    public IReadOnlyList<string> Replaces { get; }

    /// <summary>Counted and reported but never enforced: the descriptor's code stays OK.</summary>
    public bool ShadowMode { get; }

    /// <summary>
    /// Quota mode: the request is over limit only if every quota-mode descriptor of it is, while any non-quota descriptor
    /// over limit still makes it over limit.
    /// </summary>
    public bool QuotaMode { get; }

    /// <summary>How hits are counted (<see cref="LimitAlgorithm"/>; a Legate extension).</summary>
    public LimitAlgorithm Algorithm { get; }

    /// <summary><c>detailed_metric</c>: metrics of a match carry the request's values at every level.</summary>
    public bool DetailedMetric { get; }

    /// <summary>The rule's free-form <c>metadata</c>: strings, longs, doubles, bools, nulls, lists and string-keyed dictionaries.</summary>
    public IReadOnlyDictionary<string, object?> Metadata { get; }

    /// <summary>True for a per-request override (<see cref="ForOverride"/>); such a policy is never shadowed.</summary>
    public bool IsOverride { get; }

    /// <summary>
    /// The limit as RLS responses carry it (requests_per_unit, unit, name), built once and put into responses as is.
    /// Shared by every response that uses this policy: never mutate it.
    /// </summary>
    public ProtoRateLimit CurrentLimit { get; }

    /// <summary><see cref="CurrentLimit"/> encoded, as answers write it.</summary>
    internal byte[] CurrentLimitBytes { get; }

    /// <summary>
    /// The policy of a descriptor that carries its own limit. As in the reference the config tree is not consulted for
    /// the limit, and the limit is never shadowed. Unlike the reference (<c>domain.k1_v1.k2_v2</c>) the metric path is
    /// <c>domain.k1.k2</c>, the keys alone: overrides carry per-tenant or per-client plans, and a path with the values
    /// would be a metric series per client. A changed override keeps its metrics. The caller checks that the domain exists.
    /// </summary>
    /// <exception cref="ArgumentException">The descriptor has no override, or its unit is UNKNOWN or not known to this build.</exception>
    public static RateLimitPolicy ForOverride(string domain, RateLimitDescriptor descriptor) => ForOverride(domain, RlsDescriptor.From(descriptor));

    /// <inheritdoc cref="ForOverride(string, RateLimitDescriptor)"/>
    public static RateLimitPolicy ForOverride(string domain, RlsDescriptor descriptor)
    {
        var limit = descriptor.Limit ?? throw new ArgumentException("The descriptor has no limit override.", nameof(descriptor));
        if (!LimitUnitExtensions.TryFromOverride(limit.Unit, out var unit))
            throw new ArgumentException($"The limit override has an unknown unit ({(int)limit.Unit}).", nameof(descriptor));
        return new RateLimitPolicy(domain, OverridePath(descriptor.Entries), unit, limit.RequestsPerUnit, null, false, null, false, false,
            LimitAlgorithm.FixedWindow, false, null, isOverride: true);
    }

    /// <summary>One line for the config dump: <c>domain.path: unit=SECOND requests_per_unit=5 ...</c>.</summary>
    public string Describe()
    {
        var line = new StringBuilder(MetricPath.Length + 128);
        line.Append(MetricPath)
            .Append(": unit=").Append(Unit.ToProtoName())
            .Append(" requests_per_unit=").Append(RequestsPerUnit.ToString(CultureInfo.InvariantCulture))
            .Append(" unlimited=").Append(Unlimited ? "true" : "false");
        if (Name is not null)
            line.Append(" name=").Append(Name);
        line.Append(" shadow_mode=").Append(ShadowMode ? "true" : "false")
            .Append(" quota_mode=").Append(QuotaMode ? "true" : "false")
            .Append(" algorithm=").Append(Algorithm.ToConfigName());
        if (Replaces.Count > 0)
            line.Append(" replaces=").AppendJoin(',', Replaces);
        return line.ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => Describe();

    // k1.k2: the keys alone, whatever the values (bounded by the key sets Envoy's routes send); one allocation.
    private static string OverridePath(ArraySegment<KeyValuePair<string, string>> entries)
    {
        var length = entries.Count == 0 ? 0 : entries.Count - 1;
        foreach (var entry in entries)
            length += entry.Key.Length;
        return string.Create(length, entries, static (span, entries) =>
        {
            var at = 0;
            for (var i = 0; i < entries.Count; i++)
            {
                if (i > 0)
                    span[at++] = '.';
                entries[i].Key.CopyTo(span[at..]);
                at += entries[i].Key.Length;
            }
        });
    }
}
