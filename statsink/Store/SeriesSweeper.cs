using Microsoft.Extensions.Options;

namespace Legate.StatSink.Store;

/// <summary>Runs <see cref="SeriesStore.Sweep"/> every <c>SweepInterval</c> on the <see cref="TimeProvider"/>'s clock.</summary>
internal sealed class SeriesSweeper(SeriesStore store, IOptions<StatSinkOptions> options, TimeProvider time) : IHostedService, IDisposable
{
    private ITimer? _timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var interval = options.Value.SweepInterval;
        _timer = time.CreateTimer(_ => store.Sweep(), null, interval, interval);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();
}
