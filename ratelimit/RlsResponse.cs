using Envoy.Config.Core.V3;
using Envoy.Service.Ratelimit.V3;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Legate.RateLimit.Config;
using static Legate.Hosting.Wire.WireWriter;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Legate.RateLimit;

/// <summary>
/// A <c>ShouldRateLimit</c> answer as the limiter builds it: one array of statuses, written to the wire directly
/// (<see cref="CalculateSize"/>, <see cref="WriteTo"/>; each limit's <c>current_limit</c> encoded once per rule) with
/// the bytes the generated <see cref="RateLimitResponse"/> would write, or converted to it by <see cref="ToProto"/>.
/// </summary>
public sealed class RlsResponse
{
    private readonly RlsStatus[] _statuses;
    private readonly HeaderValue[] _headers;

    /// <param name="overallCode">The answer's <c>overall_code</c>.</param>
    /// <param name="statuses">One per request descriptor, in request order; the response keeps the array.</param>
    /// <param name="headers"><c>response_headers_to_add</c>, or null for none; the response keeps the array.</param>
    /// <param name="dynamicMetadata"><c>dynamic_metadata</c>, or null.</param>
    public RlsResponse(Code overallCode, RlsStatus[] statuses, HeaderValue[]? headers = null, Struct? dynamicMetadata = null)
    {
        ArgumentNullException.ThrowIfNull(statuses);
        OverallCode = overallCode;
        _statuses = statuses;
        _headers = headers ?? [];
        DynamicMetadata = dynamicMetadata;
    }

    public Code OverallCode { get; }

    /// <summary>One per request descriptor, in request order.</summary>
    public ReadOnlySpan<RlsStatus> Statuses => _statuses;

    public IReadOnlyList<HeaderValue> ResponseHeadersToAdd => _headers;

    public Struct? DynamicMetadata { get; }

    /// <summary>The same answer as the generated message (the JSON endpoint, tests).</summary>
    public RateLimitResponse ToProto()
    {
        var response = new RateLimitResponse { OverallCode = OverallCode, DynamicMetadata = DynamicMetadata };
        foreach (var status in _statuses)
        {
            response.Statuses.Add(new RateLimitResponse.Types.DescriptorStatus
            {
                Code = status.Code,
                CurrentLimit = status.Limit?.CurrentLimit,
                LimitRemaining = status.LimitRemaining,
                DurationUntilReset = status.ResetSeconds is { } seconds ? new Duration { Seconds = seconds } : null,
            });
        }
        response.ResponseHeadersToAdd.AddRange(_headers);
        return response;
    }

    /// <summary>The encoded size, as <see cref="RateLimitResponse.CalculateSize"/> of <see cref="ToProto"/>.</summary>
    public int CalculateSize()
    {
        var size = OverallCode == Code.Unknown ? 0 : 1 + VarintSize((ulong)OverallCode);
        foreach (ref readonly var status in _statuses.AsSpan())
            size += LengthDelimitedSize(StatusSize(status));
        foreach (var header in _headers)
            size += LengthDelimitedSize(header.CalculateSize());
        if (DynamicMetadata is not null)
            size += LengthDelimitedSize(DynamicMetadata.CalculateSize());
        return size;
    }

    /// <summary>Writes the answer in field order, as the generated code would; <paramref name="output"/> holds <see cref="CalculateSize"/> bytes.</summary>
    public void WriteTo(Span<byte> output)
    {
        var at = 0;
        if (OverallCode != Code.Unknown)
        {
            output[at++] = 0x08; // overall_code = 1
            at += WriteVarint(output[at..], (ulong)OverallCode);
        }
        foreach (ref readonly var status in _statuses.AsSpan())
        {
            output[at++] = 0x12; // statuses = 2
            at += WriteVarint(output[at..], (ulong)StatusSize(status));
            if (status.Code != Code.Unknown)
            {
                output[at++] = 0x08; // code = 1
                at += WriteVarint(output[at..], (ulong)status.Code);
            }
            if (status.Limit is { } limit)
            {
                output[at++] = 0x12; // current_limit = 2
                at += WriteVarint(output[at..], (ulong)limit.CurrentLimitBytes.Length);
                limit.CurrentLimitBytes.CopyTo(output[at..]);
                at += limit.CurrentLimitBytes.Length;
            }
            if (status.LimitRemaining != 0)
            {
                output[at++] = 0x18; // limit_remaining = 3
                at += WriteVarint(output[at..], status.LimitRemaining);
            }
            if (status.ResetSeconds is { } seconds)
            {
                output[at++] = 0x22; // duration_until_reset = 4: { seconds = 1 }
                if (seconds == 0)
                {
                    output[at++] = 0;
                }
                else
                {
                    at += WriteVarint(output[at..], (ulong)(1 + VarintSize((ulong)seconds)));
                    output[at++] = 0x08;
                    at += WriteVarint(output[at..], (ulong)seconds);
                }
            }
        }
        foreach (var header in _headers)
            at = WriteMessage(output, at, 0x1A, header); // response_headers_to_add = 3
        if (DynamicMetadata is not null)
            at = WriteMessage(output, at, 0x32, DynamicMetadata); // dynamic_metadata = 6
    }

    private static int StatusSize(in RlsStatus status)
    {
        var size = status.Code == Code.Unknown ? 0 : 1 + VarintSize((ulong)status.Code);
        if (status.Limit is { } limit)
            size += LengthDelimitedSize(limit.CurrentLimitBytes.Length);
        if (status.LimitRemaining != 0)
            size += 1 + VarintSize(status.LimitRemaining);
        if (status.ResetSeconds is { } seconds)
            size += LengthDelimitedSize(seconds == 0 ? 0 : 1 + VarintSize((ulong)seconds));
        return size;
    }

    private static int WriteMessage(Span<byte> output, int at, byte tag, IMessage message)
    {
        var size = message.CalculateSize();
        output[at++] = tag;
        at += WriteVarint(output[at..], (ulong)size);
        message.WriteTo(output.Slice(at, size));
        return at + size;
    }

    // A one-byte tag, the length, the payload.
    private static int LengthDelimitedSize(int length) => 1 + VarintSize((ulong)length) + length;
}

/// <summary>One descriptor's status in an <see cref="RlsResponse"/>.</summary>
/// <param name="Code">OK or OVER_LIMIT.</param>
/// <param name="Limit">The limit that applied (its <c>current_limit</c>), or null for none.</param>
/// <param name="LimitRemaining">Hits left in the window.</param>
/// <param name="ResetSeconds">Seconds until the window ends (<c>duration_until_reset</c>), or null when not counted.</param>
public readonly record struct RlsStatus(Code Code, RateLimitPolicy? Limit = null, uint LimitRemaining = 0, long? ResetSeconds = null);
