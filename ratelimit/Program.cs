using Legate.Hosting;

if (HealthProbe.IsRequested(args))
    return await HealthProbe.RunAsync(args);

var builder = WebApplication.CreateBuilder(args);
builder.AddLegateHosting("ratelimit", RateLimitExtensions.GrpcServiceName);
builder.AddRateLimit();

var app = builder.Build();
app.MapLegateEndpoints();
app.MapRateLimit();
await app.RunAsync();
return 0;
