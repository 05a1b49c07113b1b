using Legate.Gateway.Loading;
using Legate.Hosting.Rules;

namespace Legate.Gateway.Import;

/// <summary>
/// <c>legate import FILE... [-o gateway.yaml]</c>: Ingress, HTTPRoute and GRPCRoute manifests to a gateway file, on stdout or in a
/// file. What cannot be carried over is listed on stderr (file:line:column and field); exit 0 with such a list, since
/// the file is still valid. The output is checked like <c>legate validate</c> before it is written.
/// </summary>
internal static class ImportCommand
{
    public const string Usage = "usage: legate import FILE... [-o gateway.yaml]   (FILE - reads stdin)";

    public const string Help = """
          legate import FILE... [-o OUT]
                                        Kubernetes Ingress (networking.k8s.io/v1) and Gateway API HTTPRoute and GRPCRoute
                                        manifests to a gateway file (stdout without -o); what cannot be mapped is listed on stderr
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader? stdin = null)
    {
        var inputs = new List<string>();
        string? output = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-o" or "--output" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                case var a when a == "-" || !a.StartsWith('-'):
                    inputs.Add(a);
                    break;
                default:
                    stderr.WriteLine($"legate import: unexpected argument '{args[i]}'");
                    stderr.WriteLine(Usage);
                    return Cli.Usage;
            }
        }
        if (inputs.Count == 0)
        {
            stderr.WriteLine(Usage);
            return Cli.Usage;
        }
        var files = new List<RulesFile>();
        foreach (var input in inputs)
        {
            try
            {
                files.Add(new RulesFile(input == "-" ? "<stdin>" : input, input == "-" ? (stdin ?? Console.In).ReadToEnd() : File.ReadAllText(input)));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"{input}: {(e is FileNotFoundException or DirectoryNotFoundException ? "no such file" : e.Message)}");
                return Cli.Invalid;
            }
        }

        ImportResult result;
        try
        {
            result = ManifestImporter.Import(files);
        }
        catch (GatewayFileException e)
        {
            foreach (var error in e.Errors)
                stderr.WriteLine(error.ToString());
            return Cli.Invalid;
        }
        foreach (var item in result.Unmapped)
            stderr.WriteLine(item.ToString());
        if (result.Routes == 0)
        {
            stderr.WriteLine("legate import: no route could be imported (a gateway file needs at least one)");
            return Cli.Invalid;
        }

        // The output must be a file `legate validate` accepts: load it, render it and run the self-checks, as validate does.
        try
        {
            var config = GatewayLoader.Load(new RulesFile(output ?? "<import>", result.Yaml));
            Render.SelfCheck.Run(config, Render.GatewayRenderer.Render(config, new Render.RenderOptions()));
        }
        catch (GatewayFileException e)
        {
            foreach (var error in e.Errors)
                stderr.WriteLine(error.ToString());
            stderr.WriteLine("legate import: the generated gateway file does not validate (a bug in legate import); nothing written");
            return Cli.Invalid;
        }

        if (output is null)
        {
            stdout.Write(result.Yaml);
        }
        else
        {
            var temp = output + ".tmp";
            File.WriteAllText(temp, result.Yaml);
            File.Move(temp, output, overwrite: true);
        }
        var summary = $"legate import: {result.Routes} route(s), {result.Backends} backend(s){(output is null ? "" : $" written to {output}")}";
        stderr.WriteLine(result.Unmapped.Count == 0 ? summary : $"{summary}; {result.Unmapped.Count} thing(s) not imported, listed above");
        return Cli.Ok;
    }
}
