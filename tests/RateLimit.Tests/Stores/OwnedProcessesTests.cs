using System.Diagnostics;
using System.Globalization;
using Legate.Testing;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// The sweep of processes left by killed test runs (Legate.Testing.OwnedProcesses), with real processes: <c>sleep</c>
/// children, owners that really ended, and the redis-servers of <see cref="RedisServerProcess"/>. Each test sweeps a
/// folder of its own, so it never touches another test process's records.
/// </summary>
public sealed class OwnedProcessesTests : IDisposable
{
    private static readonly TimeSpan ExitWait = TimeSpan.FromSeconds(10);
    private readonly DirectoryInfo _directory;
    private readonly List<Process> _started = [];

    public OwnedProcessesTests()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Skip("The sweep reads /proc: Linux only.");
        _directory = Directory.CreateTempSubdirectory("legate-owned-processes-");
    }

    [Fact]
    public void Sweep_KillsTheChildOfAnOwnerThatHasGone_AndDeletesItsRecord()
    {
        var child = Sleep();
        var record = Record(Identity(child), DeadOwner());

        Assert.Equal(1, OwnedProcesses.Sweep(_directory.FullName, "sleep"));

        Assert.True(child.WaitForExit(ExitWait), "the stray child is still running");
        Assert.False(File.Exists(record));
    }

    [Fact]
    public void Sweep_LeavesTheChildOfALiveOwner()
    {
        var child = Sleep();
        var record = Record(Identity(child), Identity(Environment.ProcessId));

        Assert.Equal(0, OwnedProcesses.Sweep(_directory.FullName, "sleep"));

        Assert.False(child.HasExited);
        Assert.True(File.Exists(record));
    }

    [Fact]
    public void Sweep_DoesNotKillAProcessThatOnlyHasTheRecordedPid()
    {
        var child = Sleep();
        var identity = Identity(child);
        // The recorded process started a tick earlier: the PID now belongs to another one.
        var record = Record(identity with { StartTime = identity.StartTime - 1 }, DeadOwner());

        Assert.Equal(0, OwnedProcesses.Sweep(_directory.FullName, "sleep"));

        Assert.False(child.HasExited);
        Assert.False(File.Exists(record)); // the recorded process is gone
    }

    [Fact]
    public void Sweep_DoesNotKillARecordedProcessRunningAnotherProgram()
    {
        var child = Sleep();
        var record = Record(Identity(child), DeadOwner());

        Assert.Equal(0, OwnedProcesses.Sweep(_directory.FullName, "redis-server"));

        Assert.False(child.HasExited);
        Assert.False(File.Exists(record));
    }

    [Fact]
    public async Task RedisServerProcess_RecordsItsServerAsThisProcesss_UntilItIsKilled()
    {
        using var server = new RedisServerProcess(FreePort.Next());
        await server.StartAsync(TestContext.Current.CancellationToken);
        var identity = Identity(server.ProcessId);
        var record = Path.Combine(OwnedProcesses.DefaultDirectory, FormattableString.Invariant($"{identity.Pid}-{identity.StartTime}.owner"));
        var self = Identity(Environment.ProcessId);

        Assert.Equal(FormattableString.Invariant($"{self.Pid} {self.StartTime} {identity.Pid} {identity.StartTime}\n"), File.ReadAllText(record));

        server.Kill();
        Assert.False(File.Exists(record));
    }

    private Process Sleep()
    {
        var process = Process.Start(new ProcessStartInfo("sleep", ["300"]) { UseShellExecute = false })!;
        _started.Add(process);
        return process;
    }

    /// <summary>A process that really ran and has ended (and was reaped): what a killed test host leaves as owner.</summary>
    private ProcessIdentity DeadOwner()
    {
        var owner = Sleep();
        var identity = Identity(owner);
        owner.Kill();
        Assert.True(owner.WaitForExit(ExitWait));
        Assert.False(identity.IsRunning);
        return identity;
    }

    private static ProcessIdentity Identity(Process process) => Identity(process.Id);

    private static ProcessIdentity Identity(int pid) =>
        ProcessIdentity.Of(pid) ?? throw new InvalidOperationException("No process " + pid.ToString(CultureInfo.InvariantCulture));

    private string Record(ProcessIdentity child, ProcessIdentity owner)
    {
        OwnedProcesses.Write(_directory.FullName, child, owner);
        var path = Assert.Single(_directory.GetFiles("*.owner")).FullName;
        Assert.StartsWith(child.Pid.ToString(CultureInfo.InvariantCulture) + "-", Path.GetFileName(path), StringComparison.Ordinal);
        return path;
    }

    public void Dispose()
    {
        foreach (var process in _started)
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit(ExitWait);
            }
            process.Dispose();
        }
        _directory.Delete(recursive: true);
    }
}
