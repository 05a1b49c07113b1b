using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Legate.Gateway.Up;

/// <summary>
/// The sample's backend under <c>legate up</c>: an HTTP server on 127.0.0.1 that answers every request with what it
/// received (method, path with query, headers) as JSON. Through Envoy it shows what an upstream gets: the identity
/// headers authz added, and the credentials it stripped. Plain HTTP/1.1: the backends it stands in for are made so.
/// </summary>
internal sealed class EchoUpstream : IAsyncDisposable
{
    /// <summary>Where the sample's backend listens unless ports are chosen freely.</summary>
    public const int DefaultPort = 9080;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private readonly WebApplication _app;

    private EchoUpstream(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public Uri Address => new($"http://127.0.0.1:{Port}/");

    /// <param name="port">0 for a port the system chooses.</param>
    public static async Task<EchoUpstream> StartAsync(int port, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, LocalServices.EmbeddedLifetime>();
        builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(IPAddress.Loopback, port, listen => listen.Protocols = HttpProtocols.Http1));
        var app = builder.Build();
        app.Run(EchoAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var bound = new Uri(app.Urls.First());
        return new EchoUpstream(app, bound.Port);
    }

    private static Task EchoAsync(HttpContext context)
    {
        var request = context.Request;
        var echo = new
        {
            method = request.Method,
            path = request.Path.Value + request.QueryString.Value,
            headers = request.Headers.OrderBy(h => h.Key, StringComparer.OrdinalIgnoreCase)
                .ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString(), StringComparer.Ordinal),
        };
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(echo, Indented) + "\n", context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
