using Envoy.Service.Ratelimit.V3;
using Grpc.Core;

namespace Legate.RateLimit;

/// <summary>Envoy's RLS v3 <c>ShouldRateLimit</c>, answered by the <see cref="RateLimiter"/>.</summary>
internal sealed class RateLimitService(RateLimiter limiter) : RlsServiceBase
{
    public override Task<RlsResponse> ShouldRateLimit(RlsRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var decision = limiter.ShouldRateLimitAsync(request, context.CancellationToken);
        return decision.IsCompletedSuccessfully ? Task.FromResult(decision.Result) : decision.AsTask();
    }
}

/// <summary>
/// The RLS service bound by hand rather than through the generated base class, so that the request is read by
/// <see cref="RlsRequestReader"/> straight into an <see cref="RlsRequest"/>, without the generated message's objects per
/// descriptor and entry, and the answer is written from an <see cref="RlsResponse"/>, without one per status. The
/// descriptor is Envoy's, so gRPC reflection shows the service as usual. (gRPC finds the handler as the override of the abstract
/// method, by name.)
/// </summary>
[BindServiceMethod(typeof(RlsServiceBase), nameof(BindService))]
internal abstract class RlsServiceBase
{
    private static readonly Method<RlsRequest, RlsResponse> ShouldRateLimitMethod = new(
        MethodType.Unary,
        Microsoft.Extensions.Hosting.RateLimitExtensions.GrpcServiceName,
        "ShouldRateLimit",
        new Marshaller<RlsRequest>(static (_, _) => throw new NotSupportedException("The service only reads requests."), ReadRequest),
        new Marshaller<RlsResponse>(WriteResponse, static _ => throw new NotSupportedException("The service only writes answers.")));

    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Envoy.Service.Ratelimit.V3.RateLimitService.Descriptor;

    public static void BindService(ServiceBinderBase binder, RlsServiceBase? service)
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddMethod(ShouldRateLimitMethod, service is null ? null : service.ShouldRateLimit);
    }

    public abstract Task<RlsResponse> ShouldRateLimit(RlsRequest request, ServerCallContext context);

    // A malformed request is the caller's error: INVALID_ARGUMENT, like a request without a domain.
    private static RlsRequest ReadRequest(DeserializationContext context)
    {
        try
        {
            return RlsRequestReader.Read(context.PayloadAsReadOnlySequence());
        }
        catch (InvalidDataException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "malformed RateLimitRequest: " + e.Message));
        }
    }

    private static void WriteResponse(RlsResponse response, SerializationContext context)
    {
        var size = response.CalculateSize();
        context.SetPayloadLength(size);
        var output = context.GetBufferWriter();
        response.WriteTo(output.GetSpan(size)[..size]);
        output.Advance(size);
        context.Complete();
    }
}
