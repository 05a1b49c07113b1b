using Legate.Hosting;

return await LegateProgram.RunAsync(args, "statsink", StatSinkExtensions.GrpcServiceName,
    static builder => builder.AddStatSink(),
    static app => app.MapStatSink());
