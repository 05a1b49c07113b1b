using System.Collections.Frozen;
using System.Globalization;
using Legate.Hosting.Rules;
using YamlDotNet.RepresentationModel;

namespace Legate.Hosting.Tests.Rules;

/// <summary>A small rules type for the tests: <c>name: positive number</c> pairs across one or more files.</summary>
internal sealed record Limits(FrozenDictionary<string, int> Values);

internal sealed class LimitsLoader : IRulesLoader<Limits>
{
    public Limits Load(RulesFiles files)
    {
        var values = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var file in files.Files)
        {
            var stream = YamlRules.Parse(file);
            if (stream.Documents.Count == 0)
                continue;
            if (stream.Documents[0].RootNode is not YamlMappingNode map)
                throw YamlRules.Error(file, stream.Documents[0].RootNode, "", "expected a mapping of names to limits");
            foreach (var (keyNode, valueNode) in map.Children)
            {
                var key = ((YamlScalarNode)keyNode).Value ?? "";
                if (valueNode is not YamlScalarNode { Value: { } text } || !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var limit) || limit <= 0)
                    throw YamlRules.Error(file, valueNode, key, "must be a positive whole number");
                if (!values.TryAdd(key, limit))
                    throw YamlRules.Error(file, keyNode, key, "is defined in more than one file");
            }
        }
        return new Limits(values.ToFrozenDictionary(StringComparer.Ordinal));
    }
}
