using Legate.Gateway.Loading;

namespace Legate.Gateway.Commands;

/// <summary><c>legate validate FILE</c>: every error of a gateway file at once, on stderr; exit 1 when there is any.</summary>
internal static class ValidateCommand
{
    public const string Usage = "usage: legate validate FILE";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args is not [var path] || path.StartsWith('-'))
        {
            stderr.WriteLine(Usage);
            return Cli.Usage;
        }
        try
        {
            var config = GatewayLoader.Load(path);
            GatewayLint.Print(config, path, stderr);
            // The generated files are loaded with the services' own loaders too: what they refuse is an error here.
            var rendered = Render.GatewayRenderer.Render(config, new Render.RenderOptions());
            Render.SelfCheck.Run(config, rendered);
            stdout.WriteLine($"{path}: OK ({Render.Summary.OneLine(config)})");
            return Cli.Ok;
        }
        catch (GatewayFileException e)
        {
            foreach (var error in e.Errors)
                stderr.WriteLine(error.ToString());
            stderr.WriteLine($"{path}: {e.Errors.Count} error(s)");
            return Cli.Invalid;
        }
    }
}
