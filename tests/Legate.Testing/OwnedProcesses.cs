using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;

namespace Legate.Testing;

/// <summary>A process as Linux knows it: its PID and its start time (clock ticks after boot), so a reused PID is never taken for it.</summary>
public readonly record struct ProcessIdentity(int Pid, ulong StartTime)
{
    /// <summary>The process with <paramref name="pid"/> as it is now, or null when there is none (or it is a zombie).</summary>
    public static ProcessIdentity? Of(int pid) =>
        ReadStat(pid) is { } stat && stat.State != 'Z' ? new ProcessIdentity(pid, stat.StartTime) : null;

    /// <summary>Whether this very process (same PID, same start time) is still running.</summary>
    public bool IsRunning => Of(Pid) is { } now && now.StartTime == StartTime;

    private static (char State, ulong StartTime)? ReadStat(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        // "pid (comm) state ...": comm may hold spaces and ')', so the fields are counted from its last ')'.
        // After it come field 3 (state) onwards; field 22 is the start time.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return fields.Length > 19 && fields[0].Length == 1 && ulong.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var start)
            ? (fields[0][0], start)
            : null;
    }
}

/// <summary>
/// Records the server processes tests start (<c>redis-server</c>), so that a later test run kills those a killed test
/// host left behind: a killed <c>dotnet test</c> or a CI time-out never runs the fixtures' dispose. Each record is a
/// file named after the child, holding the owner (this test process); a sweep kills a recorded child only when its
/// owner has gone, and only if it is still the very process recorded (PID and start time) running the expected
/// program. Processes of live owners (test projects run in parallel processes) are never touched.
/// Parent-death signals (PR_SET_PDEATHSIG) are no alternative under .NET: they fire when the forking thread exits,
/// and idle thread-pool threads exit. Linux only (<c>/proc</c>); elsewhere it does nothing.
/// </summary>
public static class OwnedProcesses
{
    private const string Extension = ".owner";
    private static int _swept;

    /// <summary>Where the records of every test process of this user are.</summary>
    public static string DefaultDirectory { get; } = Path.Combine(Path.GetTempPath(), "legate-test-processes");

    private static ProcessIdentity? Self { get; } = OperatingSystem.IsLinux() ? ProcessIdentity.Of(Environment.ProcessId) : null;

    /// <summary>Kills the <c>redis-server</c> processes that killed test runs left behind; the first call in a test process sweeps, later ones return at once.</summary>
    public static void SweepRedisServersOnce()
    {
        if (Interlocked.Exchange(ref _swept, 1) != 0)
            return;
        try
        {
            Sweep(DefaultDirectory, "redis-server");
        }
        catch (UnauthorizedAccessException)
        {
            // another user's directory: there is nothing of ours to sweep
        }
    }

    /// <summary>Records <paramref name="child"/> as this test process's; dispose the record once the child has exited.</summary>
    public static IDisposable Own(Process child)
    {
        if (Self is not { } self || ProcessIdentity.Of(child.Id) is not { } identity)
            return new Record(null);
        try
        {
            return Write(DefaultDirectory, identity, self);
        }
        catch (UnauthorizedAccessException)
        {
            return new Record(null); // another user's directory: the child runs unrecorded, as before there were records
        }
    }

    /// <summary>Writes the record that <paramref name="child"/> belongs to <paramref name="owner"/>; disposing it deletes it.</summary>
    public static IDisposable Write(string directory, ProcessIdentity child, ProcessIdentity owner)
    {
        if (!OperatingSystem.IsLinux() || !Usable(directory))
            return new Record(null);
        var path = Path.Combine(directory, FormattableString.Invariant($"{child.Pid}-{child.StartTime}{Extension}"));
        var temporary = path + ".tmp";
        // Written aside and renamed, so a sweep in another test process never reads half a record.
        File.WriteAllText(temporary, FormattableString.Invariant($"{owner.Pid} {owner.StartTime} {child.Pid} {child.StartTime}\n"));
        File.Move(temporary, path, overwrite: true);
        return new Record(path);
    }

    /// <summary>
    /// Kills (SIGCONT, then SIGKILL) each recorded child in <paramref name="directory"/> whose owner has gone, if it
    /// is still the recorded process and runs <paramref name="program"/>, and deletes the records of gone owners.
    /// Returns how many processes it killed.
    /// </summary>
    public static int Sweep(string directory, string program)
    {
        if (!OperatingSystem.IsLinux() || !Usable(directory))
            return 0;
        var killed = 0;
        foreach (var path in Directory.EnumerateFiles(directory, "*" + Extension))
        {
            string[] fields;
            try
            {
                fields = File.ReadAllText(path).Split(' ', StringSplitOptions.TrimEntries);
            }
            catch (FileNotFoundException)
            {
                continue; // deleted meanwhile by its owner or another sweep
            }
            if (fields.Length != 4
                || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var ownerPid)
                || !ulong.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ownerStart)
                || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var childPid)
                || !ulong.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var childStart))
            {
                File.Delete(path); // records are renamed into place whole: this one is not ours to understand
                continue;
            }
            if (new ProcessIdentity(ownerPid, ownerStart).IsRunning)
                continue;
            var child = new ProcessIdentity(childPid, childStart);
            if (child.IsRunning && Runs(childPid, program) && Kill(childPid))
                killed++;
            File.Delete(path);
        }
        return killed;
    }

    /// <summary>
    /// Creates the directory private to this user, and trusts it only if no one else may write to it: a record there
    /// gets a process killed.
    /// </summary>
    [SupportedOSPlatform("linux")]
    private static bool Usable(string directory)
    {
        var directoryInfo = Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return (directoryInfo.UnixFileMode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) == 0;
    }

    /// <summary>Whether the process's command line starts with <paramref name="program"/> (Redis rewrites the rest into a title).</summary>
    private static bool Runs(int pid, string program)
    {
        string commandLine;
        try
        {
            commandLine = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cmdline");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        var first = commandLine.Split('\0', ' ')[0];
        return Path.GetFileName(first) == program;
    }

    private static bool Kill(int pid)
    {
        // A process frozen by a test (SIGSTOP) is let run first, as RedisServerProcess.Kill does.
        UnixSignals.Send(pid, UnixSignals.Cont);
        return UnixSignals.Send(pid, UnixSignals.Kill);
    }

    private sealed class Record(string? path) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                if (path is not null)
                    File.Delete(path);
            }
            catch (DirectoryNotFoundException)
            {
                // someone cleared the temp directory: nothing left to delete
            }
        }
    }
}
