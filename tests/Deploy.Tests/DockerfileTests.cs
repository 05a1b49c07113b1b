using System.Text.RegularExpressions;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>The images cannot be built here (no Docker engine), so their Dockerfiles are read and checked.</summary>
public sealed partial class DockerfileTests
{
    public static TheoryData<string> Services => ["authz", "ratelimit", "statsink"];

    private static Dockerfile Load(string name) => Dockerfile.Load(Path.Combine(RepoPaths.Root, "deploy", "docker", name + ".Dockerfile"));

    [GeneratedRegex(@"^mcr\.microsoft\.com/dotnet/(sdk|aspnet|runtime):10\.0\.\d+(-[a-z-]+)?$")]
    private static partial Regex PinnedDotnetImage();

    [Theory]
    [MemberData(nameof(Services))]
    [InlineData("legate")]
    public void EveryStage_StartsFromAPinnedDotnet10Image(string name)
    {
        var dockerfile = Load(name);

        Assert.Equal(2, dockerfile.Stages.Count);
        Assert.All(dockerfile.Stages, s => Assert.Matches(PinnedDotnetImage(), s.Image));
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:", dockerfile.Stages[0].Image, StringComparison.Ordinal);
        // The runtime stage is the small, shell-less one.
        Assert.EndsWith("-noble-chiseled", dockerfile.Final.Image, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Services))]
    [InlineData("legate")]
    public void RuntimeStage_RunsAsANumericNonRootUser(string name)
    {
        var user = Load(name).Final.Last("USER");

        Assert.NotNull(user);
        // Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
        Assert.True(int.TryParse(user, out var uid) && uid > 0, $"USER '{user}' is not a numeric non-root UID");
    }

    [Theory]
    [MemberData(nameof(Services))]
    public void Service_PublishesItsOwnProject_AndStartsItsAssembly(string name)
    {
        var service = ServiceInfo.Get(name);
        var dockerfile = Load(name);

        Assert.Contains(dockerfile.Stages[0].All("RUN"), r => r.Contains($"dotnet publish {name}/{service.Project}", StringComparison.Ordinal));
        Assert.Equal($"[\"dotnet\", \"/app/{service.Assembly}.dll\"]", dockerfile.Final.Last("ENTRYPOINT"));
        // Every folder the build copies exists (a renamed project breaks the image, not just this test).
        foreach (var copy in dockerfile.Stages[0].All("COPY"))
        {
            foreach (var source in copy.Split(' ', StringSplitOptions.RemoveEmptyEntries)[..^1])
                Assert.True(Path.Exists(Path.Combine(RepoPaths.Root, source)), $"{name}.Dockerfile copies {source}, which does not exist");
        }
    }

    [Theory]
    [MemberData(nameof(Services))]
    public void Service_ExposesThePortsOfItsAppSettings(string name)
    {
        var service = ServiceInfo.Get(name);

        var exposed = Load(name).Final.All("EXPOSE").SelectMany(e => e.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(int.Parse);

        Assert.Equal([service.GrpcPort, service.HttpPort], exposed.Order());
    }

    [Theory]
    [MemberData(nameof(Services))]
    public void Service_HealthcheckRunsItsOwnProbeInExecForm(string name)
    {
        var service = ServiceInfo.Get(name);

        var healthcheck = Load(name).Final.Last("HEALTHCHECK");

        Assert.NotNull(healthcheck);
        // Exec form: there is no shell in the image to run a shell-form command.
        Assert.EndsWith($"CMD [\"dotnet\", \"/app/{service.Assembly}.dll\", \"--healthcheck\"]", healthcheck, StringComparison.Ordinal);
    }

    [Fact]
    public void Legate_IsAOneShotCommandWithAWritableOutputFolder()
    {
        var final = Load("legate").Final;

        Assert.Equal("[\"dotnet\", \"/app/legate.dll\"]", final.Last("ENTRYPOINT"));
        Assert.Null(final.Last("HEALTHCHECK"));
        Assert.Contains(final.All("COPY"), c => c.Contains("--chown=1654:1654", StringComparison.Ordinal) && c.EndsWith(" /out", StringComparison.Ordinal));
    }

    [Fact]
    public void DockerIgnore_KeepsBuildOutputAndGitOutOfTheContext()
    {
        var lines = File.ReadAllLines(Path.Combine(RepoPaths.Root, ".dockerignore"));

        Assert.Contains("**/bin/", lines);
        Assert.Contains("**/obj/", lines);
        Assert.Contains(".git/", lines);
    }
}
