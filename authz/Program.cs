using Legate.Hosting;

if (HealthProbe.IsRequested(args))
    return await HealthProbe.RunAsync(args);

var builder = WebApplication.CreateBuilder(args);
builder.AddLegateHosting("authz", AuthzExtensions.GrpcServiceName);
builder.AddAuthz();

var app = builder.Build();
app.MapLegateEndpoints();
app.MapAuthz();
await app.RunAsync();
return 0;
