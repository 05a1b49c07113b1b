using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using OverrideUnit = Envoy.Type.V3.RateLimitUnit;

namespace Legate.RateLimit;

/// <summary>
/// A <c>ShouldRateLimit</c> request as the limiter reads it: the fields of <see cref="RateLimitRequest"/> in three
/// objects (this, one array of descriptors, one of all their entries) instead of one per descriptor and entry, read
/// straight from the wire by <see cref="RlsRequestReader"/> or converted from a parsed message by <see cref="From"/>.
/// </summary>
public sealed class RlsRequest
{
    /// <param name="domain">The rate limit domain (<c>domain</c>).</param>
    /// <param name="descriptors">The descriptors in request order; the request keeps the array.</param>
    /// <param name="hitsAddend">The request-level <c>hits_addend</c> (0 means 1).</param>
    public RlsRequest(string domain, RlsDescriptor[] descriptors, uint hitsAddend)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(descriptors);
        Domain = domain;
        _descriptors = descriptors;
        HitsAddend = hitsAddend;
    }

    private readonly RlsDescriptor[] _descriptors;

    public string Domain { get; }

    public ReadOnlySpan<RlsDescriptor> Descriptors => _descriptors;

    public uint HitsAddend { get; }

    /// <summary>The same request from a parsed message (the JSON endpoint, tests).</summary>
    public static RlsRequest From(RateLimitRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var descriptors = new RlsDescriptor[request.Descriptors.Count];
        for (var i = 0; i < descriptors.Length; i++)
            descriptors[i] = RlsDescriptor.From(request.Descriptors[i]);
        return new RlsRequest(request.Domain, descriptors, request.HitsAddend);
    }
}

/// <summary>One descriptor of an <see cref="RlsRequest"/>.</summary>
/// <param name="Entries">The (key, value) entries in order.</param>
/// <param name="Limit">The descriptor's own limit (<c>limit</c>), or null.</param>
/// <param name="HitsAddend">The descriptor's <c>hits_addend</c> (0 = check only), or null to use the request's.</param>
public readonly record struct RlsDescriptor(ArraySegment<KeyValuePair<string, string>> Entries, RlsLimitOverride? Limit = null, ulong? HitsAddend = null)
{
    /// <summary>The same descriptor from a parsed message.</summary>
    public static RlsDescriptor From(RateLimitDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var entries = new KeyValuePair<string, string>[descriptor.Entries.Count];
        for (var i = 0; i < entries.Length; i++)
            entries[i] = new(descriptor.Entries[i].Key, descriptor.Entries[i].Value);
        var limit = descriptor.Limit is { } l ? new RlsLimitOverride(l.RequestsPerUnit, l.Unit) : (RlsLimitOverride?)null;
        return new RlsDescriptor(entries, limit, descriptor.HitsAddend);
    }
}

/// <summary>A descriptor's <c>limit</c> override, the unit as sent (it may be UNKNOWN or a value this build does not know).</summary>
public readonly record struct RlsLimitOverride(uint RequestsPerUnit, OverrideUnit Unit);
