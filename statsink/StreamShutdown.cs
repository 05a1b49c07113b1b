using Legate.Hosting;
using Microsoft.Extensions.Options;

namespace Legate.StatSink;

/// <summary>
/// Ends the Envoy streams when statsink stops, shortly before the drain delay ends. Envoy never ends its stream, and
/// Kestrel waits for open calls until the shutdown timeout while the Envoys keep flushing into a replica nobody scrapes
/// any more; ended, each stream is opened again by its Envoy at its next flush, on another replica.
/// </summary>
internal sealed class StreamShutdown(IOptions<LegateServerOptions> server, TimeProvider time) : IHostedLifecycleService, IDisposable
{
    private readonly CancellationTokenSource _ending = new(Timeout.InfiniteTimeSpan, time);

    /// <summary>Cancelled once the streams should end.</summary>
    public CancellationToken Ending => _ending.Token;

    /// <summary>
    /// How long before the listeners close the streams end, so that each client reads the stream's final status before
    /// its connection closes. Ended at the same moment, the call may fail instead: the server resets the request half,
    /// which Envoy never ends, and a busy client that has not dealt with that reset when the connection closes drops
    /// the status it had already received (seen with .NET's client).
    /// </summary>
    internal static readonly TimeSpan StatusReadTime = TimeSpan.FromSeconds(1);

    /// <summary>When, after the drain starts, the streams end: <see cref="StatusReadTime"/> before it ends, or halfway through a shorter drain.</summary>
    internal static TimeSpan EndAfter(TimeSpan drainDelay) =>
        drainDelay - (drainDelay / 2 < StatusReadTime ? drainDelay / 2 : StatusReadTime);

    // Not the host's ApplicationStopping: SIGTERM fires that before the drain. Services stop in reverse order of
    // registration, so this runs as the hosting's drain (registered first) starts waiting the drain delay.
    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        _ending.CancelAfter(EndAfter(server.Value.DrainDelay));
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _ending.Dispose();
}
