using System.Reflection;

namespace Legate.Gateway;

/// <summary>The <c>legate</c> command line. Exit codes: 0 success, 1 invalid input, 2 usage error.</summary>
internal static class Cli
{
    public const int Ok = 0;
    public const int Invalid = 1;
    public const int Usage = 2;

    private static readonly string Help = $"""
        legate: turns one gateway file into Envoy's configuration and the Legate services' configuration.

        Usage:
          legate validate FILE          check a gateway file; every error names file:line:column
          legate render FILE -o DIR     write Envoy's bootstrap and the authz/ratelimit configs to DIR
                [--envoy-dir DIR]           where Envoy will see OUT/envoy (default /etc/envoy)
                [--static]                  listeners and clusters inside envoy.yaml instead of LDS/CDS files
        {Import.ImportCommand.Help}
        {Keys.KeysCommand.Help}
          legate up [FILE]              render FILE (default: a bundled sample) and run authz, ratelimit and
                [-o DIR]                    statsink on 127.0.0.1 until Ctrl+C; prints the command that starts Envoy
                [--free-ports]              (rendered to DIR, default $TMPDIR/legate-up; free ports, not 9001-9013, 9080)
          legate version                print the version
          legate help                   print this text
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        switch (args)
        {
            case [] or ["help" or "--help" or "-h"]:
                stdout.WriteLine(Help);
                return args.Length == 0 ? Usage : Ok;
            case ["keys", ..]:
                return Keys.KeysCommand.Run(args[1..], stdout, stderr, TimeProvider.System);
            case ["version" or "--version"]:
                stdout.WriteLine($"legate {Version}");
                return Ok;
            case ["validate", ..]:
                return Commands.ValidateCommand.Run(args[1..], stdout, stderr);
            case ["render", ..]:
                return Commands.RenderCommand.Run(args[1..], stdout, stderr);
            case ["import", ..]:
                return Import.ImportCommand.Run(args[1..], stdout, stderr);
            case ["up", ..]:
                return Up.UpCommand.Run(args[1..], stdout, stderr);
            default:
                stderr.WriteLine($"legate: unknown command '{string.Join(' ', args)}'. Run 'legate help'.");
                return Usage;
        }
    }

    private static string Version =>
        typeof(Cli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
}
