using Legate.Hosting.Rules;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Legate.Hosting.Tests.Rules;

public sealed class RulesHostingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("legate-rules-").FullName;

    [Fact]
    public async Task GoodRules_AreLoadedBeforeTheServerStarts()
    {
        var file = Path.Combine(_dir, "limits.yaml");
        await File.WriteAllTextAsync(file, "tenant_a: 10\n", TestContext.Current.CancellationToken);

        await using var host = await TestHost.StartAsync(
            new Dictionary<string, string?> { ["Legate:Rules:limits:Path"] = file },
            builder => builder.AddLegateRules<Limits, LimitsLoader>("limits"));

        Assert.Equal(10, host.App.Services.GetRequiredService<RulesProvider<Limits>>().Current.Values["tenant_a"]);
    }

    [Fact]
    public async Task BadRules_StopStartUpNamingFileLineAndField()
    {
        var file = Path.Combine(_dir, "limits.yaml");
        await File.WriteAllTextAsync(file, "tenant_a: ten\n", TestContext.Current.CancellationToken);

        var error = await Assert.ThrowsAsync<RulesException>(() => TestHost.StartAsync(
            new Dictionary<string, string?> { ["Legate:Rules:limits:Path"] = file },
            builder => builder.AddLegateRules<Limits, LimitsLoader>("limits")));

        Assert.Equal($"{file}:1:11: tenant_a: must be a positive whole number", error.Message);
    }

    [Fact]
    public async Task MissingRulesPath_StopsStartUp()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => TestHost.StartAsync(
            configure: builder => builder.AddLegateRules<Limits, LimitsLoader>("limits")));

        Assert.Contains("Legate:Rules:limits:Path is required", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
