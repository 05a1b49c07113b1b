using System.Reflection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace Legate.Testing;

/// <summary>Stable event names are the logs' contract: within one assembly, no two [LoggerMessage] share an id or a name.</summary>
public static class LogEventIds
{
    public static void AssertUniqueIn(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        var events = assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(m => (Method: $"{m.DeclaringType!.Name}.{m.Name}", Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(e => e.Attribute is not null)
            .ToList();

        Assert.NotEmpty(events);
        Assert.Empty(events.GroupBy(e => e.Attribute!.EventId).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => e.Method))}"));
        Assert.Empty(events.Where(e => e.Attribute!.EventName is { } name && events.Count(o => o.Attribute!.EventName == name) > 1).Select(e => e.Method));
    }
}
