using Microsoft.Extensions.Time.Testing;

namespace Legate.Hosting.Tests;

public sealed class EventThrottleTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void FirstEvent_Reports_ThenOnePerInterval_WithTheEventsSinceTheLastReport()
    {
        var throttle = new EventThrottle(_time, TimeSpan.FromSeconds(10));

        Assert.True(throttle.TryReport(out var first));
        Assert.Equal(1, first);
        for (var i = 0; i < 5; i++)
            Assert.False(throttle.TryReport(out _));
        _time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.False(throttle.TryReport(out _));
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(throttle.TryReport(out var second));
        Assert.Equal(7, second); // the six held back and this one
        Assert.False(throttle.TryReport(out _));
    }

    [Fact]
    public async Task ConcurrentEvents_AreAllCounted_AndOnlyOneReportsPerInterval()
    {
        var throttle = new EventThrottle(_time, TimeSpan.FromSeconds(10));
        var reports = 0;
        long reported = 0;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 10_000; i++)
            {
                if (throttle.TryReport(out var count))
                {
                    Interlocked.Increment(ref reports);
                    Interlocked.Add(ref reported, count);
                }
            }
        }, TestContext.Current.CancellationToken)));

        Assert.Equal(1, reports);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(throttle.TryReport(out var rest));
        Assert.Equal(40_001, reported + rest);
    }
}
