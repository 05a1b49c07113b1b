using Legate.Hosting;

if (HealthProbe.IsRequested(args))
    return await HealthProbe.RunAsync(args);

var builder = WebApplication.CreateBuilder(args);
builder.AddLegateHosting("statsink", StatSinkExtensions.GrpcServiceName);
builder.AddStatSink();

var app = builder.Build();
app.MapLegateEndpoints();
app.MapStatSink();
await app.RunAsync();
return 0;
