using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;

namespace Legate.Testing;

/// <summary>What a service's gRPC reflection tells a client such as grpcurl.</summary>
public static class GrpcReflection
{
    /// <summary>The services the server lists, and whether it returns the file that declares <paramref name="service"/>.</summary>
    public static async Task<(IReadOnlyList<string> Services, bool DeclaringFileFound)> AskAsync(GrpcChannel channel, string service, CancellationToken cancellationToken)
    {
        var reflection = new ServerReflection.ServerReflectionClient(channel);
        using var call = reflection.ServerReflectionInfo(cancellationToken: cancellationToken);
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" }, cancellationToken);
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = service }, cancellationToken);
        await call.RequestStream.CompleteAsync();
        if (!await call.ResponseStream.MoveNext(cancellationToken))
            return ([], false);
        var services = call.ResponseStream.Current.ListServicesResponse?.Service.Select(s => s.Name).ToArray() ?? [];
        var found = await call.ResponseStream.MoveNext(cancellationToken) && call.ResponseStream.Current.FileDescriptorResponse?.FileDescriptorProto.Count > 0;
        return (services, found);
    }
}
