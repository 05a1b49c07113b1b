namespace Legate.Gateway.Loading;

/// <summary>
/// One problem in a gateway file: where (file:line:column), which field, what is wrong and, when there is something
/// useful to say, how to fix it.
/// </summary>
internal sealed record GatewayError(string File, int? Line, int? Column, string Field, string Problem, string? Hint = null)
{
    public string Location => Line is { } l ? Column is { } c ? $"{File}:{l}:{c}" : $"{File}:{l}" : File;

    public override string ToString()
    {
        var head = Field.Length == 0 ? $"{Location}: {Problem}" : $"{Location}: {Field}: {Problem}";
        return Hint is null ? head : $"{head}\n    hint: {Hint}";
    }
}

/// <summary>A gateway file that cannot be used, with every error found in it.</summary>
internal sealed class GatewayFileException(IReadOnlyList<GatewayError> errors)
    : Exception(string.Join('\n', errors.Select(e => e.ToString())))
{
    public IReadOnlyList<GatewayError> Errors { get; } = errors;
}
