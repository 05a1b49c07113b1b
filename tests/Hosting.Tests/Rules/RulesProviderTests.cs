using Legate.Hosting.Rules;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Legate.Testing;
using Prometheus;

namespace Legate.Hosting.Tests.Rules;

public sealed class RulesProviderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("legate-rules-").FullName;
    private readonly CollectorRegistry _registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private RulesProvider<Limits> Provider(string path, bool watch = false) =>
        new("limits", new RulesOptions { Path = path, Watch = watch, PollInterval = TimeSpan.FromSeconds(5) },
            new LimitsLoader(), _time, NullLogger.Instance, Prometheus.Metrics.WithCustomRegistry(_registry));

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
    public async Task Watching_PicksUpAChangeAtTheNextPoll()
    {
        var file = Write("limits.yaml", "tenant_a: 10\n");
        using var provider = Provider(file, watch: true);
        IHostedLifecycleService lifecycle = provider;
        await lifecycle.StartingAsync(TestContext.Current.CancellationToken);

        File.WriteAllText(file, "tenant_a: 12\n");
        _time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(12, provider.Current.Values["tenant_a"]);
        await lifecycle.StopAsync(TestContext.Current.CancellationToken);
    }


    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
