using Legate.Testing;

namespace Legate.StatSink.Tests;

public sealed class LogEventIdTests
{
    [Fact]
    public void EveryLogEvent_HasItsOwnIdAndName() => LogEventIds.AssertUniqueIn(typeof(Legate.StatSink.StatSinkOptions).Assembly, typeof(Legate.Hosting.Rules.RulesException).Assembly);
}
