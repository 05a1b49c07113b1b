namespace Legate.Hosting.Rules;

/// <summary>
/// A rules file that cannot be used. The message names the file, the line and column when known, and the
/// field, so an operator can go straight to the mistake: <c>rules.yaml:12:7: descriptors[0].rate_limit.unit: unknown unit 'weekly'</c>.
/// </summary>
public sealed class RulesException : Exception
{
    public RulesException(string file, int? line, int? column, string? field, string problem)
        : base(Format(file, line, column, field, problem))
    {
        File = file;
        Line = line;
        Column = column;
        Field = field;
        Problem = problem;
    }

    public RulesException(string file, string problem, Exception inner)
        : base(Format(file, null, null, null, problem), inner)
    {
        File = file;
        Problem = problem;
    }

    private RulesException(string file, string problem, string message, Exception? inner)
        : base(message, inner)
    {
        File = file;
        Problem = problem;
    }

    /// <summary>
    /// A file or directory the operating system would not let us read: <c>cannot read /etc/legate/rules.yaml: permission denied</c>.
    /// Only a reason is kept from <paramref name="error"/>, not the exception: operators get a line, not a stack trace.
    /// </summary>
    /// <param name="exact">
    /// Whether <paramref name="path"/> is what failed to open, so the reason can be short. When not (a loader that
    /// opened another file), the reason is the system's message, which names that file.
    /// </param>
    public static RulesException CannotRead(string path, Exception error, bool exact = true)
    {
        ArgumentNullException.ThrowIfNull(error);
        var reason = (exact, error) switch
        {
            (true, UnauthorizedAccessException) => "permission denied",
            (true, FileNotFoundException or DirectoryNotFoundException) => "no such file or directory",
            _ => error.Message,
        };
        return new RulesException(path, "cannot read: " + reason, $"cannot read {path}: {reason}", null);
    }

    public RulesException()
        : this("(unknown file)", null, null, null, "invalid rules")
    {
    }

    public RulesException(string message)
        : this("(unknown file)", null, null, null, message)
    {
    }

    public RulesException(string message, Exception innerException)
        : this("(unknown file)", message, innerException)
    {
    }

    /// <summary>Path of the file at fault.</summary>
    public string File { get; }

    /// <summary>1-based line, when known.</summary>
    public int? Line { get; }

    /// <summary>1-based column, when known.</summary>
    public int? Column { get; }

    /// <summary>Path of the field at fault within the file, e.g. <c>descriptors[0].key</c>, when known.</summary>
    public string? Field { get; }

    /// <summary>What is wrong, without the location.</summary>
    public string Problem { get; }

    private static string Format(string file, int? line, int? column, string? field, string problem)
    {
        var location = line is { } l ? column is { } c ? $"{file}:{l}:{c}" : $"{file}:{l}" : file;
        return string.IsNullOrEmpty(field) ? $"{location}: {problem}" : $"{location}: {field}: {problem}";
    }
}
