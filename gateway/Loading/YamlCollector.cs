using System.Collections.Frozen;
using Legate.Hosting.Rules;
using YamlDotNet.RepresentationModel;
using static Legate.Hosting.Rules.YamlNodes;

namespace Legate.Gateway.Loading;

/// <summary>
/// Field-by-field reads of a parsed gateway file on top of <see cref="YamlNodes"/>, collecting every error instead of
/// stopping at the first: each read that fails records a <see cref="GatewayError"/> and answers null, so the loader
/// goes on and <c>legate validate</c> can show all mistakes at once.
/// </summary>
internal sealed class YamlCollector(RulesFile file)
{
    private readonly List<GatewayError> _errors = [];

    public RulesFile File { get; } = file;

    public IReadOnlyList<GatewayError> Errors => _errors;

    public void Add(YamlNode? node, string field, string problem, string? hint = null)
        => _errors.Add(new GatewayError(File.Path, node is null ? null : (int)node.Start.Line, node is null ? null : (int)node.Start.Column, field, problem,
            hint ?? SectionHint(field)));

    public void Add(RulesException e, string? hint = null)
    {
        ArgumentNullException.ThrowIfNull(e);
        _errors.Add(new GatewayError(e.File, e.Line, e.Column, e.Field ?? "", e.Problem, hint ?? SectionHint(e.Field ?? "")));
    }

    /// <summary>Where the field is documented, when there is nothing more specific to say.</summary>
    private static string SectionHint(string field)
    {
        var section = field.Split('.', '[')[0];
        return section.Length == 0 ? "see docs/gateway-file.md" : $"see '{section}' in docs/gateway-file.md";
    }

    /// <summary>Runs one YamlNodes read; a failure is recorded and answers default.</summary>
    public T? Try<T>(Func<T> read, string? hint = null)
    {
        ArgumentNullException.ThrowIfNull(read);
        try
        {
            return read();
        }
        catch (RulesException e)
        {
            Add(e, hint);
            return default;
        }
    }

    /// <summary>Every key outside <paramref name="fields"/> is an error (all of them, each with a did-you-mean hint).</summary>
    public void CheckFields(YamlMappingNode node, string path, FrozenSet<string> fields)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(fields);
        foreach (var key in node.Children.Keys)
        {
            var name = Try(() => Key(File, key, path));
            if (name is null || fields.Contains(name))
                continue;
            var near = Nearest(name, fields);
            Add(key, Join(path, name), "unknown field",
                near is null ? $"expected one of {string.Join(", ", fields.Order(StringComparer.Ordinal))}" : $"did you mean '{near}'?");
        }
    }

    /// <summary>A mapping, or null (with an error) when the node is something else; a null node stays null.</summary>
    public YamlMappingNode? Mapping(YamlNode? node, string path, string what = "is a mapping")
    {
        if (node is null || IsNull(node))
            return null;
        if (node is YamlMappingNode map)
            return map;
        Add(node, path, what);
        return null;
    }

    /// <summary>The entries of a <c>name → settings</c> mapping; bad entries are recorded and skipped.</summary>
    public IEnumerable<(string Name, YamlMappingNode Node, YamlNode Key)> NamedMaps(YamlNode? value, string path)
    {
        if (value is null || IsNull(value))
            yield break;
        if (value is not YamlMappingNode map)
        {
            Add(value, path, "is a mapping of name → settings");
            yield break;
        }
        foreach (var (k, v) in map.Children)
        {
            var name = Try(() => Key(File, k, path));
            if (name is null)
                continue;
            if (v is not YamlMappingNode m)
            {
                if (IsNull(v))
                    yield return (name, new YamlMappingNode(), k);
                else
                    Add(v, Join(path, name), "is a mapping");
                continue;
            }
            yield return (name, m, k);
        }
    }

    public IReadOnlyList<YamlNode> Sequence(YamlNode? node, string path)
        => node is null ? [] : Try(() => YamlNodes.Sequence(File, node, path), "a list: one '- item' a line, or [a, b]") ?? [];

    public string? String(YamlMappingNode node, string name, string path)
        => Field(node, name) is { } v && !IsNull(v) ? Try(() => NonEmpty(File, v, Join(path, name)), "one text value") : null;

    public List<(string Value, YamlNode Node)> Strings(YamlMappingNode node, string name, string path)
        => Field(node, name) is { } v && !IsNull(v) ? Try(() => YamlNodes.Strings(File, v, Join(path, name)), "a list of text values, e.g. [a, b]") ?? [] : [];

    public bool? Bool(YamlMappingNode node, string name, string path)
        => Field(node, name) is { } v && !IsNull(v) ? Try(() => (bool?)YamlNodes.Bool(File, v, Join(path, name)), "true or false") : null;

    public long? Number(YamlMappingNode node, string name, string path, long min, long max = long.MaxValue)
        => Field(node, name) is { } v && !IsNull(v)
            ? Try(() => (long?)WholeNumber(File, v, Join(path, name), min, max), max == long.MaxValue ? $"a whole number, at least {min}" : $"a whole number from {min} to {max}")
            : null;

    public TimeSpan? Duration(YamlMappingNode node, string name, string path, TimeSpan? atLeast = null)
    {
        if (Field(node, name) is not { } v || IsNull(v))
            return null;
        var value = Try(() => (TimeSpan?)YamlNodes.Duration(File, v, Join(path, name)), "a whole number and a unit (ms, s, m, h), without a space: 250ms, 30s");
        if (value is { } d && atLeast is { } min && d < min)
        {
            Add(v, Join(path, name), $"must be at least {(min.TotalSeconds >= 1 ? $"{min.TotalSeconds}s" : $"{min.TotalMilliseconds}ms")}", "a longer duration");
            return null;
        }
        return value;
    }

    /// <summary>The closest name by edit distance, when close enough to be a likely typo.</summary>
    public static string? Nearest(string name, IEnumerable<string> candidates)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(candidates);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates.Order(StringComparer.Ordinal))
        {
            var d = Distance(name, candidate);
            if (d < bestDistance)
                (best, bestDistance) = (candidate, d);
        }
        return bestDistance <= Math.Max(1, name.Length / 3) ? best : null;
    }

    /// <summary>Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1.</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
            d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++)
            d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}
