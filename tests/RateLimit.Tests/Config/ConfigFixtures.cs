using Envoy.Extensions.Common.Ratelimit.V3;
using Legate.Hosting.Rules;
using Legate.RateLimit.Config;

namespace Legate.RateLimit.Tests.Config;

/// <summary>Loading inline YAML and building descriptors for the config tests.</summary>
internal static class ConfigFixtures
{
    /// <summary>The reference's basic_config.yaml cases, plus unlimited (key6), detailed_metric (key7) and a named rule (key4).</summary>
    public const string Basic = """
        # Basic configuration for testing.
        domain: test-domain
        descriptors:
          # Top level key/value with no default rate limit.
          - key: key1
            value: value1
            descriptors:
              # 2nd level key only with default rate limit.
              - key: subkey1
                rate_limit:
                  unit: second
                  requests_per_unit: 5
              # 2nd level key/value with limit. Specific override at 2nd level.
              - key: subkey1
                value: subvalue1
                rate_limit:
                  unit: second
                  requests_per_unit: 10
          # Top level key only with default rate limit.
          - key: key2
            rate_limit:
              unit: minute
              requests_per_unit: 20
          # Top level key/value with limit. Specific override at 1st level.
          - key: key2
            value: value2
            rate_limit:
              unit: minute
              requests_per_unit: 30
          # Top level key/value with no limit, effectively whitelisted.
          - key: key2
            value: value3
          - key: key3
            rate_limit:
              unit: hour
              requests_per_unit: 1
          - key: key4
            rate_limit:
              unit: day
              requests_per_unit: 1
              name: key4_rate_limit
          - key: key5
            value: value5
            rate_limit:
              unit: day
              requests_per_unit: 15
            descriptors:
              - key: subkey5
                value: subvalue5
                rate_limit:
                  unit: day
                  requests_per_unit: 25
          - key: key6
            rate_limit:
              unlimited: true
          - key: key7
            detailed_metric: true
            rate_limit:
              unit: minute
              requests_per_unit: 70
        """;

    public static RateLimitConfig Load(string yaml, bool mergeDomains = false) =>
        new RateLimitConfigLoader(mergeDomains).Load([new RulesFile("config.yaml", yaml)]);

    public static RateLimitConfig Load(bool mergeDomains, params (string Name, string Yaml)[] files) =>
        new RateLimitConfigLoader(mergeDomains).Load(files.Select(f => new RulesFile(f.Name, f.Yaml)));

    public static RulesException LoadError(string yaml, bool mergeDomains = false) =>
        Assert.Throws<RulesException>(() => Load(yaml, mergeDomains));

    public static RateLimitDescriptor Descriptor(params (string Key, string Value)[] entries)
    {
        var descriptor = new RateLimitDescriptor();
        foreach (var (key, value) in entries)
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
        return descriptor;
    }
}
