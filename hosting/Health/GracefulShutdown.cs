using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Legate.Hosting.Health;

/// <summary>
/// Orders start and stop. Ready only once the server has started. On SIGTERM, readiness goes false first and
/// the server keeps serving for the drain delay, so Envoy and Kubernetes stop sending; then the host stops
/// Kestrel, which lets in-flight calls finish within the shutdown timeout.
/// </summary>
internal sealed class GracefulShutdown(
    ReadinessState readiness,
    LegateEndpoints endpoints,
    LegateServiceInfo service,
    IOptions<LegateServerOptions> options,
    TimeProvider time,
    ILogger<GracefulShutdown> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        readiness.MarkStarted();
        string grpc, http;
        try
        {
            grpc = endpoints.Grpc.GetLeftPart(UriPartial.Authority);
            http = endpoints.Http.GetLeftPart(UriPartial.Authority);
        }
        catch (InvalidOperationException)
        {
            grpc = http = "(in-process test server)";
        }
        HostingLog.Listening(logger, service.Name, grpc, http);
        return Task.CompletedTask;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        readiness.MarkDraining();
        var delay = options.Value.DrainDelay;
        HostingLog.Draining(logger, service.Name, delay.TotalSeconds);
        if (delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(delay, time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // The host's shutdown timeout ran out first: stop now.
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        HostingLog.Stopped(logger, service.Name);
        return Task.CompletedTask;
    }
}
