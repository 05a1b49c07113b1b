using Legate.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Legate.Hosting.Tests;

/// <summary>A service's own defaults sit below every configuration source, whoever hosts the service.</summary>
public sealed class ServiceDefaultsTests
{
    private static (int Server, int? Grpc) ReceiveLimits(IDictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddLegateHosting("probe");
        builder.AddLegateServiceDefaults([new("Legate:MaxReceiveMessageSize", "16777216")]);
        using var app = builder.Build();
        return (app.Services.GetRequiredService<IOptions<LegateServerOptions>>().Value.MaxReceiveMessageSize,
            app.Services.GetRequiredService<IOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>>().Value.MaxReceiveMessageSize);
    }

    [Fact]
    public void Default_AppliesWhenNothingSetsIt() =>
        Assert.Equal((16777216, 16777216), ReceiveLimits(new Dictionary<string, string?>()));

    [Fact]
    public void AnySource_OverridesTheDefault_EvenOneAddedBeforeIt() =>
        Assert.Equal((1048576, 1048576), ReceiveLimits(new Dictionary<string, string?> { ["Legate:MaxReceiveMessageSize"] = "1048576" }));

    private const string GrpcCalls = "Grpc.AspNetCore.Server.ServerCallHandler";

    private static ILoggerFactory Loggers(IDictionary<string, string?> settings, out WebApplication app)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddLegateHosting("probe");
        app = builder.Build();
        return app.Services.GetRequiredService<ILoggerFactory>();
    }

    [Fact]
    public void PerCallLines_OfGrpcAndAspNetCore_StartAtWarning_WhileTheServicesOwnInformationStays()
    {
        var loggers = Loggers(new Dictionary<string, string?>(), out var app);
        using (app)
        {
            // "Error status code 'Unavailable' ... raised" and "Service method ... canceled" are Information.
            Assert.False(loggers.CreateLogger(GrpcCalls).IsEnabled(LogLevel.Information));
            Assert.True(loggers.CreateLogger(GrpcCalls).IsEnabled(LogLevel.Warning));
            Assert.False(loggers.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Information));
            Assert.True(loggers.CreateLogger("Legate.Rules.probe").IsEnabled(LogLevel.Information));
        }
    }

    [Fact]
    public void PerCallLines_ComeBack_WhenAnySourceLowersTheirLevel()
    {
        var loggers = Loggers(new Dictionary<string, string?> { ["Logging:LogLevel:" + GrpcCalls] = "Information" }, out var app);
        using (app)
            Assert.True(loggers.CreateLogger(GrpcCalls).IsEnabled(LogLevel.Information));
    }
}
