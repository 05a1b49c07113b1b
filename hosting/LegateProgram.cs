using System.Net.Sockets;
using System.Reflection;
using Legate.Hosting.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Legate.Hosting;

/// <summary>A Legate service's whole Program: the shared hosting, the service's own wiring and endpoints, and its run.</summary>
public static class LegateProgram
{
    /// <summary>
    /// Runs the service (or <c>--healthcheck</c>) and returns the process's exit code. A start refused for what it was
    /// given (bad rules, an invalid or unreadable option, a port already in use), at any step from reading the
    /// configuration to binding the ports, is one line naming the file, key or address, and exit code 1: not an
    /// unhandled-exception abort (134) whose stack trace buries that line. Anything else is a bug and still ends the
    /// process as one.
    /// </summary>
    /// <param name="args">The command line.</param>
    /// <param name="serviceName">Short name, e.g. <c>authz</c>.</param>
    /// <param name="grpcServiceName">The Envoy gRPC service it implements.</param>
    /// <param name="add">The service's wiring, e.g. <c>builder.AddAuthz()</c>.</param>
    /// <param name="map">The service's endpoints, e.g. <c>app.MapAuthz()</c>.</param>
    public static async Task<int> RunAsync(string[] args, string serviceName, string grpcServiceName, Action<WebApplicationBuilder> add, Action<WebApplication> map)
    {
        ArgumentNullException.ThrowIfNull(add);
        ArgumentNullException.ThrowIfNull(map);
        if (HealthProbe.IsRequested(args))
            return await HealthProbe.RunAsync(args).ConfigureAwait(false);

        ILogger? logger = null;
        LegateServerOptions? server = null;
        try
        {
            var builder = WebApplication.CreateBuilder(args);
            builder.AddLegateServiceDefaults(QuietHostStartFailure);
            builder.AddLegateHosting(serviceName, grpcServiceName);
            add(builder);
            var app = builder.Build();
            // Taken before the run: RunAsync disposes the services when it ends, a failed start included; the console
            // logger then writes a line at once instead of queueing it.
            logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Legate.Hosting");
            server = app.Services.GetRequiredService<IOptions<LegateServerOptions>>().Value;
            app.MapLegateEndpoints();
            map(app);
            await app.RunAsync().ConfigureAwait(false);
            return 0;
        }
        // Only as the process's own entry point: a test host (WebApplicationFactory) runs this Main on a thread of its
        // own, and there the exception is the test's answer.
        catch (Exception e) when (IsRefusedInput(e) && Assembly.GetEntryAssembly() == add.Method.Module.Assembly)
        {
            var reason = Reason(e, server);
            // Before the host is built there is no logger yet: the line goes to stderr.
            if (logger is not null)
                HostingLog.StartRefused(logger, serviceName, reason);
            else
                await Console.Error.WriteLineAsync($"{serviceName} did not start: {reason}").ConfigureAwait(false);
            return 1;
        }
    }

    // The host logs a failed start itself ("Hosting failed to start", an error with the stack trace) before the line
    // below says what was refused. A start that fails for a bug still ends with its stack trace, as the unhandled
    // exception; the host's critical events (a background service that stops it) still show.
    private static readonly KeyValuePair<string, string?>[] QuietHostStartFailure =
        [new("Logging:LogLevel:Microsoft.Extensions.Hosting.Internal.Host", "Critical")];

    // The system's refusal of a bind names no address, and a configuration file that is not JSON says where only in
    // its innermost exception.
    private static string Reason(Exception e, LegateServerOptions? server) => e switch
    {
        SocketException when server is not null =>
            $"cannot listen on {server.BindAddress} (ports {server.GrpcPort} and {server.HttpPort}): {e.Message}",
        InvalidDataException => $"{e.Message} {e.GetBaseException().Message}",
        _ => e.Message,
    };

    /// <summary>Exceptions that say what in the service's input is wrong, in a message that names it.</summary>
    internal static bool IsRefusedInput(Exception e) => e is RulesException or OptionsValidationException
        // Kestrel: "Failed to bind to address http://127.0.0.1:9012: address already in use."
        or IOException { InnerException: AddressInUseException }
        // The system's own refusal of a bind: an address not on this host, a port below 1024 without the right to
        // it, an IPv6 address (or *) where IPv6 is off.
        or SocketException { SocketErrorCode: SocketError.AddressNotAvailable or SocketError.AccessDenied or SocketError.AddressFamilyNotSupported }
        // "Failed to load configuration from file '/app/appsettings.json'.", around the JSON reader's complaint.
        or InvalidDataException { InnerException: FormatException }
        // The configuration binder: "Failed to convert configuration value 'abc' at 'Legate:GrpcPort' to type 'System.Int32'."
        or InvalidOperationException { InnerException: FormatException or ArgumentException };
}
