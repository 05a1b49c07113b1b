using Xunit;

namespace Legate.Testing;

/// <summary>
/// The check every log line throttled by <c>EventThrottle</c> (one line per 10 s, with a count) gets: 50 failures write
/// one line that counts 1; 10 more within the interval write nothing; one after it writes a second line that counts
/// the 60 since the first line's event.
/// </summary>
public static class ThrottledLogAssert
{
    /// <param name="fail">Causes that many failures, each of which the service would log without the throttle.</param>
    /// <param name="advance">Moves the service's fake clock.</param>
    /// <param name="lines">The messages of the throttled event so far, oldest first.</param>
    /// <param name="counted">What a line holding a count says, e.g. <c>n =&gt; $"{n} lookup(s) refused"</c>.</param>
    public static async Task OncePerTenSecondsAsync(Func<int, Task> fail, Action<TimeSpan> advance, Func<IReadOnlyList<string>> lines, Func<long, string> counted)
    {
        ArgumentNullException.ThrowIfNull(fail);
        ArgumentNullException.ThrowIfNull(advance);
        ArgumentNullException.ThrowIfNull(lines);
        ArgumentNullException.ThrowIfNull(counted);

        await fail(50);
        Assert.Contains(counted(1), Assert.Single(lines()), StringComparison.Ordinal);

        advance(TimeSpan.FromSeconds(9));
        await fail(10);
        Assert.Single(lines());

        advance(TimeSpan.FromSeconds(1));
        await fail(1);
        Assert.Equal(2, lines().Count);
        Assert.Contains(counted(60), lines()[1], StringComparison.Ordinal); // the 49 and 10 not logged, and this one
    }
}
