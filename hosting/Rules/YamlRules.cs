using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Legate.Hosting.Rules;

/// <summary>
/// Reads YAML rules files, turning YamlDotNet's errors into <see cref="RulesException"/>s that name file, line and column.
/// Every read goes through <see cref="YamlGuard"/>: alias cycles, forward aliases, alias expansion beyond
/// <see cref="YamlGuard.MaxAliasedNodes"/> nodes and nesting beyond <see cref="YamlGuard.MaxDepth"/> levels are errors.
/// </summary>
public static class YamlRules
{
    private static readonly IDeserializer Deserializer = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .WithDuplicateKeyChecking()
        .Build();

    /// <summary>Deserializes a file with snake_case keys into <typeparamref name="T"/>; unknown keys are errors.</summary>
    public static T Deserialize<T>(RulesFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        try
        {
            using var reader = new StringReader(file.Text);
            return Deserializer.Deserialize<T>(Guarded(reader))
                ?? throw new RulesException(file.Path, 1, 1, null, "the file is empty");
        }
        catch (YamlException e)
        {
            throw ToRulesException(file.Path, e);
        }
    }

    /// <summary>
    /// Parses a file into YAML nodes that keep their line and column, for loaders that validate field by field.
    /// The node graph has no cycles (an alias is the node it names, so it can be reached twice, but never from itself).
    /// </summary>
    public static YamlStream Parse(RulesFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var stream = new YamlStream();
        try
        {
            using var reader = new StringReader(file.Text);
            stream.Load(Guarded(reader));
        }
        catch (YamlException e)
        {
            throw ToRulesException(file.Path, e);
        }
        return stream;
    }

    // Every rules file is read through the guard, so no loader sees an alias cycle, an alias bomb or runaway nesting.
    private static YamlGuard Guarded(TextReader reader) => new(new Parser(reader));

    /// <summary>An error at a node of a parsed file.</summary>
    public static RulesException Error(RulesFile file, YamlNode? node, string field, string problem)
    {
        ArgumentNullException.ThrowIfNull(file);
        return node is null
            ? new RulesException(file.Path, null, null, field, problem)
            : new RulesException(file.Path, (int)node.Start.Line, (int)node.Start.Column, field, problem);
    }

    private static RulesException ToRulesException(string path, YamlException e)
    {
        // The innermost exception says what is wrong; the outer ones say where YamlDotNet was when it gave up.
        var inner = e;
        while (inner.InnerException is YamlException deeper)
            inner = deeper;
        var message = inner.Message;
        var prefixEnd = message.IndexOf("): ", StringComparison.Ordinal);
        if (message.StartsWith("(Line:", StringComparison.Ordinal) && prefixEnd > 0)
            message = message[(prefixEnd + 3)..];
        return new RulesException(path, (int)inner.Start.Line, (int)inner.Start.Column, null, message);
    }
}
