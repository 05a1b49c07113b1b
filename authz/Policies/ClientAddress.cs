using System.Net;
using Legate.Authz.Wire;

namespace Legate.Authz.Policies;

/// <summary>Where the client's address is read from for <c>client_cidrs</c> rules (research E5).</summary>
public enum ClientAddressSource
{
    /// <summary>The TCP peer of Envoy's downstream connection (<c>source.address</c>): unspoofable, but a load balancer's address behind one.</summary>
    Source,

    /// <summary><c>x-envoy-external-address</c>: Envoy sets it from the peer with <c>use_remote_address: true</c> and strips a client's own.</summary>
    EnvoyExternalAddress,

    /// <summary><c>x-forwarded-for</c>, counting <see cref="ClientAddressSettings.TrustedHops"/> trusted proxies from the right.</summary>
    ForwardedFor,
}

/// <param name="TrustedHops">For <see cref="ClientAddressSource.ForwardedFor"/>: how many right-most entries are your own proxies (0: the right-most entry is the client).</param>
public sealed record ClientAddressSettings(ClientAddressSource Source, int TrustedHops = 0)
{
    public static ClientAddressSettings Default { get; } = new(ClientAddressSource.Source);

    /// <summary>The client's address, or null when it is missing or not an IP address (the caller refuses).</summary>
    public IPAddress? Find(CheckRequestView request, IReadOnlyDictionary<string, string> headers)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(headers);
        var text = Source switch
        {
            ClientAddressSource.Source => request.SourceAddress,
            ClientAddressSource.EnvoyExternalAddress => headers.GetValueOrDefault("x-envoy-external-address"),
            _ => FromForwardedFor(headers.GetValueOrDefault("x-forwarded-for")),
        };
        if (text is null || !IPAddress.TryParse(text.Trim(), out var address))
            return null;
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
    }

    private string? FromForwardedFor(string? value)
    {
        if (value is null)
            return null;
        var entries = value.Split(',', StringSplitOptions.TrimEntries);
        // Fewer entries than trusted hops: the chain did not pass through all our proxies; no client address.
        var index = entries.Length - 1 - TrustedHops;
        return index >= 0 && entries[index].Length > 0 ? entries[index] : null;
    }
}
