using Legate.Hosting.Rules;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Legate.Testing;
using Prometheus;

namespace Legate.Hosting.Tests.Rules;

public sealed class RulesProviderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("legate-rules-").FullName;
    private readonly string _elsewhere = Directory.CreateTempSubdirectory("legate-rules-target-").FullName;
    private readonly CollectorRegistry _registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    // A rules path that links to a file in another directory, as a ConfigMap's links do: the watcher of the link's
    // directory sees nothing of what happens to the file, so with fake time only the poll (and its settle delay) reloads.
    private (string Link, string Target) LinkedFromElsewhere(string name, string text)
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "a symbolic link needs privileges there");
        var target = Path.Combine(_elsewhere, name);
        File.WriteAllText(target, text);
        var link = Path.Combine(_dir, name);
        File.CreateSymbolicLink(link, target);
        return (link, target);
    }

    // To the next poll (every 5 s here), then through the settle delay after it: two steps, since a timer that a
    // callback starts during an Advance does not fire within that Advance.
    private void PollAndSettle()
    {
        _time.Advance(TimeSpan.FromSeconds(5));
        _time.Advance(TimeSpan.FromMilliseconds(250));
    }

    private RulesProvider<Limits> Provider(string path, bool watch = false, IRulesLoader<Limits>? loader = null, ILogger? logger = null, TimeSpan? pollInterval = null) =>
        new("limits", new RulesOptions { Path = path, Watch = watch, PollInterval = pollInterval ?? TimeSpan.FromSeconds(5) },
            loader ?? new LimitsLoader(), _time, logger ?? NullLogger.Instance, Prometheus.Metrics.WithCustomRegistry(_registry));

    private string Failures => _registry.Scrape().Split('\n').Single(l => l.StartsWith("legate_rules_reloads_total{rules=\"limits\",result=\"failure\"}", StringComparison.Ordinal));

    // Root reads a chmod-000 file anyway: only where the mode denies us does the test exercise a real denial.
    private static bool DenyReading(string path)
    {
        if (OperatingSystem.IsWindows())
            return false;
        File.SetUnixFileMode(path, UnixFileMode.None);
        try
        {
            File.ReadAllBytes(path);
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    [Fact]
    public void FirstLoad_BuildsVersionOne()
    {
        var file = Write("limits.yaml", "tenant_a: 10\ntenant_b: 20\n");
        using var provider = Provider(file);

        provider.LoadInitial();

        Assert.Equal(1, provider.Snapshot.Version);
        Assert.Equal(20, provider.Current.Values["tenant_b"]);
    }

    [Fact]
    public void BadFirstLoad_ThrowsWithFileLineAndField()
    {
        var file = Write("limits.yaml", "tenant_a: 10\ntenant_b: -3\n");
        using var provider = Provider(file);

        var error = Assert.Throws<RulesException>(provider.LoadInitial);

        Assert.Equal($"{file}:2:11: tenant_b: must be a positive whole number", error.Message);
        Assert.Throws<InvalidOperationException>(() => provider.Current);
    }

    [Fact]
    public void BadReload_KeepsTheLastGoodRulesAndCountsTheFailure()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(file);
        provider.LoadInitial();

        File.WriteAllText(file, "tenant_a: [oops\n");
        var reloaded = provider.Reload();

        Assert.False(reloaded);
        Assert.Equal(1, provider.Snapshot.Version);
        Assert.Equal(10, provider.Current.Values["tenant_a"]);
        Assert.Contains("legate_rules_reloads_total{rules=\"limits\",result=\"failure\"} 1", _registry.Scrape(), StringComparison.Ordinal);
    }

    [Fact]
    public void GoodReload_SwapsTheSnapshotAndFiresTheChangeToken()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(file);
        provider.LoadInitial();
        var before = provider.Snapshot;
        var token = provider.GetChangeToken();

        File.WriteAllText(file, "tenant_a: 11\n");
        var reloaded = provider.Reload();

        Assert.True(reloaded);
        Assert.True(token.HasChanged);
        Assert.Equal(2, provider.Snapshot.Version);
        Assert.Equal(11, provider.Current.Values["tenant_a"]);
        Assert.Equal(10, before.Rules.Values["tenant_a"]);
        Assert.Contains("legate_rules_version{rules=\"limits\"} 2", _registry.Scrape(), StringComparison.Ordinal);
    }

    [Fact]
    public void UnchangedFiles_AreNotReloaded()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(file);
        provider.LoadInitial();

        Assert.False(provider.Reload());
        Assert.Equal(1, provider.Snapshot.Version);
    }

    [Theory]
    [InlineData("tenant_a: &a [*a]\n", "1:15: alias *a is inside the node it names")]
    [InlineData("tenant_a: &a\n  b: &b\n    c: *a\n", "3:8: alias *a is inside the node it names")]
    public void ReloadWithAnAliasCycle_KeepsTheLastGoodRules(string text, string error)
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var logger = new FakeLogger();
        using var provider = Provider(file, logger: logger);
        provider.LoadInitial();

        File.WriteAllText(file, text);

        Assert.False(provider.Reload());
        Assert.Equal(10, provider.Current.Values["tenant_a"]);
        Assert.EndsWith(" 1", Failures, StringComparison.Ordinal);
        Assert.Contains($"{file}:{error}", logger.LatestRecord.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SameBadFile_IsReportedOnce()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(file);
        provider.LoadInitial();
        File.WriteAllText(file, "tenant_a: zero\n");

        provider.Reload();
        provider.Reload();

        Assert.Contains("legate_rules_reloads_total{rules=\"limits\",result=\"failure\"} 1", _registry.Scrape(), StringComparison.Ordinal);
    }

    [Fact]
    public void Directory_LoadsYamlFilesInNameOrderAndSkipsHiddenAndOtherFiles()
    {
        Write("b.yaml", "beta: 2\n");
        Write("a.yml", "alpha: 1\n");
        Write("notes.txt", "not: yaml: at all: [\n");
        Write(".hidden.yaml", "hidden: [\n");
        Directory.CreateDirectory(Path.Combine(_dir, "..data"));
        using var provider = Provider(_dir);

        provider.LoadInitial();

        Assert.Equal(["alpha", "beta"], provider.Current.Values.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Directory_ErrorsNameTheFileAtFault()
    {
        Write("a.yaml", "alpha: 1\n");
        var second = Write("b.yaml", "alpha: 2\n");
        using var provider = Provider(_dir);

        var error = Assert.Throws<RulesException>(provider.LoadInitial);

        Assert.Equal($"{second}:1:1: alpha: is defined in more than one file", error.Message);
    }

    [Fact]
    public void EmptyDirectory_IsAClearError()
    {
        using var provider = Provider(_dir);

        var error = Assert.Throws<RulesException>(provider.LoadInitial);

        Assert.Equal($"{_dir}: the directory has no *.yaml or *.yml files", error.Message);
    }

    [Fact]
    public void MissingPath_IsAClearError()
    {
        using var provider = Provider(Path.Combine(_dir, "nope.yaml"));

        var error = Assert.Throws<RulesException>(provider.LoadInitial);

        Assert.EndsWith("nope.yaml: no such file or directory", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingPathOnReload_IsReportedOnce_AndAgainOnlyAfterItChanged()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var logger = new FakeLogger();
        using var provider = Provider(file, logger: logger);
        provider.LoadInitial();

        File.Delete(file);
        Assert.False(provider.Reload());
        Assert.False(provider.Reload());
        Assert.False(provider.Reload());

        Assert.Equal(10, provider.Current.Values["tenant_a"]);
        Assert.EndsWith(" 1", Failures, StringComparison.Ordinal);
        var failed = Assert.Single(logger.Collector.GetSnapshot(), r => r.Id.Name == "RulesReloadFailed");
        Assert.EndsWith($"{file}: no such file or directory", failed.Message, StringComparison.Ordinal);

        // Back as it was: nothing new to load. Gone again: said again.
        File.WriteAllText(file, "tenant_a: 10\n");
        Assert.False(provider.Reload());
        File.Delete(file);
        Assert.False(provider.Reload());
        Assert.EndsWith(" 2", Failures, StringComparison.Ordinal);

        File.WriteAllText(file, "tenant_a: 12\n");
        Assert.True(provider.Reload());
        Assert.Equal(2, provider.Snapshot.Version);
        Assert.Equal(12, provider.Current.Values["tenant_a"]);
    }

    [Fact]
    public async Task MissingPathWhileWatching_IsNotReportedAtEveryPoll()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var logger = new FakeLogger();
        using var provider = Provider(file, watch: true, logger: logger);
        IHostedLifecycleService lifecycle = provider;
        await lifecycle.StartingAsync(TestContext.Current.CancellationToken);

        File.Delete(file);
        for (var i = 0; i < 5; i++)
            _time.Advance(TimeSpan.FromSeconds(6));

        Assert.Equal(10, provider.Current.Values["tenant_a"]);
        Assert.EndsWith(" 1", Failures, StringComparison.Ordinal);
        Assert.Single(logger.Collector.GetSnapshot(), r => r.Id.Name == "RulesReloadFailed");
        await lifecycle.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Watching_PicksUpAChangeAtTheNextPoll_OnceItHasSettled()
    {
        var (link, file) = LinkedFromElsewhere("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(link, watch: true);
        IHostedLifecycleService lifecycle = provider;
        await lifecycle.StartingAsync(TestContext.Current.CancellationToken);

        File.WriteAllText(file, "tenant_a: 12\n");
        PollAndSettle();

        Assert.Equal(12, provider.Current.Values["tenant_a"]);
        await lifecycle.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task AFileThePollCatchesHalfWritten_IsNotLoaded_UntilItHasStayedTheSameForTheSettleDelay()
    {
        var (link, file) = LinkedFromElsewhere("limits.yaml", "tenant_a: 10\ntenant_b: 20\n");
        var logger = new FakeLogger();
        using var provider = Provider(link, watch: true, logger: logger);
        IHostedLifecycleService lifecycle = provider;
        await lifecycle.StartingAsync(TestContext.Current.CancellationToken);

        // The poll catches a rewrite half way: still valid YAML, with a tenant missing (as a keys file cut short is
        // a valid, smaller set of keys).
        File.WriteAllText(file, "tenant_a: 11\n");
        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(1, provider.Snapshot.Version);

        // The rest is written within the settle delay: the wait starts again, and what is loaded is the whole file.
        File.WriteAllText(file, "tenant_a: 11\ntenant_b: 21\n");
        _time.Advance(TimeSpan.FromMilliseconds(250));
        Assert.Equal(1, provider.Snapshot.Version);
        _time.Advance(TimeSpan.FromMilliseconds(250));

        Assert.Equal(2, provider.Snapshot.Version);
        Assert.Equal(21, provider.Current.Values["tenant_b"]);
        Assert.Equal(["RulesLoaded", "RulesLoaded"], logger.Collector.GetSnapshot().Select(r => r.Id.Name));
        await lifecycle.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public void UnreadableFileOnReload_IsAFailedReload()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var logger = new FakeLogger();
        using var provider = Provider(file, logger: logger);
        provider.LoadInitial();
        File.WriteAllText(file, "tenant_a: 11\n");
        Assert.SkipUnless(DenyReading(file), "running as root: mode 000 does not deny reading (UnreadableFilesFromTheLoader covers this case)");

        Assert.False(provider.Reload());

        Assert.Equal(10, provider.Current.Values["tenant_a"]);
        Assert.EndsWith(" 1", Failures, StringComparison.Ordinal);
        Assert.Equal($"Rules 'limits' not reloaded, the last good version 1 stays in force: cannot read {file}: permission denied", logger.LatestRecord.Message);
    }

    [Fact]
    public void UnreadableFileAtFirstLoad_StopsStartUpNamingTheFile()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(_dir);
        Assert.SkipUnless(DenyReading(file), "running as root: mode 000 does not deny reading");

        var error = Assert.Throws<RulesException>(provider.LoadInitial);

        Assert.Equal($"cannot read {file}: permission denied", error.Message);
    }

    [Fact]
    public void UnreadableFilesFromTheLoader_AreAFailedReloadNamingThePath()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var loader = new FaultyLoader();
        var logger = new FakeLogger();
        using var provider = Provider(file, loader: loader, logger: logger);
        provider.LoadInitial();

        File.WriteAllText(file, "tenant_a: 11\n");
        loader.Fault = new UnauthorizedAccessException("Access to the path '/etc/legate/keys.yaml' is denied.");
        Assert.False(provider.Reload());
        File.WriteAllText(file, "tenant_a: 12\n");
        loader.Fault = new IOException("Input/output error : '/etc/legate/keys.yaml'");
        Assert.False(provider.Reload());

        Assert.Equal(10, provider.Current.Values["tenant_a"]);
        Assert.EndsWith(" 2", Failures, StringComparison.Ordinal);
        Assert.Equal(
            [
                $"Rules 'limits' not reloaded, the last good version 1 stays in force: cannot read {file}: Access to the path '/etc/legate/keys.yaml' is denied.",
                $"Rules 'limits' not reloaded, the last good version 1 stays in force: cannot read {file}: Input/output error : '/etc/legate/keys.yaml'",
            ],
            logger.Collector.GetSnapshot().Where(r => r.Id.Name == "RulesReloadFailed").Select(r => r.Message));
    }

    [Fact]
    public void LoaderBugOnReload_IsAFailedReloadAndItsMessageIsNotLogged()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var loader = new FaultyLoader();
        var logger = new FakeLogger();
        using var provider = Provider(file, loader: loader, logger: logger);
        provider.LoadInitial();
        logger.Collector.Clear();

        File.WriteAllText(file, "tenant_a: 11\n");
        loader.Fault = new FormatException("The input string 's3cr3t-from-the-file' was not in a correct format.");
        Assert.False(provider.Reload());

        Assert.Equal(10, provider.Current.Values["tenant_a"]);
        Assert.EndsWith(" 1", Failures, StringComparison.Ordinal);
        var records = logger.Collector.GetSnapshot();
        Assert.Equal(["RulesLoaderFaulted", "RulesReloadFailed"], records.Select(r => r.Id.Name));
        Assert.All(records, r => Assert.Null(r.Exception));
        Assert.All(records, r => Assert.DoesNotContain("s3cr3t", r.Message, StringComparison.Ordinal));
        Assert.Contains("System.FormatException", records[0].Message, StringComparison.Ordinal);
        Assert.Contains(nameof(FaultyLoader), records[0].Message, StringComparison.Ordinal);
        Assert.Equal($"Rules 'limits' not reloaded, the last good version 1 stays in force: {file}: the loader failed with System.FormatException "
            + "(a bug; the RulesLoaderFaulted log event has the stack trace)", records[1].Message);
    }

    [Fact]
    public void LoaderBugAtFirstLoad_StopsStartUpNamingThePathWithoutTheMessage()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var loader = new FaultyLoader { Fault = new KeyNotFoundException("The given key 's3cr3t' was not present in the dictionary.") };
        using var provider = Provider(file, loader: loader);

        var error = Assert.Throws<RulesException>(provider.LoadInitial);

        Assert.Equal($"{file}: the loader failed with System.Collections.Generic.KeyNotFoundException (a bug; the RulesLoaderFaulted log event has the stack trace)", error.Message);
        Assert.Null(error.InnerException);
        Assert.EndsWith(" 1", Failures, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PollsMoreOftenThanTheSettleDelay_DoNotKeepPuttingTheReloadOff()
    {
        var (link, file) = LinkedFromElsewhere("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(link, watch: true, pollInterval: TimeSpan.FromMilliseconds(100));
        IHostedLifecycleService lifecycle = provider;
        await lifecycle.StartingAsync(TestContext.Current.CancellationToken);

        File.WriteAllText(file, "tenant_a: 12\n");
        for (var i = 0; i < 5; i++)
            _time.Advance(TimeSpan.FromMilliseconds(100));

        Assert.Equal(12, provider.Current.Values["tenant_a"]);
        await lifecycle.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task FailingReloadsOnTheTimer_DoNotEscapeTheTimerThread()
    {
        var (link, file) = LinkedFromElsewhere("limits.yaml", "tenant_a: 10\n");
        var loader = new FaultyLoader();
        using var provider = Provider(link, watch: true, loader: loader);
        IHostedLifecycleService lifecycle = provider;
        await lifecycle.StartingAsync(TestContext.Current.CancellationToken);

        // FakeTimeProvider runs timer callbacks inside Advance: an exception escaping Reload would fail the test here.
        File.WriteAllText(file, "tenant_a: 11\n");
        loader.Fault = new IOException("disk on fire");
        PollAndSettle();
        File.WriteAllText(file, "tenant_a: 12\n");
        loader.Fault = new InvalidCastException("bug");
        PollAndSettle();
        File.WriteAllText(file, "tenant_a: 13\n");
        loader.Fault = null;
        PollAndSettle();

        Assert.EndsWith(" 2", Failures, StringComparison.Ordinal);
        Assert.Equal(13, provider.Current.Values["tenant_a"]);
        await lifecycle.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public void ReloadAfterDispose_DoesNothing()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        var provider = Provider(file);
        provider.LoadInitial();
        provider.Dispose();
        File.WriteAllText(file, "tenant_a: 11\n");

        Assert.False(provider.Reload());
    }

    /// <summary>Throws <see cref="Fault"/> when set, as a loader with a bug or one that opens other files might.</summary>
    private sealed class FaultyLoader : IRulesLoader<Limits>
    {
        public Exception? Fault { get; set; }

        public Limits Load(RulesFiles files) => Fault is { } fault ? throw fault : new LimitsLoader().Load(files);
    }

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        Directory.Delete(_elsewhere, recursive: true);
    }
}
