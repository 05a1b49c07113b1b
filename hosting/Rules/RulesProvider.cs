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

    /// <summary>
    /// How often the files are compared with what is loaded, besides file-system notifications (which miss some
    /// ConfigMap updates). A change either sees is loaded once the files have stayed the same for a quarter of a second.
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether files are watched at all. Off, the rules are loaded once at start-up.</summary>
    public bool Watch { get; set; } = true;
}

/// <summary>
/// Holds the current rules as an immutable snapshot swapped atomically. The first load happens before the
/// server starts and a bad or unreadable file stops start-up; later loads happen when the files change, and a
/// failed one (bad or unreadable file, loader bug) is logged and counted while the last good snapshot stays in force.
/// </summary>
public sealed class RulesProvider<TRules> : IHostedLifecycleService, IDisposable
    where TRules : class
{
    private static readonly string[] ResultLabels = ["rules", "result"];
    private static readonly string[] RulesLabel = ["rules"];

    // How long files must stay as they are before they are read for a reload (see ScheduleReload).
    private static readonly TimeSpan SettleDelay = TimeSpan.FromMilliseconds(250);

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
    // Why the files could not be read at the last look, until they can: a path that stays missing is reported once.
    private string? _lastUnreadable;
    private FileSystemWatcher? _watcher;
    private System.Threading.ITimer? _poll;
    private System.Threading.ITimer? _debounce;
    // What a poll saw change and is waiting to see settle: a later poll that sees the same leaves the wait running
    // (a poll interval shorter than the settle delay would otherwise restart it for ever).
    private volatile string? _settling;
    private bool _disposed;

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

    /// <summary>Loads the rules for the first time.</summary>
    /// <exception cref="RulesException">The rules are bad or cannot be read, or the loader failed; the message names the file.</exception>
    public void LoadInitial()
    {
        lock (_reloadGate)
        {
            if (_snapshot is not null)
                return;
            RulesFiles files;
            TRules rules;
            try
            {
                files = RulesFiles.Read(_options.Path);
                _lastAttempted = files.Fingerprint;
                rules = _loader.Load(files);
            }
            catch (Exception e) when (!IsFatal(e))
            {
                _reloadFailed.Inc();
                var failure = Failure(e);
                if (ReferenceEquals(failure, e))
                    throw;
                throw failure;
            }
            Swap(rules, files);
        }
    }

    /// <summary>Reads the files again and, when they changed and are good, swaps in a new snapshot.</summary>
    /// <remarks>
    /// Runs on timer threads, where an escaping exception ends the process: whatever goes wrong short of a fatal
    /// error (bad YAML, an unreadable file, a bug in the loader) is a failed reload, logged and counted, and the
    /// last good snapshot stays in force.
    /// </remarks>
    /// <returns>True when a new snapshot came into force.</returns>
    public bool Reload() => Reload(poll: false, settling: null);

    // poll: the poll timer's look, which loads nothing: a change it sees goes through the settle delay, as a watcher
    // event does, since a poll can catch a file half written (a keys file cut short is a valid, smaller set of keys).
    // settling: what that poll saw; loaded only if the files still read the same, else they are still being written
    // and the wait starts again.
    private bool Reload(bool poll, string? settling)
    {
        lock (_reloadGate)
        {
            if (_disposed)
                return false;
            if (_snapshot is null)
            {
                LoadInitial();
                return true;
            }
            if (!poll)
                _settling = null;
            RulesFiles? files = null;
            string? unreadable = null;
            try
            {
                files = RulesFiles.Read(_options.Path);
            }
            catch (Exception e) when (!IsFatal(e))
            {
                unreadable = Failure(e).Message;
            }
            // Unchanged files, and files that still cannot be read for the same reason (a path that stays missing):
            // a failure is reported once, not at every poll.
            if (files is null ? unreadable == _lastUnreadable : files.Fingerprint == _lastAttempted)
            {
                if (files is not null)
                    _lastUnreadable = null;
                return false;
            }
            var seen = files?.Fingerprint ?? unreadable!;
            if (poll || (settling is not null && seen != settling))
            {
                if (seen != _settling)
                    ScheduleReload(seen);
                return false;
            }
            if (files is null)
            {
                _lastUnreadable = unreadable;
                return Failed(unreadable!);
            }
            _lastUnreadable = null;
            _lastAttempted = files.Fingerprint;
            TRules rules;
            try
            {
                rules = _loader.Load(files);
            }
            catch (Exception e) when (!IsFatal(e))
            {
                return Failed(Failure(e).Message);
            }
            Swap(rules, files);
            return true;
        }
    }

    private bool Failed(string error)
    {
        _reloadFailed.Inc();
        HostingLog.RulesReloadFailed(_logger, _name, _snapshot!.Version, error);
        return false;
    }

    // What a failed load says, naming the path. RulesFiles.Read reports its own I/O errors; an I/O error from the
    // loader (one that opens more files) keeps the system's message, which names the file. Anything else is a bug:
    // its type and stack trace are logged for the bug report, but not its message, which can quote the files
    // (a FormatException names the text it could not parse, and policies and keys files can hold secrets).
    private RulesException Failure(Exception e)
    {
        switch (e)
        {
            case RulesException rules:
                return rules;
            case IOException or UnauthorizedAccessException:
                return RulesException.CannotRead(_options.Path, e, exact: false);
            default:
                var type = e.GetType().FullName ?? e.GetType().Name;
                HostingLog.RulesLoaderFaulted(_logger, _name, _options.Path, type, e.StackTrace ?? "");
                return new RulesException(_options.Path, null, null, null,
                    $"the loader failed with {type} (a bug; the RulesLoaderFaulted log event has the stack trace)");
        }
    }

    // What no caller can recover from; everything else on a reload is a failed reload, not a dead process.
    private static bool IsFatal(Exception e) => e is OutOfMemoryException or AccessViolationException or StackOverflowException;

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
        try
        {
            previous.Cancel();
        }
        catch (AggregateException e)
        {
            // A change-token callback threw. The new snapshot is in force regardless; this may be a timer thread.
            HostingLog.RulesChangeCallbackFailed(_logger, _name, e.InnerExceptions.Count > 0 ? e.InnerExceptions[0].GetType().FullName ?? "" : "");
        }
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
        _poll = _time.CreateTimer(_ => Reload(poll: true, settling: null), null, _options.PollInterval, _options.PollInterval);
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

    // Editors and ConfigMap updates write in several steps: wait for them to settle before reading. Each watcher
    // event starts the wait again; a change a poll saw (seen) is loaded only if the files still read the same at its end.
    private void ScheduleReload(string? seen = null)
    {
        _settling = seen;
        var timer = _time.CreateTimer(state => Reload(poll: false, settling: (string?)state), seen, SettleDelay, Timeout.InfiniteTimeSpan);
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
        // Under the gate: a timer callback already running finishes first, and later ones see _disposed.
        lock (_reloadGate)
        {
            if (_disposed)
                return;
            _disposed = true;
            _changed.Dispose();
        }
    }
}
