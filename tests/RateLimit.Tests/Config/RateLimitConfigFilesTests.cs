using Legate.Hosting.Rules;
using Legate.RateLimit.Config;
using Legate.Testing;
using Microsoft.Extensions.Logging.Testing;
using static Legate.RateLimit.Tests.Config.ConfigFixtures;

namespace Legate.RateLimit.Tests.Config;

/// <summary>Loading a directory of config files, as the service does from a ConfigMap.</summary>
public sealed class RateLimitConfigFilesTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("legate-ratelimit-config-").FullName;

    private string Write(string name, string yaml)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public void Directory_LoadsEveryYamlFileInNameOrder()
    {
        Write("20-edge.yaml", """
            domain: edge
            descriptors:
              - key: remote_address
                rate_limit:
                  unit: second
                  requests_per_unit: 10
            """);
        Write("10-basic.yml", Basic);
        Write("notes.txt", "not: yaml: config");
        Write(".hidden.yaml", "domain: hidden\n");

        var config = new RateLimitConfigLoader().Load(RulesFiles.Read(_directory));

        Assert.Equal(["test-domain", "edge"], config.Domains);
        Assert.Equal(10u, config.Match("edge", Descriptor(("remote_address", "10.0.0.1")))!.Value.Policy.RequestsPerUnit);
        Assert.Equal(20u, config.Match("test-domain", Descriptor(("key2", "x")))!.Value.Policy.RequestsPerUnit);
    }

    [Fact]
    public void Directory_SharedDomain_FailsWithoutMerge_AndMergesWithIt()
    {
        Write("a.yaml", """
            domain: test-domain
            descriptors:
              - key: key1
                value: value1
                rate_limit:
                  unit: minute
                  requests_per_unit: 10
            """);
        var second = Write("b.yaml", """
            domain: test-domain
            descriptors:
              - key: key2
                value: value2
                rate_limit:
                  unit: minute
                  requests_per_unit: 20
            """);
        var files = RulesFiles.Read(_directory);

        var error = Assert.Throws<RulesException>(() => new RateLimitConfigLoader().Load(files));
        Assert.Equal(second, error.File);
        Assert.Equal($"{second}:1:9: domain: duplicate domain 'test-domain' in config file", error.Message);

        var config = new RateLimitConfigLoader(mergeDomains: true).Load(files);
        Assert.Equal(["test-domain"], config.Domains);
        Assert.Equal(10u, config.Match("test-domain", Descriptor(("key1", "value1")))!.Value.Policy.RequestsPerUnit);
        Assert.Equal(20u, config.Match("test-domain", Descriptor(("key2", "value2")))!.Value.Policy.RequestsPerUnit);
    }

    [Fact]
    public void SeveralDocumentsInOneFile_AreSeveralDomains()
    {
        var path = Write("multi.yaml", """
            domain: one
            descriptors:
              - key: k
                rate_limit: {unit: second, requests_per_unit: 1}
            ---
            domain: two
            descriptors:
              - key: k
                rate_limit: {unit: second, requests_per_unit: 2}
            ---
            """);

        var config = new RateLimitConfigLoader().Load(RulesFiles.Read(path));

        Assert.Equal(["one", "two"], config.Domains);
        Assert.Equal(2u, config.Match("two", Descriptor(("k", "v")))!.Value.Policy.RequestsPerUnit);
    }

    [Fact]
    public void ProviderLoadsThroughTheLoader()
    {
        Write("basic.yaml", Basic);
        var options = new RulesOptions { Path = _directory, Watch = false };
        using var provider = new RulesProvider<RateLimitConfig>("ratelimit", options, new RateLimitConfigLoader(), TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, Prometheus.Metrics.WithCustomRegistry(Prometheus.Metrics.NewCustomRegistry()));

        provider.LoadInitial();

        Assert.Equal(["test-domain"], provider.Current.Domains);
    }

    // A probe with the first of these overflowed the stack of the test host before the YAML guard.
    public static TheoryData<string, string> AliasCycles => new()
    {
        {
            """
            domain: d
            descriptors: &all
              - key: a
                descriptors: *all
            """,
            "4:18: error loading config file: alias *all is inside the node it names (&all at line 2), which makes a cycle"
        },
        {
            """
            domain: d
            descriptors:
              - key: a
                metadata: &m
                  note: *m
            """,
            "5:13: error loading config file: alias *m is inside the node it names (&m at line 4), which makes a cycle"
        },
        {
            """
            domain: d
            descriptors:
              - &outer
                key: a
                descriptors:
                  - &inner
                    key: b
                    descriptors: [*outer]
            """,
            "8:23: error loading config file: alias *outer is inside the node it names (&outer at line 3), which makes a cycle"
        },
    };

    [Theory]
    [MemberData(nameof(AliasCycles))]
    public void AliasCycle_IsALoadErrorNamingFileAndLine(string yaml, string error)
    {
        var path = Write("cycle.yaml", yaml);

        var e = Assert.Throws<RulesException>(() => new RateLimitConfigLoader().Load(RulesFiles.Read(_directory)));

        Assert.Equal($"{path}:{error}", e.Message);
    }

    [Theory]
    [MemberData(nameof(AliasCycles))]
    public void ReloadWithAnAliasCycle_KeepsTheLastGoodConfig(string yaml, string error)
    {
        var path = Write("config.yaml", Basic);
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var logger = new FakeLogger();
        var options = new RulesOptions { Path = _directory, Watch = false };
        using var provider = new RulesProvider<RateLimitConfig>("ratelimit", options, new RateLimitConfigLoader(), TimeProvider.System,
            logger, Prometheus.Metrics.WithCustomRegistry(registry));
        provider.LoadInitial();

        File.WriteAllText(path, yaml);

        Assert.False(provider.Reload());
        Assert.Equal(["test-domain"], provider.Current.Domains);
        Assert.Contains("legate_rules_reloads_total{rules=\"ratelimit\",result=\"failure\"} 1", registry.Scrape(), StringComparison.Ordinal);
        Assert.EndsWith($"stays in force: {path}:{error}", logger.LatestRecord.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SharedAnchors_StillLoad()
    {
        Write("shared.yaml", """
            domain: d
            descriptors:
              - key: a
                rate_limit: &per_minute
                  unit: minute
                  requests_per_unit: 5
              - key: b
                rate_limit: *per_minute
            """);

        var config = new RateLimitConfigLoader().Load(RulesFiles.Read(_directory));

        Assert.Equal(5u, config.Match("d", Descriptor(("b", "x")))!.Value.Policy.RequestsPerUnit);
    }

    [Fact]
    public void ShippedSampleConfig_Loads()
    {
        // ratelimit/rules/*.yaml, copied next to the tests by the project reference.
        var config = new RateLimitConfigLoader().Load(RulesFiles.Read(Path.Combine(AppContext.BaseDirectory, "rules")));

        Assert.NotEmpty(config.Domains);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
