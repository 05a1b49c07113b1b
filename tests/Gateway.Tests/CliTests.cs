namespace Legate.Gateway.Tests;

public sealed class CliTests
{
    private static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = Cli.Run(args, stdout, stderr);
        return (exitCode, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Help_ListsTheCommands()
    {
        var (exitCode, stdout, _) = Run("help");

        Assert.Equal(Cli.Ok, exitCode);
        Assert.Contains("legate validate FILE", stdout, StringComparison.Ordinal);
        Assert.Contains("legate render FILE -o DIR", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void NoArguments_PrintsHelpAndIsAUsageError()
    {
        var (exitCode, stdout, _) = Run();

        Assert.Equal(Cli.Usage, exitCode);
        Assert.Contains("Usage:", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Version_PrintsTheVersion()
    {
        var (exitCode, stdout, _) = Run("version");

        Assert.Equal(Cli.Ok, exitCode);
        Assert.StartsWith("legate ", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownCommand_IsAUsageErrorNamingIt()
    {
        var (exitCode, _, stderr) = Run("deploy");

        Assert.Equal(Cli.Usage, exitCode);
        Assert.Contains("unknown command 'deploy'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_WithoutOutputFolder_IsAUsageError()
    {
        var (exitCode, _, stderr) = Run("render", "gateway.yaml");

        Assert.Equal(Cli.Usage, exitCode);
        Assert.Contains("usage: legate render FILE -o DIR", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_WithARelativeEnvoyDir_IsAUsageError()
    {
        var (exitCode, _, stderr) = Run("render", "gateway.yaml", "-o", "out", "--envoy-dir", "etc/envoy");

        Assert.Equal(Cli.Usage, exitCode);
        Assert.Contains("--envoy-dir must be an absolute path", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_WithoutAFile_IsAUsageError()
    {
        var (exitCode, _, stderr) = Run("validate");

        Assert.Equal(Cli.Usage, exitCode);
        Assert.Contains("usage: legate validate FILE", stderr, StringComparison.Ordinal);
    }
}
