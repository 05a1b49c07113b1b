using Legate.Testing;

namespace Legate.Authz.Tests;

public sealed class LogEventIdTests
{
    [Fact]
    public void EveryLogEvent_HasItsOwnIdAndName() => LogEventIds.AssertUniqueIn(typeof(Legate.Authz.Policies.AuthorizationDecider).Assembly, typeof(Legate.Hosting.Rules.RulesException).Assembly);
}
