using Legate.Gateway.Loading;
using Legate.Gateway.Render;

namespace Legate.Gateway.Commands;

/// <summary>
/// <c>legate render FILE -o DIR [--envoy-dir DIR] [--static]</c>: loads and checks the gateway file, renders every
/// output in memory, loads the services' files with their own loaders, and only then publishes (atomically, file by file).
/// </summary>
internal static class RenderCommand
{
    public const string Usage = "usage: legate render FILE -o DIR [--envoy-dir /etc/envoy] [--static]";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? file = null, output = null, envoyDir = "/etc/envoy";
        var isStatic = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-o" or "--output" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                case "--envoy-dir" when i + 1 < args.Length:
                    envoyDir = args[++i];
                    break;
                case "--static":
                    isStatic = true;
                    break;
                case var a when !a.StartsWith('-') && file is null:
                    file = a;
                    break;
                default:
                    stderr.WriteLine($"legate render: unexpected argument '{args[i]}'");
                    stderr.WriteLine(Usage);
                    return Cli.Usage;
            }
        }
        if (file is null || output is null || !envoyDir.StartsWith('/'))
        {
            stderr.WriteLine(file is not null && output is not null ? "legate render: --envoy-dir must be an absolute path" : Usage);
            return Cli.Usage;
        }

        try
        {
            var config = GatewayLoader.Load(file);
            GatewayLint.Print(config, file, stderr);
            var result = GatewayRenderer.Render(config, new RenderOptions(envoyDir, isStatic));
            SelfCheck.Run(config, result);
            OutputWriter.Write(output, result.Files);
            stdout.Write(result[GatewayRenderer.SummaryFile].Text);
            return Cli.Ok;
        }
        catch (GatewayFileException e)
        {
            foreach (var error in e.Errors)
                stderr.WriteLine(error.ToString());
            stderr.WriteLine($"{file}: {e.Errors.Count} error(s); nothing was written");
            return Cli.Invalid;
        }
        catch (IOException e)
        {
            stderr.WriteLine($"legate render: cannot write to {output}: {e.Message}");
            return Cli.Invalid;
        }
        catch (UnauthorizedAccessException e)
        {
            stderr.WriteLine($"legate render: cannot write to {output}: {e.Message}");
            return Cli.Invalid;
        }
    }
}
