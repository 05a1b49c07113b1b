using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Xunit;

namespace Legate.Hosting.Tests;

public sealed class JsonLogFormatterTests
{
    // Logging:Console:FormatterOptions:IncludeScopes turns on the scopes (ASP.NET Core's RequestId, TraceId ...) in
    // .NET's JSON formatter; the formatter that replaced it must honour it too, with .NET's "Scopes" array.
    [Fact]
    public void IncludeScopes_WritesTheScopes_AsDotNetsJsonFormatterDoes()
    {
        using var services = new ServiceCollection()
            .Configure<ConsoleFormatterOptions>(o => o.IncludeScopes = true)
            .BuildServiceProvider();
        var formatter = ActivatorUtilities.CreateInstance<JsonLogFormatter>(services);
        var scopes = new LoggerExternalScopeProvider();
        using var _ = scopes.Push(new Dictionary<string, object?> { ["RequestId"] = "r-1" });
        using var __ = scopes.Push("plain scope");

        var root = Write(formatter, scopes);

        var written = root.GetProperty("Scopes").EnumerateArray().ToList();
        Assert.Equal(2, written.Count);
        Assert.Equal("r-1", written[0].GetProperty("RequestId").GetString());
        Assert.Equal("plain scope", written[1].GetString());
        Assert.Equal("Started", root.GetProperty("EventName").GetString());
    }

    [Fact]
    public void WithoutIncludeScopes_NoScopesAreWritten()
    {
        using var services = new ServiceCollection().AddOptions().BuildServiceProvider();
        var formatter = ActivatorUtilities.CreateInstance<JsonLogFormatter>(services);
        var scopes = new LoggerExternalScopeProvider();
        using var _ = scopes.Push("plain scope");

        Assert.False(Write(formatter, scopes).TryGetProperty("Scopes", out var _));
    }

    private static JsonElement Write(JsonLogFormatter formatter, IExternalScopeProvider scopes)
    {
        using var output = new StringWriter();
        var entry = new LogEntry<string>(LogLevel.Information, "Test", new EventId(7, "Started"), "line\none", null, (s, _) => s);
        formatter.Write(entry, scopes, output);
        var text = output.ToString();
        Assert.Single(text.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
