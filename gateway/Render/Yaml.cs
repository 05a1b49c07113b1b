using System.Globalization;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;

namespace Legate.Gateway.Render;

/// <summary>
/// Builds the generated files as ordered maps and lists and writes them as block YAML. Key order is the order of
/// insertion and nothing depends on the clock or the machine, so the same gateway file gives the same bytes. Strings
/// that YAML 1.1 or 1.2 would read as something else (<c>"600"</c>, <c>"on"</c>, <c>"*"</c>) are quoted, since both
/// Envoy and the go-yaml-compatible ratelimit loader read these files.
/// </summary>
internal static class Yaml
{
    private static readonly ISerializer Serializer = new SerializerBuilder()
        .WithQuotingNecessaryStrings(quoteYaml1_1Strings: true)
        .DisableAliases()
        .WithNewLine("\n")
        .WithIndentedSequences()
        .Build();

    /// <summary>An ordered mapping; entries whose value is null are left out.</summary>
    public static OrderedDictionary<string, object> Map(params (string Key, object? Value)[] entries)
    {
        var map = new OrderedDictionary<string, object>(StringComparer.Ordinal);
        foreach (var (key, value) in entries)
        {
            if (value is not null)
                map.Add(key, value);
        }
        return map;
    }

    public static string Serialize(object document) => Serializer.Serialize(document);

    /// <summary>An Envoy (protobuf JSON) duration: <c>0.25s</c>, <c>10s</c>.</summary>
    public static string Duration(TimeSpan value)
        => (value.Ticks % TimeSpan.TicksPerSecond == 0 ? ((long)value.TotalSeconds).ToString(CultureInfo.InvariantCulture)
            : value.TotalSeconds.ToString("0.#########", CultureInfo.InvariantCulture)) + "s";

    /// <summary>A parsed YAML node carried over as written (scalars stay text).</summary>
    public static object FromNode(YamlNode node) => node switch
    {
        YamlMappingNode map => map.Children.Aggregate(new OrderedDictionary<string, object>(StringComparer.Ordinal), (m, kv) =>
        {
            m[((YamlScalarNode)kv.Key).Value ?? ""] = FromNode(kv.Value);
            return m;
        }),
        YamlSequenceNode seq => seq.Children.Select(FromNode).ToList(),
        YamlScalarNode scalar => scalar.Value ?? "",
        _ => "",
    };
}
