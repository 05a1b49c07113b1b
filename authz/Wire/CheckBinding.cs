using System.Buffers;
using Envoy.Service.Auth.V3;
using Google.Protobuf;
using Grpc.Core;

namespace Legate.Authz.Wire;

/// <summary>
/// Envoy's <c>envoy.service.auth.v3.Authorization/Check</c> bound with a request marshaller that reads a
/// <see cref="CheckRequestView"/> instead of the generated <see cref="CheckRequest"/>. The descriptor is Envoy's, so gRPC
/// reflection shows the service as usual.
/// </summary>
internal static class CheckBinding
{
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Authorization.Descriptor;

    public static readonly Method<CheckRequestView, CheckAnswer> CheckMethod = new(
        MethodType.Unary,
        Microsoft.Extensions.Hosting.AuthzExtensions.GrpcServiceName,
        "Check",
        new Marshaller<CheckRequestView>(static (_, _) => throw new NotSupportedException("The view is read on the server only."), ReadRequest),
        new Marshaller<CheckAnswer>(WriteAnswer, static context => CheckAnswer.Once(CheckResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence()))));

    private static CheckRequestView ReadRequest(DeserializationContext context)
    {
        // The payload's memory is gRPC's until this returns: the view keeps a copy of the message.
        var payload = context.PayloadAsReadOnlySequence();
        var message = GC.AllocateUninitializedArray<byte>(checked((int)payload.Length));
        payload.CopyTo(message);
        try
        {
            return CheckRequestView.Parse(message);
        }
        catch (InvalidDataException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "Malformed CheckRequest: " + e.Message));
        }
    }

    private static void WriteAnswer(CheckAnswer answer, SerializationContext context)
    {
        if (answer.Encoded is { } encoded)
        {
            context.Complete(encoded);
            return;
        }
        var response = answer.Response;
        context.SetPayloadLength(response.CalculateSize());
        response.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    [BindServiceMethod(typeof(ServiceBase), nameof(BindService))]
    public abstract class ServiceBase
    {
        public abstract Task<CheckAnswer> Check(CheckRequestView request, ServerCallContext context);

        public static void BindService(ServiceBinderBase binder, ServiceBase? service)
        {
            ArgumentNullException.ThrowIfNull(binder);
            binder.AddMethod(CheckMethod, service is null ? null : service.Check);
        }
    }
}
