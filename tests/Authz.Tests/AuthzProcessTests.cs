using Legate.Testing;

namespace Legate.Authz.Tests;

public sealed class AuthzProcessTests()
    : ServiceProcessTests("authz", "legate-authz", "authz", "envoy.service.auth.v3.Authorization")
{
    [Fact]
    public async Task ABadServiceSetting_StopsStartUpWithTheKeyNamed()
    {
        await using var service = ServiceProcess.Start(RepoPaths.ServiceAssembly("authz", "legate-authz"), ["--Legate:Authz:TokenCacheCapacity=-5"]);

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(30));

        AssertStartRefused(service, exitCode, "Legate:Authz:TokenCacheCapacity must be 0 (off) or more; was -5.");
    }
}
