using System.Collections.Concurrent;
using System.Net;

namespace Legate.Authz.Policies;

/// <summary><c>failure_throttle: {max_failures: 20, window: 1m}</c>: how many bad credentials one client address may send per window.</summary>
public sealed record FailureThrottleSettings(int MaxFailures, TimeSpan Window);

/// <summary>
/// Counts invalid credentials (bad or ambiguous API keys and tokens) per client address in fixed windows; an address
/// over the limit is refused (429) before any key lookup or signature check until its window ends (research K10:
/// guessing keys or flooding with forged tokens costs the service nearly nothing). Bounded: past
/// <see cref="MaxAddresses"/> tracked addresses the table is emptied, so a flood of addresses cannot grow it.
/// Lives for the process, across policy reloads.
/// </summary>
public sealed class FailureThrottle(TimeProvider time)
{
    public const int MaxAddresses = 100_000;

    private readonly ConcurrentDictionary<IPAddress, Window> _windows = new();

    /// <summary>Whether <paramref name="address"/> has used up its failures in the current window.</summary>
    public bool IsBlocked(IPAddress? address, FailureThrottleSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return address is not null && _windows.TryGetValue(address, out var window)
            && time.GetElapsedTime(window.Start) < settings.Window && window.Count >= settings.MaxFailures;
    }

    /// <summary>Counts one invalid credential from <paramref name="address"/>.</summary>
    public void Failed(IPAddress? address, FailureThrottleSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (address is null)
            return;
        if (_windows.Count >= MaxAddresses)
            _windows.Clear();
        var now = time.GetTimestamp();
        _windows.AddOrUpdate(address, static (_, now) => new Window(now, 1),
            (_, window, now) => time.GetElapsedTime(window.Start, now) < settings.Window ? window with { Count = window.Count + 1 } : new Window(now, 1), now);
    }

    private readonly record struct Window(long Start, int Count);
}
