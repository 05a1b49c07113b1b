using Legate.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
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
}
