using Legate.Hosting;

return await LegateProgram.RunAsync(args, "authz", AuthzExtensions.GrpcServiceName,
    static builder => builder.AddAuthz(),
    static app => app.MapAuthz());
