using System.Buffers;
using System.Text;
using Envoy.Service.Metrics.V3;
using Google.Protobuf;
using Grpc.Core;
using Legate.Hosting.Wire;

namespace Legate.StatSink;

/// <summary>
/// Reads <c>StreamMetricsMessage</c> like the generated marshaller, except that invalid UTF-8 in a name, label or node
/// string does not fail the whole flush (Google.Protobuf refuses such strings, and Envoy would lose every flush of that
/// stream): such a message is rewritten with U+FFFD for each bad sequence, without the node's metadata and locality,
/// and parsed again. Valid messages take the ordinary path at no extra cost.
/// </summary>
internal static class LenientMarshaller
{
    public static readonly Method<StreamMetricsMessage, StreamMetricsResponse> StreamMetrics = new(
        MethodType.ClientStreaming,
        "envoy.service.metrics.v3.MetricsService",
        "StreamMetrics",
        new Marshaller<StreamMetricsMessage>((m, ctx) => ctx.Complete(m.ToByteArray()), Deserialize),
        new Marshaller<StreamMetricsResponse>((m, ctx) => ctx.Complete(m.ToByteArray()), ctx => StreamMetricsResponse.Parser.ParseFrom(ctx.PayloadAsReadOnlySequence())));

    private static StreamMetricsMessage Deserialize(DeserializationContext context)
    {
        var payload = context.PayloadAsReadOnlySequence();
        try
        {
            return StreamMetricsMessage.Parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException e) when (e.InnerException is DecoderFallbackException)
        {
            var output = new ArrayBufferWriter<byte>((int)payload.Length);
            try
            {
                Rewrite(payload.ToArray(), Schema.Message, output);
            }
            catch (InvalidDataException)
            {
                // Malformed as well: report the original error.
                throw e;
            }
            return StreamMetricsMessage.Parser.ParseFrom(output.WrittenSpan);
        }
    }

    // Which length-delimited fields of each message are strings, which are messages holding strings, and which hold
    // strings statsink never reads and are left out of a rewritten message.
    private sealed record Schema(int[] Strings, (int Field, Func<Schema> Inner)[] Messages, int[]? Dropped = null)
    {
        public static readonly Schema LabelPair = new([1, 2], []);
        public static readonly Schema Metric = new([], [(1, () => LabelPair)]);
        public static readonly Schema Family = new([1, 2, 5], [(4, () => Metric)]);
        // The node's metadata (a Struct, nested without bound) and locality (--service-zone) are not read here.
        public static readonly Schema Node = new([1, 2, 6, 7], [], Dropped: [3, 4]);
        public static readonly Schema Identifier = new([], [(1, () => Node)]);
        public static readonly Schema Message = new([], [(1, () => Identifier), (2, () => Family)]);
    }

    private static void Rewrite(ReadOnlySpan<byte> input, Schema schema, IBufferWriter<byte> output)
    {
        var reader = new WireReader(input);
        while (reader.HasMore)
        {
            var start = reader.Position;
            var tag = reader.ReadTag();
            if ((tag & 7) != WireReader.LengthDelimited)
            {
                reader.Skip(tag);
                output.Write(input[start..reader.Position]);
                continue;
            }
            var field = (int)(tag >> 3);
            var (at, length) = reader.ReadLengthDelimited();
            if (schema.Dropped is { } dropped && Array.IndexOf(dropped, field) >= 0)
                continue;
            var payload = input.Slice(at, length);
            var inner = Array.Find(schema.Messages, m => m.Field == field).Inner;
            byte[] rewritten;
            if (inner is not null)
            {
                var nested = new ArrayBufferWriter<byte>(length);
                Rewrite(payload, inner(), nested);
                rewritten = nested.WrittenSpan.ToArray();
            }
            else if (Array.IndexOf(schema.Strings, field) >= 0 && !System.Text.Unicode.Utf8.IsValid(payload))
            {
                rewritten = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(payload));
            }
            else
            {
                output.Write(input[start..reader.Position]);
                continue;
            }
            WriteVarint(output, tag);
            WriteVarint(output, (ulong)rewritten.Length);
            output.Write(rewritten);
        }
    }

    private static void WriteVarint(IBufferWriter<byte> output, ulong value)
        => output.Advance(WireWriter.WriteVarint(output.GetSpan(WireWriter.MaxVarintLength), value));
}

/// <summary>
/// The metrics service bound with <see cref="LenientMarshaller"/> in place of the generated one. The descriptor is
/// Envoy's, so gRPC reflection shows the service as usual.
/// </summary>
internal static class LenientMetricsService
{
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => MetricsService.Descriptor;

    [BindServiceMethod(typeof(ServiceBase), nameof(BindService))]
    public abstract class ServiceBase
    {
        public abstract Task<StreamMetricsResponse> StreamMetrics(IAsyncStreamReader<StreamMetricsMessage> requestStream, ServerCallContext context);

        public static void BindService(ServiceBinderBase binder, ServiceBase? service)
        {
            ArgumentNullException.ThrowIfNull(binder);
            binder.AddMethod(LenientMarshaller.StreamMetrics, service is null ? null : service.StreamMetrics);
        }
    }
}
