using Legate.Bench.Noop;
using Microsoft.AspNetCore.Server.Kestrel.Core;

// Usage: legate-bench-noop --port N. h2c on 127.0.0.1 only; nothing but the three Envoy services.
var port = NoopArgs.Port(args);
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.AddServerHeader = false;
    // Same limit as the Legate services, so h2load's -m means the same thing against both.
    kestrel.Limits.Http2.MaxStreamsPerConnection = 1024;
    kestrel.Listen(System.Net.IPAddress.Loopback, port, listen => listen.Protocols = HttpProtocols.Http2);
});
builder.Services.AddGrpc();

var app = builder.Build();
app.MapGrpcService<NoopAuthorization>();
app.MapGrpcService<NoopRateLimit>();
app.MapGrpcService<NoopMetrics>();
await app.RunAsync();
