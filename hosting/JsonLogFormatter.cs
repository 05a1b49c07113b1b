using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Legate.Hosting;

/// <summary>
/// The services' JSON log lines: the fields of .NET's JSON console formatter (<c>Timestamp</c> in UTC, <c>EventId</c>,
/// <c>LogLevel</c>, <c>Category</c>, <c>Message</c>, <c>Exception</c>, <c>State</c>) plus <c>EventName</c>, the stable
/// name the README uses for each event (<c>RulesReloadFailed</c>, <c>StartRefused</c>, ...), which .NET's formatter
/// leaves out: without it a line says only a number, the same number in different libraries. With
/// <c>Logging:Console:FormatterOptions:IncludeScopes</c> on, the scopes follow in a <c>Scopes</c> array, as .NET writes them.
/// </summary>
internal sealed class JsonLogFormatter(IOptionsMonitor<ConsoleFormatterOptions> options) : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "legate-json";

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (logEntry.Exception is null && message is null)
            return;
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("Timestamp", DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
            writer.WriteNumber("EventId", logEntry.EventId.Id);
            if (!string.IsNullOrEmpty(logEntry.EventId.Name))
                writer.WriteString("EventName", logEntry.EventId.Name);
            writer.WriteString("LogLevel", logEntry.LogLevel.ToString());
            writer.WriteString("Category", logEntry.Category);
            writer.WriteString("Message", message);
            if (logEntry.Exception is { } exception)
                writer.WriteString("Exception", exception.ToString());
            if (logEntry.State is IReadOnlyCollection<KeyValuePair<string, object?>> state)
            {
                writer.WriteStartObject("State");
                foreach (var (key, value) in state)
                    WriteValue(writer, key, value);
                writer.WriteEndObject();
            }
            if (scopeProvider is not null && options.CurrentValue.IncludeScopes)
                WriteScopes(writer, scopeProvider);
            writer.WriteEndObject();
        }
        textWriter.Write(Encoding.UTF8.GetString(buffer.WrittenSpan));
        textWriter.Write(Environment.NewLine);
    }

    // As .NET's formatter: a scope of values as an object (its text as Message), any other as its text.
    private static void WriteScopes(Utf8JsonWriter writer, IExternalScopeProvider scopeProvider)
    {
        writer.WriteStartArray("Scopes");
        scopeProvider.ForEachScope(static (scope, writer) =>
        {
            if (scope is IEnumerable<KeyValuePair<string, object?>> values)
            {
                writer.WriteStartObject();
                writer.WriteString("Message", scope.ToString());
                foreach (var (key, value) in values)
                    WriteValue(writer, key, value);
                writer.WriteEndObject();
            }
            else
            {
                writer.WriteStringValue(Convert.ToString(scope, CultureInfo.InvariantCulture));
            }
        }, writer);
        writer.WriteEndArray();
    }

    // As .NET's formatter: numbers and booleans as JSON values, everything else as its invariant text.
    private static void WriteValue(Utf8JsonWriter writer, string key, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNull(key);
                break;
            case bool b:
                writer.WriteBoolean(key, b);
                break;
            case byte or sbyte or short or ushort or int or uint or long:
                writer.WriteNumber(key, Convert.ToInt64(value, CultureInfo.InvariantCulture));
                break;
            case ulong u:
                writer.WriteNumber(key, u);
                break;
            case float or double or decimal:
                var d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsFinite(d))
                    writer.WriteNumber(key, d);
                else
                    writer.WriteString(key, d.ToString(CultureInfo.InvariantCulture));
                break;
            default:
                writer.WriteString(key, Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }
    }
}
