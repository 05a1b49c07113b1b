using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Legate.Hosting;

/// <summary>The two listeners of a Legate service.</summary>
public enum Listener
{
    /// <summary>HTTP/2 for Envoy's gRPC calls, the gRPC health service and reflection.</summary>
    Grpc,

    /// <summary>HTTP/1.1 for Prometheus scrapes and health probes.</summary>
    Http,
}

/// <summary>The addresses the service actually listens on, known once the server has started.</summary>
public sealed class LegateEndpoints
{
    private (ListenOptions Options, bool Tls)? _grpc;
    private (ListenOptions Options, bool Tls)? _http;

    /// <summary>The gRPC listener's address, e.g. <c>http://127.0.0.1:9001</c>.</summary>
    public Uri Grpc => Describe(_grpc, "grpc");

    /// <summary>The HTTP listener's address, e.g. <c>http://127.0.0.1:9011</c>.</summary>
    public Uri Http => Describe(_http, "http");

    internal void Set(Listener listener, ListenOptions options, bool tls)
    {
        if (listener == Listener.Grpc)
            _grpc = (options, tls);
        else
            _http = (options, tls);
    }

    private static Uri Describe((ListenOptions Options, bool Tls)? listener, string name)
    {
        if (listener is not { } l)
            throw new InvalidOperationException($"The {name} listener is not configured (is the server running on Kestrel?).");
        // Kestrel writes the bound port back into the endpoint, so port 0 reads as the port it picked.
        var endpoint = l.Options.IPEndPoint!;
        var host = endpoint.Address.Equals(System.Net.IPAddress.IPv6Any) || endpoint.Address.Equals(System.Net.IPAddress.Any)
            ? "127.0.0.1"
            : endpoint.Address.ToString();
        var scheme = l.Tls ? "https" : "http";
        return new Uri($"{scheme}://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{endpoint.Port}");
    }
}

/// <summary>Marks the operational endpoints (<c>/metrics</c>, <c>/healthz</c>, <c>/readyz</c>) as served by the HTTP listener only.</summary>
internal sealed class HttpListenerOnly
{
    public static readonly HttpListenerOnly Instance = new();
}

/// <summary>
/// Keeps each endpoint on its own listener: gRPC methods answer only on the gRPC port, the operational
/// endpoints only on the HTTP port. Connections are tagged by Kestrel connection middleware; requests
/// without a tag (an in-process test server) are not restricted.
/// </summary>
internal static class ListenerAffinity
{
    private const string ItemKey = "legate.listener";

    public static void Tag(ListenOptions options, Listener listener)
    {
        var tag = listener == Listener.Grpc ? TagGrpc : TagHttp;
        options.Use(next => connection =>
        {
            connection.Items[ItemKey] = tag;
            return next(connection);
        });
    }

    private static readonly object TagGrpc = Listener.Grpc;
    private static readonly object TagHttp = Listener.Http;

    public static Task Enforce(HttpContext context, RequestDelegate next)
    {
        var endpoint = context.GetEndpoint();
        if (endpoint is null)
            return next(context);
        var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
        if (items is null || !items.TryGetValue(ItemKey, out var tag))
            return next(context);

        var wanted = endpoint.Metadata.GetMetadata<GrpcMethodMetadata>() is not null ? TagGrpc
            : endpoint.Metadata.GetMetadata<HttpListenerOnly>() is not null ? TagHttp
            : null;
        if (wanted is null || ReferenceEquals(wanted, tag))
            return next(context);
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }
}
