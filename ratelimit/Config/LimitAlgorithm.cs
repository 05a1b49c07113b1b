namespace Legate.RateLimit.Config;

/// <summary>How hits are counted against a limit.</summary>
/// <remarks>
/// Legate extension: chosen per rule with <c>algorithm: fixed_window</c> or <c>algorithm: sliding_window</c> inside
/// <c>rate_limit</c>. envoyproxy/ratelimit has no such key and rejects it, so a config using it is Legate-only.
/// Without the key a rule uses <see cref="FixedWindow"/>, which behaves exactly like the reference.
/// </remarks>
public enum LimitAlgorithm
{
    /// <summary>
    /// Epoch-aligned fixed windows, one counter per window (the reference's behaviour). Default. Allows up to twice the
    /// limit across a window boundary.
    /// </summary>
    FixedWindow = 0,

    /// <summary>
    /// Legate extension: sliding window approximated from two fixed windows, the current count plus the previous
    /// window's count weighted by the share of it still inside the sliding window.
    /// </summary>
    SlidingWindow = 1,
}

/// <summary>Config names of <see cref="LimitAlgorithm"/>.</summary>
public static class LimitAlgorithmExtensions
{
    /// <summary>The config name: <c>fixed_window</c> or <c>sliding_window</c>.</summary>
    public static string ToConfigName(this LimitAlgorithm algorithm) =>
        algorithm == LimitAlgorithm.SlidingWindow ? "sliding_window" : "fixed_window";

    /// <summary>Parses a config name, case-insensitively.</summary>
    public static bool TryParse(string? text, out LimitAlgorithm algorithm)
    {
        if (string.Equals(text, "fixed_window", StringComparison.OrdinalIgnoreCase))
        {
            algorithm = LimitAlgorithm.FixedWindow;
            return true;
        }
        if (string.Equals(text, "sliding_window", StringComparison.OrdinalIgnoreCase))
        {
            algorithm = LimitAlgorithm.SlidingWindow;
            return true;
        }
        algorithm = LimitAlgorithm.FixedWindow;
        return false;
    }
}
