using System.Reflection;
using Microsoft.Extensions.Logging;
using Xunit;

namespace Legate.Testing;

/// <summary>
/// Stable event names and ids are the logs' contract: within one process (a service's assembly and the hosting
/// library it runs on), every [LoggerMessage] names its event, and no two share an id or a name.
/// </summary>
public static class LogEventIds
{
    public static void AssertUniqueIn(params Assembly[] assemblies)
    {
        ArgumentNullException.ThrowIfNull(assemblies);
        var events = assemblies.Distinct().SelectMany(a => a.GetTypes())
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Select(m => (Method: $"{m.DeclaringType!.Name}.{m.Name}", Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(e => e.Attribute is not null)
            .ToList();

        Assert.NotEmpty(events);
        // Without an EventName the generator names the event after the method, so renaming the method would rename it.
        Assert.Empty(events.Where(e => string.IsNullOrEmpty(e.Attribute!.EventName)).Select(e => $"{e.Method} has no EventName"));
        Assert.Empty(events.GroupBy(e => e.Attribute!.EventId).Where(g => g.Count() > 1).Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => e.Method))}"));
        Assert.Empty(events.Where(e => e.Attribute!.EventName is { } name && events.Count(o => o.Attribute!.EventName == name) > 1).Select(e => e.Method));
    }
}
