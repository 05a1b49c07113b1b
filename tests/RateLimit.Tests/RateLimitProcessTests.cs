using Legate.Testing;

namespace Legate.RateLimit.Tests;

public sealed class RateLimitProcessTests()
    : ServiceProcessTests("ratelimit", "legate-ratelimit", "ratelimit", "envoy.service.ratelimit.v3.RateLimitService")
{
    [Fact]
    public async Task BadRulesAtStart_StopStartUpWithTheFileLineAndFieldNamed()
    {
        var rules = Directory.CreateTempSubdirectory("legate-rl-start-").FullName;
        try
        {
            var file = Path.Combine(rules, "edge.yaml");
            await File.WriteAllTextAsync(file, "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n", TestContext.Current.CancellationToken);
            await using var service = ServiceProcess.Start(RepoPaths.ServiceAssembly("ratelimit", "legate-ratelimit"), [$"--Legate:Rules:ratelimit:Path={rules}"]);

            var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

            AssertStartRefused(service, exitCode, $"{file}:4:24: descriptors[0].rate_limit.unit");
        }
        finally
        {
            Directory.Delete(rules, recursive: true);
        }
    }
}
