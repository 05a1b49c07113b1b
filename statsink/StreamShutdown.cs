using Legate.Hosting;
using Microsoft.Extensions.Options;

namespace Legate.StatSink;

/// <summary>
/// Ends the Envoy streams when statsink stops, as the drain delay ends. Envoy never ends its stream, and Kestrel waits
/// for open calls until the shutdown timeout while the Envoys keep flushing into a replica nobody scrapes any more;
/// ended, each stream is opened again by its Envoy at its next flush, on another replica.
/// </summary>
internal sealed class StreamShutdown(IOptions<LegateServerOptions> server, TimeProvider time) : IHostedLifecycleService, IDisposable
{
    private readonly CancellationTokenSource _ending = new(Timeout.InfiniteTimeSpan, time);

    /// <summary>Cancelled once the streams should end.</summary>
    public CancellationToken Ending => _ending.Token;

    // Not the host's ApplicationStopping: SIGTERM fires that before the drain. Services stop in reverse order of
    // registration, so this runs as the hosting's drain (registered first) starts waiting the same delay.
    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        _ending.CancelAfter(server.Value.DrainDelay);
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _ending.Dispose();
}
