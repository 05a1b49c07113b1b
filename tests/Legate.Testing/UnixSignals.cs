using System.Runtime.InteropServices;

namespace Legate.Testing;

/// <summary>
/// Signals by PID (kill(2)), for tests that stop, freeze, thaw or kill the processes they start: no kill(1) process
/// per signal. Unix only.
/// </summary>
public static class UnixSignals
{
    public const int Kill = 9;
    public const int Term = 15;

    /// <summary>SIGSTOP: freezes the process until <see cref="Cont"/> (17 on macOS, 19 on Linux).</summary>
    public static readonly int Stop = OperatingSystem.IsMacOS() ? 17 : 19;

    /// <summary>SIGCONT (19 on macOS, 18 on Linux).</summary>
    public static readonly int Cont = OperatingSystem.IsMacOS() ? 19 : 18;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when it could not (no such process, or not ours).</summary>
    public static bool Send(int pid, int signal)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
            throw new PlatformNotSupportedException("Signals need a Unix system.");
        return SysKill(pid, signal) == 0;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);
}
