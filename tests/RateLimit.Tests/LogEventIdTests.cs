using Legate.Testing;

namespace Legate.RateLimit.Tests;

public sealed class LogEventIdTests
{
    [Fact]
    public void EveryLogEvent_HasItsOwnIdAndName() => LogEventIds.AssertUniqueIn(typeof(Legate.RateLimit.RateLimiter).Assembly, typeof(Legate.Hosting.Rules.RulesException).Assembly);
}
