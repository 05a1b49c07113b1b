using Legate.Testing;

namespace Legate.Hosting.Tests;

public sealed class LogEventIdTests
{
    [Fact]
    public void EveryLogEvent_HasItsOwnIdAndName() => LogEventIds.AssertUniqueIn(typeof(Legate.Hosting.Rules.RulesException).Assembly);
}
