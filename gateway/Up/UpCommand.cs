using System.Runtime.InteropServices;
using Legate.Gateway.Loading;

namespace Legate.Gateway.Up;

/// <summary>
/// <c>legate up [FILE] [-o DIR] [--free-ports]</c>: renders the gateway file (default: the bundled sample) and runs
/// authz, ratelimit and statsink in this process on 127.0.0.1 until Ctrl+C or SIGTERM; prints the Envoy command.
/// </summary>
internal static class UpCommand
{
    public const string Usage = "usage: legate up [FILE] [-o DIR] [--free-ports]";

    /// <summary>Where the rendered files go unless <c>-o</c> says otherwise.</summary>
    public static string DefaultOutput => Path.Combine(Path.GetTempPath(), "legate-up");

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? file = null;
        var output = DefaultOutput;
        var freePorts = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-o" or "--output" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                case "--free-ports":
                    freePorts = true;
                    break;
                case var a when !a.StartsWith('-') && file is null:
                    file = a;
                    break;
                default:
                    stderr.WriteLine($"legate up: unexpected argument '{args[i]}'");
                    stderr.WriteLine(Usage);
                    return Cli.Usage;
            }
        }

        using var stop = new CancellationTokenSource();
        // Ctrl+C and SIGTERM stop all three services together (each drains first), then legate exits 0.
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        return RunAsync(file, output, freePorts, stdout, stderr, stop.Token).GetAwaiter().GetResult();

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
    }

    public static async Task<int> RunAsync(string? file, string output, bool freePorts, TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        LocalGateway gateway;
        try
        {
            gateway = await LocalGateway.StartAsync(file, output, freePorts, stop).ConfigureAwait(false);
        }
        catch (GatewayFileException e)
        {
            foreach (var error in e.Errors)
                stderr.WriteLine(error.ToString());
            stderr.WriteLine($"{file}: {e.Errors.Count} error(s); nothing was started");
            return Cli.Invalid;
        }
        catch (IOException e)
        {
            // Also a port already taken (Kestrel's AddressInUseException is an IOException).
            stderr.WriteLine($"legate up: {e.Message} (--free-ports lets the system choose the ports)");
            return Cli.Invalid;
        }
        catch (OperationCanceledException)
        {
            return Cli.Ok;
        }

        await using (gateway.ConfigureAwait(false))
        {
            stdout.Write(Describe(gateway, file));
            stdout.Flush();
            using var either = CancellationTokenSource.CreateLinkedTokenSource(stop, gateway.Stopping);
            try
            {
                await Task.Delay(Timeout.Infinite, either.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            stdout.WriteLine();
            stdout.WriteLine("Stopping (each service drains, then exits)...");
            stdout.Flush();
        }
        return stop.IsCancellationRequested ? Cli.Ok : Cli.Invalid;
    }

    /// <summary>What <c>legate up</c> prints once the services are ready.</summary>
    public static string Describe(LocalGateway gateway, string? file)
    {
        ArgumentNullException.ThrowIfNull(gateway);
        var text = new System.Text.StringBuilder();
        text.Append(gateway.Summary).AppendLine();
        text.AppendLine($"Legate is up: {file ?? "the bundled sample gateway file"} rendered to {gateway.OutputDir}");
        text.AppendLine("(embedded defaults: in-memory counters, file key store; no Redis, no Docker).");
        if (gateway.ServicesTlsDropped)
            text.AppendLine("services.tls is not used here: the services listen in plain h2c on 127.0.0.1, and Envoy calls them so.");
        text.AppendLine();
        text.AppendLine("  service     gRPC (Envoy calls this)   HTTP (/metrics, /healthz, /readyz)");
        foreach (var service in gateway.Services)
            text.AppendLine($"  {service.Name,-11} {service.Grpc.Authority,-25} {service.Http}");
        text.AppendLine();
        text.AppendLine("Start Envoy against the rendered configuration (in another terminal):");
        text.AppendLine($"  {gateway.EnvoyCommand}");
        if (gateway.Echo is { } echo)
        {
            text.AppendLine($"The sample's backend is an echo server at {echo.Address} that answers each request with what it");
            text.AppendLine("received, so through Envoy you see the identity headers authz adds. Give `legate up` your own gateway");
            text.AppendLine($"file to route to your services. The demo API key is in {Path.Combine(gateway.OutputDir, "sample", "keys.yaml")}.");
        }
        text.AppendLine();
        text.AppendLine("Press Ctrl+C to stop.");
        return text.ToString();
    }
}
