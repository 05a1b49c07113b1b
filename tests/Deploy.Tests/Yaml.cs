using YamlDotNet.RepresentationModel;

namespace Legate.Deploy.Tests;

/// <summary>Small helpers to walk parsed YAML (compose output, Helm manifests, Envoy config) in assertions.</summary>
internal static class Yaml
{
    public static YamlMappingNode Parse(string text) => ParseAll(text).Single();

    /// <summary>Every non-empty document of a multi-document stream (what <c>helm template</c> prints).</summary>
    public static IReadOnlyList<YamlMappingNode> ParseAll(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return [.. stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>()];
    }

    public static YamlMappingNode Load(string path) => Parse(File.ReadAllText(path));

    /// <summary>The node at a path of mapping keys, or null.</summary>
    public static YamlNode? At(this YamlNode node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next))
                return null;
            current = next;
        }
        return current;
    }

    public static YamlMappingNode Map(this YamlNode node, params string[] path) =>
        node.At(path) as YamlMappingNode ?? throw new KeyNotFoundException($"no mapping at {string.Join('.', path)}");

    public static string? Str(this YamlNode node, params string[] path) => (node.At(path) as YamlScalarNode)?.Value;

    public static IReadOnlyList<YamlNode> Seq(this YamlNode node, params string[] path) =>
        node.At(path) is YamlSequenceNode seq ? [.. seq.Children] : [];

    public static IReadOnlyList<string> Strs(this YamlNode node, params string[] path) =>
        [.. node.Seq(path).OfType<YamlScalarNode>().Select(s => s.Value!)];

    public static IEnumerable<(string Key, YamlNode Value)> Entries(this YamlNode node, params string[] path) =>
        node.At(path) is YamlMappingNode map ? map.Children.Select(c => (((YamlScalarNode)c.Key).Value!, c.Value)) : [];
}
