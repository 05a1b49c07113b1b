using Legate.Testing;

namespace Legate.Hosting.Tests;

public sealed class HealthProbeTests
{
    [Fact]
    public void Flag_IsRecognised()
    {
        Assert.True(HealthProbe.IsRequested(["--healthcheck"]));
        Assert.False(HealthProbe.IsRequested(["--Legate:HttpPort=1"]));
    }

    [Fact]
    public async Task ReadyService_ExitsZero()
    {
        await using var host = await TestHost.StartAsync();

        var exitCode = await HealthProbe.RunAsync(["--healthcheck", $"--Legate:HttpPort={host.Endpoints.Http.Port}"]);

        Assert.Equal(0, exitCode);
    }

    [Fact]
    public async Task NothingListening_ExitsOne()
    {
        var exitCode = await HealthProbe.RunAsync(["--healthcheck", $"--Legate:HttpPort={FreePort.Next()}"]);

        Assert.Equal(1, exitCode);
    }

    [Fact]
    public async Task NoFixedPort_ExitsOne()
    {
        var exitCode = await HealthProbe.RunAsync(["--healthcheck", "--Legate:HttpPort=0"]);

        Assert.Equal(1, exitCode);
    }
}
