using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Prometheus;

namespace Legate.Hosting.Rules;

/// <summary>Turns rules files into an immutable rules object. Throw <see cref="RulesException"/> for bad input.</summary>
public interface IRulesLoader<out TRules>
    where TRules : class
{
    TRules Load(RulesFiles files);
}

/// <summary>One loaded version of the rules. Immutable: readers keep using the snapshot they took.</summary>
public sealed record RulesSnapshot<TRules>(TRules Rules, long Version, string Fingerprint, DateTimeOffset LoadedAt)
    where TRules : class;

/// <summary>Where a named set of rules comes from. Bound from <c>Legate:Rules:{name}</c>.</summary>
public sealed class RulesOptions
{
    /// <summary>A YAML file, or a directory whose <c>*.yaml</c> files are loaded together.</summary>
    public string Path { get; set; } = "";

    /// <summary>How often the files are compared with what is loaded, besides file-system notifications (which miss some ConfigMap updates).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether files are watched at all. Off, the rules are loaded once at start-up.</summary>
    public bool Watch { get; set; } = true;
}

/// <summary>
/// Holds the current rules as an immutable snapshot swapped atomically. The first load happens before the
/// server starts and a bad file stops start-up; later loads happen when the files change, and a bad one is
/// logged and counted while the last good snapshot stays in force.
/// </summary>
public sealed class RulesProvider<TRules> : IHostedLifecycleService, IDisposable
    where TRules : class
{
    private static readonly string[] ResultLabels = ["rules", "result"];
    private static readonly string[] RulesLabel = ["rules"];

    private readonly string _name;
    private readonly RulesOptions _options;
    private readonly IRulesLoader<TRules> _loader;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _reloadGate = new();
    private readonly Counter.Child _reloadSucceeded;
    private readonly Counter.Child _reloadFailed;
    private readonly Gauge.Child _version;
    private readonly Gauge.Child _lastSuccess;

    private volatile RulesSnapshot<TRules>? _snapshot;
    private CancellationTokenSource _changed = new();
    private string? _lastAttempted;
    private FileSystemWatcher? _watcher;
    private System.Threading.ITimer? _poll;
    private System.Threading.ITimer? _debounce;

    public RulesProvider(string name, RulesOptions options, IRulesLoader<TRules> loader, TimeProvider time, ILogger logger, IMetricFactory metrics)
    {
        _name = name;
        _options = options;
        _loader = loader;
        _time = time;
        _logger = logger;
        var reloads = metrics.CreateCounter("legate_rules_reloads_total", "Rules loads by outcome; a failure keeps the last good rules.", ResultLabels);
        _reloadSucceeded = reloads.WithLabels(name, "success");
        _reloadFailed = reloads.WithLabels(name, "failure");
        _version = metrics.CreateGauge("legate_rules_version", "Version number of the rules in force (1 = first load).", RulesLabel).WithLabels(name);
        _lastSuccess = metrics.CreateGauge("legate_rules_last_success_timestamp_seconds", "When the rules in force were loaded (Unix time).", RulesLabel).WithLabels(name);
    }

    /// <summary>The rules in force.</summary>
    public TRules Current => Snapshot.Rules;

    /// <summary>The snapshot in force, with its version.</summary>
    public RulesSnapshot<TRules> Snapshot => _snapshot ?? throw new InvalidOperationException($"Rules '{_name}' are not loaded yet.");

    /// <summary>A token that fires when a new snapshot comes into force.</summary>
    public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _changed).Token);

    /// <summary>Loads the rules for the first time. Throws <see cref="RulesException"/> when they are bad.</summary>
    public void LoadInitial()
    {
        lock (_reloadGate)
        {
            if (_snapshot is not null)
                return;
            try
            {
                var files = RulesFiles.Read(_options.Path);
                _lastAttempted = files.Fingerprint;
                Swap(_loader.Load(files), files);
            }
            catch (RulesException)
            {
                _reloadFailed.Inc();
                throw;
            }
        }
    }

    /// <summary>Reads the files again and, when they changed and are good, swaps in a new snapshot.</summary>
    /// <returns>True when a new snapshot came into force.</returns>
    public bool Reload()
    {
        lock (_reloadGate)
        {
            if (_snapshot is null)
            {
                LoadInitial();
                return true;
            }
            RulesFiles files;
            try
            {
                files = RulesFiles.Read(_options.Path);
                if (files.Fingerprint == _lastAttempted)
                    return false;
                _lastAttempted = files.Fingerprint;
                Swap(_loader.Load(files), files);
                return true;
            }
            catch (RulesException e)
            {
                _reloadFailed.Inc();
                HostingLog.RulesReloadFailed(_logger, _name, _snapshot.Version, e.Message);
                return false;
            }
        }
    }

    private void Swap(TRules rules, RulesFiles files)
    {
        var now = _time.GetUtcNow();
        var snapshot = new RulesSnapshot<TRules>(rules, (_snapshot?.Version ?? 0) + 1, files.Fingerprint, now);
        _snapshot = snapshot;
        _reloadSucceeded.Inc();
        _version.Set(snapshot.Version);
        _lastSuccess.Set(now.ToUnixTimeMilliseconds() / 1000.0);
        HostingLog.RulesLoaded(_logger, _name, files.Root, snapshot.Version);

        var previous = Interlocked.Exchange(ref _changed, new CancellationTokenSource());
        previous.Cancel();
        previous.Dispose();
    }

    Task IHostedLifecycleService.StartingAsync(CancellationToken cancellationToken)
    {
        LoadInitial();
        if (_options.Watch)
            StartWatching();
        return Task.CompletedTask;
    }

    private void StartWatching()
    {
        _poll = _time.CreateTimer(_ => Reload(), null, _options.PollInterval, _options.PollInterval);
        var directory = Directory.Exists(_options.Path) ? _options.Path : Path.GetDirectoryName(Path.GetFullPath(_options.Path));
        if (directory is null)
            return;
        try
        {
            _watcher = new FileSystemWatcher(directory) { IncludeSubdirectories = false, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
            FileSystemEventHandler changed = (_, _) => ScheduleReload();
            _watcher.Changed += changed;
            _watcher.Created += changed;
            _watcher.Deleted += changed;
            _watcher.Renamed += (_, _) => ScheduleReload();
            _watcher.EnableRaisingEvents = true;
        }
        catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException)
        {
            HostingLog.RulesWatchFailed(_logger, e, _name, directory);
        }
    }

    // Editors and ConfigMap updates write in several steps: wait for them to settle before reading.
    private void ScheduleReload()
    {
        var timer = _time.CreateTimer(_ => Reload(), null, TimeSpan.FromMilliseconds(250), Timeout.InfiniteTimeSpan);
        Interlocked.Exchange(ref _debounce, timer)?.Dispose();
    }

    Task IHostedService.StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    Task IHostedLifecycleService.StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    Task IHostedLifecycleService.StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    Task IHostedService.StopAsync(CancellationToken cancellationToken)
    {
        StopWatching();
        return Task.CompletedTask;
    }

    Task IHostedLifecycleService.StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void StopWatching()
    {
        _watcher?.Dispose();
        _watcher = null;
        _poll?.Dispose();
        _poll = null;
        Interlocked.Exchange(ref _debounce, null)?.Dispose();
    }

    public void Dispose()
    {
        StopWatching();
        _changed.Dispose();
    }
}
