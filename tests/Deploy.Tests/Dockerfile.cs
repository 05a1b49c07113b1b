namespace Legate.Deploy.Tests;

/// <summary>A Dockerfile read into its build stages and instructions: enough to check it without a Docker engine.</summary>
internal sealed record Dockerfile(IReadOnlyList<DockerStage> Stages)
{
    public DockerStage Final => Stages[^1];

    public static Dockerfile Load(string path)
    {
        var stages = new List<DockerStage>();
        foreach (var line in LogicalLines(File.ReadAllLines(path)))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var keyword = (space < 0 ? line : line[..space]).ToUpperInvariant();
            var arguments = space < 0 ? "" : line[(space + 1)..].Trim();
            if (keyword == "FROM")
            {
                var parts = arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                stages.Add(new DockerStage(parts[0], parts.Length == 3 && parts[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? parts[2] : null, []));
                continue;
            }
            if (stages.Count == 0)
                throw new InvalidDataException($"{path}: '{keyword}' before the first FROM.");
            stages[^1].Instructions.Add(new DockerInstruction(keyword, arguments));
        }
        return new Dockerfile(stages);
    }

    /// <summary>Lines with comments and blank lines dropped and backslash continuations joined.</summary>
    private static IEnumerable<string> LogicalLines(IEnumerable<string> lines)
    {
        var current = "";
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.StartsWith('#') || line.Length == 0)
                continue;
            if (line.EndsWith('\\'))
            {
                current += line[..^1] + " ";
                continue;
            }
            yield return current + line;
            current = "";
        }
        if (current.Length > 0)
            yield return current;
    }
}

internal sealed record DockerStage(string Image, string? Name, List<DockerInstruction> Instructions)
{
    public IEnumerable<string> All(string keyword) =>
        Instructions.Where(i => i.Keyword == keyword).Select(i => i.Arguments);

    public string? Last(string keyword) => All(keyword).LastOrDefault();
}

internal sealed record DockerInstruction(string Keyword, string Arguments);
