using System.Collections.Frozen;
using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Legate.Hosting.Rules;

/// <summary>
/// Typed reads of parsed YAML nodes for loaders that validate field by field (authz policies, the gateway file):
/// strict key sets, scalars, lists, durations. Every failure is a <see cref="RulesException"/> naming the file, the
/// node's line and column, and the field path the caller passes (<c>tenants.acme.hosts</c>).
/// YAML 1.2 core-schema meanings: <c>true</c>/<c>false</c> only, <c>~</c>/<c>null</c>/empty are null. The ratelimit
/// loader does not use these: it reproduces go-yaml v2's YAML 1.1 reading for compatibility with envoyproxy/ratelimit.
/// </summary>
public static class YamlNodes
{
    /// <summary>True for a plain null scalar: empty, <c>~</c> or <c>null</c>.</summary>
    public static bool IsNull(YamlNode node)
        => node is YamlScalarNode { Value: null or "" or "~" or "null", Style: ScalarStyle.Plain or ScalarStyle.Any };

    /// <summary>A mapping key as text; keys must be non-empty strings.</summary>
    public static string Key(RulesFile file, YamlNode key, string path)
        => key is YamlScalarNode { Value: { Length: > 0 } k } ? k : throw YamlRules.Error(file, key, path, "a key must be a non-empty string");

    /// <summary>The value of <paramref name="name"/> in <paramref name="node"/>, or null when absent.</summary>
    public static YamlNode? Field(YamlMappingNode node, string name)
    {
        ArgumentNullException.ThrowIfNull(node);
        foreach (var (k, v) in node.Children)
        {
            if (k is YamlScalarNode { Value: { } key } && key == name)
                return v;
        }
        return null;
    }

    /// <summary>Rejects keys outside <paramref name="fields"/>, listing the expected ones.</summary>
    public static void CheckFields(RulesFile file, YamlMappingNode node, string path, FrozenSet<string> fields)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(fields);
        foreach (var key in node.Children.Keys)
        {
            var name = Key(file, key, path);
            if (!fields.Contains(name))
                throw YamlRules.Error(file, key, Join(path, name), $"unknown field (expected one of {string.Join(", ", fields.Order(StringComparer.Ordinal))})");
        }
    }

    /// <summary>A mapping, or an error saying what was expected.</summary>
    public static YamlMappingNode Mapping(RulesFile file, YamlNode node, string path, string what = "is a mapping")
        => node as YamlMappingNode ?? throw YamlRules.Error(file, node, path, what);

    /// <summary>The entries of a <c>name → settings</c> mapping (null = none); each value must be a mapping.</summary>
    public static IEnumerable<(string Name, YamlMappingNode Node, YamlNode Key)> NamedMaps(RulesFile file, YamlNode value, string path)
    {
        if (IsNull(value))
            yield break;
        if (value is not YamlMappingNode map)
            throw YamlRules.Error(file, value, path, "is a mapping of name → settings");
        foreach (var (k, v) in map.Children)
        {
            var name = Key(file, k, path);
            if (v is not YamlMappingNode m)
                throw YamlRules.Error(file, v, Join(path, name), "is a mapping");
            yield return (name, m, k);
        }
    }

    /// <summary>The items of a list (null = empty).</summary>
    public static IReadOnlyList<YamlNode> Sequence(RulesFile file, YamlNode node, string path)
    {
        if (IsNull(node))
            return [];
        return node is YamlSequenceNode seq ? seq.Children.ToArray() : throw YamlRules.Error(file, node, path, "is a list");
    }

    /// <summary>A scalar's text (quoted or plain).</summary>
    public static string Scalar(RulesFile file, YamlNode node, string path)
        => node is YamlScalarNode { Value: { } v } ? v : throw YamlRules.Error(file, node, path, "is a single value");

    /// <summary>A non-empty string.</summary>
    public static string NonEmpty(RulesFile file, YamlNode node, string path)
        => Scalar(file, node, path) is { Length: > 0 } v ? v : throw YamlRules.Error(file, node, path, "must not be empty");

    /// <summary>A list of non-empty strings; a single string counts as a list of one.</summary>
    public static List<(string Value, YamlNode Node)> Strings(RulesFile file, YamlNode node, string path)
    {
        var list = new List<(string, YamlNode)>();
        if (node is YamlScalarNode { Value: { Length: > 0 } single } && !IsNull(node))
        {
            list.Add((single, node));
            return list;
        }
        if (node is not YamlSequenceNode seq)
            throw YamlRules.Error(file, node, path, "is a list of strings");
        foreach (var item in seq)
        {
            if (item is not YamlScalarNode { Value: { Length: > 0 } v })
                throw YamlRules.Error(file, item, path, "an item is not a non-empty string");
            list.Add((v, item));
        }
        return list;
    }

    /// <summary><c>true</c> or <c>false</c>, nothing else (no YAML 1.1 <c>yes</c>/<c>on</c>).</summary>
    public static bool Bool(RulesFile file, YamlNode node, string path) => Scalar(file, node, path) switch
    {
        "true" => true,
        "false" => false,
        _ => throw YamlRules.Error(file, node, path, "is true or false"),
    };

    /// <summary>An integer within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static long WholeNumber(RulesFile file, YamlNode node, string path, long min = long.MinValue, long max = long.MaxValue)
    {
        var text = Scalar(file, node, path);
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            throw YamlRules.Error(file, node, path, $"'{text}' is not a whole number");
        if (value < min || value > max)
            throw YamlRules.Error(file, node, path, max == long.MaxValue ? $"must be at least {min}" : $"must be between {min} and {max}");
        return value;
    }

    /// <summary>A duration written as a whole number and a unit: <c>250ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>.</summary>
    public static TimeSpan Duration(RulesFile file, YamlNode node, string path)
    {
        var text = Scalar(file, node, path);
        if (TryParseDuration(text, out var value))
            return value;
        throw YamlRules.Error(file, node, path, $"'{text}' is not a duration (e.g. 250ms, 30s, 5m, 1h)");
    }

    /// <summary>Parses <c>250ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>.</summary>
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        ArgumentNullException.ThrowIfNull(text);
        value = default;
        var (number, unit) = text.EndsWith("ms", StringComparison.Ordinal) ? (text[..^2], "ms")
            : text.Length > 1 ? (text[..^1], text[^1..]) : ("", "");
        if (number.Length == 0 || !int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return false;
        switch (unit)
        {
            case "ms": value = TimeSpan.FromMilliseconds(n); return true;
            case "s": value = TimeSpan.FromSeconds(n); return true;
            case "m": value = TimeSpan.FromMinutes(n); return true;
            case "h": value = TimeSpan.FromHours(n); return true;
            default: return false;
        }
    }

    /// <summary>A path written in a file, resolved against that file's folder.</summary>
    public static string RelativeTo(RulesFile file, string path)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Path.GetFullPath(path, Path.GetDirectoryName(Path.GetFullPath(file.Path)) ?? Directory.GetCurrentDirectory());
    }

    /// <summary>A field path: <c>Join("tenants", "acme")</c> is <c>tenants.acme</c>; an empty parent gives the name alone.</summary>
    public static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";
}
