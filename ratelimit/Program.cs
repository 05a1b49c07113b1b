using Legate.Hosting;

return await LegateProgram.RunAsync(args, "ratelimit", RateLimitExtensions.GrpcServiceName,
    static builder => builder.AddRateLimit(),
    static app => app.MapRateLimit());
