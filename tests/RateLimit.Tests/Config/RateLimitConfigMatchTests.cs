using Envoy.Extensions.Common.Ratelimit.V3;
using Legate.RateLimit.Config;
using static Legate.RateLimit.Tests.Config.ConfigFixtures;
using OverrideUnit = Envoy.Type.V3.RateLimitUnit;
using ProtoUnit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Legate.RateLimit.Tests.Config;

/// <summary>Matching: envoyproxy/ratelimit's TestBasicConfig, wildcard, share_threshold and override cases.</summary>
public sealed class RateLimitConfigMatchTests
{
    private static readonly RateLimitConfig BasicConfig = Load(Basic);

    private const string Wildcards = """
        domain: test-domain
        descriptors:
          - key: wild
            value: foo*
            rate_limit:
              unit: minute
              requests_per_unit: 20
          - key: noWild
            value: foo
            rate_limit:
              unit: minute
              requests_per_unit: 20
          - key: noVal
            rate_limit:
              unit: minute
              requests_per_unit: 20
          - key: midWild
            value: bar*b
            rate_limit:
              unit: minute
              requests_per_unit: 20
          - key: multiWild
            value: foo*bar*baz
            rate_limit:
              unit: minute
              requests_per_unit: 20
          - key: nestedWild
            value: val1
            descriptors:
              - key: wild
                value: goo*
                rate_limit:
                  unit: minute
                  requests_per_unit: 30
        """;

    private const string ShareThreshold = """
        domain: test-domain
        descriptors:
          - key: files
            value: files/*
            share_threshold: true
            rate_limit:
              unit: minute
              requests_per_unit: 100
          - key: nested
            value: parent
            descriptors:
              - key: files
                value: nested/*
                share_threshold: true
                rate_limit:
                  unit: minute
                  requests_per_unit: 200
          - key: files
            value: top/*
            share_threshold: true
            descriptors:
              - key: files
                value: nested/*
                share_threshold: true
                rate_limit:
                  unit: minute
                  requests_per_unit: 300
          - key: route
            value: api/*
            share_threshold: true
            value_to_metric: true
            descriptors:
              - key: method
                rate_limit:
                  unit: minute
                  requests_per_unit: 60
          - key: service
            value: svc/*
            share_threshold: true
            descriptors:
              - key: endpoint
                detailed_metric: true
                rate_limit:
                  unit: minute
                  requests_per_unit: 80
          - key: path
            value: path/*
            share_threshold: true
            descriptors:
              - key: file
                value: file/*
                share_threshold: false
                descriptors:
                  - key: type
                    rate_limit:
                      unit: minute
                      requests_per_unit: 120
          - key: file
            value: test1
            rate_limit:
              unit: minute
              requests_per_unit: 50
          - key: file
            value: test*
            share_threshold: true
            rate_limit:
              unit: minute
              requests_per_unit: 100
          - key: midpath
            value: /api*v1
            share_threshold: true
            rate_limit:
              unit: minute
              requests_per_unit: 100
          - key: multiroute
            value: svc*ep*rpc
            share_threshold: true
            rate_limit:
              unit: minute
              requests_per_unit: 50
          - key: midroute
            value: /api*v2
            share_threshold: true
            value_to_metric: true
            rate_limit:
              unit: minute
              requests_per_unit: 80
        """;

    private static DescriptorMatch Match(RateLimitConfig config, params (string Key, string Value)[] entries) =>
        config.Match("test-domain", Descriptor(entries)) ?? throw new Xunit.Sdk.XunitException("expected a limit");

    private static void AssertNoLimit(RateLimitConfig config, params (string Key, string Value)[] entries) =>
        Assert.Null(config.Match("test-domain", Descriptor(entries)));

    private static void AssertLimit(DescriptorMatch match, uint requestsPerUnit, LimitUnit unit, string metricPath)
    {
        Assert.Equal(requestsPerUnit, match.Policy.RequestsPerUnit);
        Assert.Equal(unit, match.Policy.Unit);
        Assert.Equal(requestsPerUnit, match.Policy.CurrentLimit.RequestsPerUnit);
        Assert.Equal(unit.ToProto(), match.Policy.CurrentLimit.Unit);
        Assert.Equal(metricPath, match.MetricPath);
    }

    [Fact]
    public void UnknownDomain_HasNoLimit()
    {
        Assert.Null(BasicConfig.Match("foo_domain", new RateLimitDescriptor()));
        Assert.Null(BasicConfig.Match("foo_domain", Descriptor(("key2", "value2"))));
        Assert.Null(RateLimitConfig.Empty.Match("test-domain", Descriptor(("key2", "value2"))));
    }

    [Fact]
    public void EmptyDescriptor_HasNoLimit() => Assert.Null(BasicConfig.Match("test-domain", new RateLimitDescriptor()));

    [Fact]
    public void NoDefaultAtTheFirstLevel_HasNoLimit() => AssertNoLimit(BasicConfig, ("key1", "something"));

    [Fact]
    public void IntermediateNodeWithoutLimit_HasNoLimit() => AssertNoLimit(BasicConfig, ("key1", "value1"));

    [Fact]
    public void SecondLevelDefault_Applies()
    {
        var match = Match(BasicConfig, ("key1", "value1"), ("subkey1", "something"));

        AssertLimit(match, 5, LimitUnit.Second, "test-domain.key1_value1.subkey1");
        Assert.Equal("key1_value1.subkey1", match.Policy.RulePath);
        Assert.Same(match.Policy.MetricPath, match.MetricPath);
        Assert.Null(match.CounterEntries);
    }

    [Fact]
    public void SecondLevelExplicitValue_BeatsDefault() =>
        AssertLimit(Match(BasicConfig, ("key1", "value1"), ("subkey1", "subvalue1")), 10, LimitUnit.Second, "test-domain.key1_value1.subkey1_subvalue1");

    [Fact]
    public void FirstLevelDefault_Applies() =>
        AssertLimit(Match(BasicConfig, ("key2", "something")), 20, LimitUnit.Minute, "test-domain.key2");

    [Fact]
    public void FirstLevelExplicitValue_BeatsDefault() =>
        AssertLimit(Match(BasicConfig, ("key2", "value2")), 30, LimitUnit.Minute, "test-domain.key2_value2");

    [Fact]
    public void ExplicitValueWithoutLimit_IsWhitelisted() => AssertNoLimit(BasicConfig, ("key2", "value3"));

    [Fact]
    public void RequestDeeperThanConfig_HasNoLimit() => AssertNoLimit(BasicConfig, ("key2", "value2"), ("subkey", "subvalue"));

    [Fact]
    public void NoFallbackToAShorterPrefix()
    {
        AssertLimit(Match(BasicConfig, ("key5", "value5")), 15, LimitUnit.Day, "test-domain.key5_value5");
        AssertLimit(Match(BasicConfig, ("key5", "value5"), ("subkey5", "subvalue5")), 25, LimitUnit.Day, "test-domain.key5_value5.subkey5_subvalue5");
        AssertNoLimit(BasicConfig, ("key5", "value5"), ("subkey5", "subvalue"));
    }

    [Fact]
    public void OtherUnits_AndNames()
    {
        AssertLimit(Match(BasicConfig, ("key3", "foo")), 1, LimitUnit.Hour, "test-domain.key3");
        var key4 = Match(BasicConfig, ("key4", "foo"));
        AssertLimit(key4, 1, LimitUnit.Day, "test-domain.key4");
        Assert.Equal("key4_rate_limit", key4.Policy.Name);
        Assert.Equal("key4_rate_limit", key4.Policy.CurrentLimit.Name);
        Assert.Equal("", Match(BasicConfig, ("key3", "foo")).Policy.CurrentLimit.Name);
    }

    [Fact]
    public void Unlimited_MatchesWithAnUnlimitedPolicy()
    {
        var match = Match(BasicConfig, ("key6", "foo"));

        Assert.True(match.Policy.Unlimited);
        Assert.Equal("test-domain.key6", match.MetricPath);
    }

    [Fact]
    public void DetailedMetric_CarriesTheRequestValue()
    {
        var first = Match(BasicConfig, ("key7", "unspecified_value"));
        var second = Match(BasicConfig, ("key7", "another_value"));

        AssertLimit(first, 70, LimitUnit.Minute, "test-domain.key7_unspecified_value");
        AssertLimit(second, 70, LimitUnit.Minute, "test-domain.key7_another_value");
        Assert.Same(first.Policy, second.Policy);
        Assert.Equal("test-domain.key7", first.Policy.MetricPath);
        Assert.Null(first.CounterEntries);
    }

    [Fact]
    public void DetailedMetric_WritesEveryLevelsValue()
    {
        var config = Load("""
            domain: test-domain
            descriptors:
              - key: a
                descriptors:
                  - key: b
                    value: fixed
                    detailed_metric: true
                    rate_limit:
                      unit: second
                      requests_per_unit: 1
            """);

        Assert.Equal("test-domain.a_x.b_fixed", Match(config, ("a", "x"), ("b", "fixed")).MetricPath);
        // An empty value writes the key alone (the reference writes "a_").
        Assert.Equal("test-domain.a.b_fixed", Match(config, ("a", ""), ("b", "fixed")).MetricPath);
    }

    [Fact]
    public void Match_IsTheSameSharedPolicy()
    {
        var first = Match(BasicConfig, ("key2", "a"));
        var second = Match(BasicConfig, ("key2", "b"));

        Assert.Same(first.Policy, second.Policy);
        Assert.Same(first.Policy.CurrentLimit, second.Policy.CurrentLimit);
    }

    [Theory]
    [InlineData("foo1")]
    [InlineData("foo2")]
    [InlineData("foo")]
    public void TrailingWildcard_Matches(string value)
    {
        var config = Load(Wildcards);

        var match = Match(config, ("wild", value));

        AssertLimit(match, 20, LimitUnit.Minute, "test-domain.wild_foo*");
        Assert.Same(config.Match("test-domain", Descriptor(("wild", "foo1")))!.Value.Policy, match.Policy);
        Assert.Null(match.CounterEntries);
    }

    [Fact]
    public void Wildcards_DoNotMatchOtherValuesOrKeys()
    {
        var config = Load(Wildcards);

        AssertNoLimit(config, ("wild", "bar"));
        AssertNoLimit(config, ("noWild", "foo1"));
        AssertNoLimit(config, ("wild_foo", "x"));
        AssertNoLimit(config, ("wildfoo", "x"));
        AssertLimit(Match(config, ("noWild", "foo")), 20, LimitUnit.Minute, "test-domain.noWild_foo");
        AssertLimit(Match(config, ("noVal", "foo")), 20, LimitUnit.Minute, "test-domain.noVal");
    }

    [Theory]
    [InlineData("barab", true)]
    [InlineData("bar123b", true)]
    [InlineData("barb", true)]
    [InlineData("bara", false)]
    [InlineData("xbarb", false)]
    [InlineData("bar", false)]
    public void MiddleWildcard(string value, bool matches)
    {
        var match = Load(Wildcards).Match("test-domain", Descriptor(("midWild", value)));

        Assert.Equal(matches, match is not null);
        if (match is { } m)
            Assert.Equal("test-domain.midWild_bar*b", m.MetricPath);
    }

    [Theory]
    [InlineData("foo123bar456baz", true)]
    [InlineData("foobarbaz", true)]
    [InlineData("foobazbarbaz", true)]
    [InlineData("foo123baz", false)]
    [InlineData("bar456baz", false)]
    [InlineData("foobarba", false)]
    public void MultipleWildcards(string value, bool matches) =>
        Assert.Equal(matches, Load(Wildcards).Match("test-domain", Descriptor(("multiWild", value))) is not null);

    [Fact]
    public void NestedWildcard()
    {
        var config = Load(Wildcards);

        AssertLimit(Match(config, ("nestedWild", "val1"), ("wild", "goo2")), 30, LimitUnit.Minute, "test-domain.nestedWild_val1.wild_goo*");
        AssertNoLimit(config, ("nestedWild", "val1"), ("wild", "foo2"));
    }

    [Fact]
    public void ExplicitBeatsWildcard_WhichBeatsDefault_FirstWildcardInFileOrderWins()
    {
        var config = Load("""
            domain: test-domain
            descriptors:
              - key: k
                rate_limit:
                  unit: second
                  requests_per_unit: 1
              - key: k
                value: a*
                rate_limit:
                  unit: second
                  requests_per_unit: 2
              - key: k
                value: ab*
                rate_limit:
                  unit: second
                  requests_per_unit: 3
              - key: k
                value: abc
                rate_limit:
                  unit: second
                  requests_per_unit: 4
            """);

        Assert.Equal(4u, Match(config, ("k", "abc")).Policy.RequestsPerUnit);
        Assert.Equal(2u, Match(config, ("k", "abd")).Policy.RequestsPerUnit);
        Assert.Equal(1u, Match(config, ("k", "xyz")).Policy.RequestsPerUnit);
        Assert.Equal(1u, Match(config, ("k", "")).Policy.RequestsPerUnit);
        // A pattern taken literally is an exact hit, as in the reference.
        Assert.Equal(3u, Match(config, ("k", "ab*")).Policy.RequestsPerUnit);
    }

    [Fact]
    public void LimitOnlyOnTheLastEntrysNode()
    {
        var config = Load("""
            domain: test-domain
            descriptors:
              - key: a
                rate_limit:
                  unit: second
                  requests_per_unit: 1
                descriptors:
                  - key: b
                    value: x
            """);

        Assert.Equal(1u, Match(config, ("a", "1")).Policy.RequestsPerUnit);
        AssertNoLimit(config, ("a", "1"), ("b", "x"));
        AssertNoLimit(config, ("a", "1"), ("b", "y"));
        AssertNoLimit(config, ("a", "1"), ("b", "x"), ("c", "z"));
    }

    [Fact]
    public void KeyValuePairs_DoNotCollide()
    {
        var config = Load("""
            domain: test-domain
            descriptors:
              - key: a_b
                value: c
                rate_limit:
                  unit: second
                  requests_per_unit: 1
              - key: a
                value: b_c
                rate_limit:
                  unit: second
                  requests_per_unit: 2
            """);

        var first = Match(config, ("a_b", "c"));
        var second = Match(config, ("a", "b_c"));

        Assert.Equal(1u, first.Policy.RequestsPerUnit);
        Assert.Equal(2u, second.Policy.RequestsPerUnit);
        Assert.NotSame(first.Policy, second.Policy);
        AssertNoLimit(config, ("a", "b"));
        AssertNoLimit(config, ("a_b_c", ""));
    }

    [Fact]
    public void EmptyValues()
    {
        // Envoy Gateway's generated config: an empty value is a per-value default.
        var config = Load("""
            domain: test-domain
            descriptors:
              - key: masked_remote_address
                value: 192.168.0.0/16
                descriptors:
                  - key: remote_address
                    value: ""
                    rate_limit:
                      unit: second
                      requests_per_unit: 5
              - key: empty
                value: "*"
                rate_limit:
                  unit: second
                  requests_per_unit: 7
            """);

        var match = Match(config, ("masked_remote_address", "192.168.0.0/16"), ("remote_address", "10.1.2.3"));
        Assert.Equal("test-domain.masked_remote_address_192.168.0.0/16.remote_address", match.MetricPath);
        Assert.Equal(5u, Match(config, ("masked_remote_address", "192.168.0.0/16"), ("remote_address", "")).Policy.RequestsPerUnit);
        Assert.Equal(7u, Match(config, ("empty", "")).Policy.RequestsPerUnit);
        AssertNoLimit(config, ("masked_remote_address", ""), ("remote_address", "10.1.2.3"));
    }

    [Fact]
    public void ReplacesData_IsExposed()
    {
        var config = Load("""
            domain: test-domain
            descriptors:
              - key: tenant
                rate_limit:
                  name: per-tenant
                  unit: minute
                  requests_per_unit: 100
              - key: vip
                rate_limit:
                  unit: minute
                  requests_per_unit: 1000
                  replaces:
                    - name: per-tenant
            """);

        Assert.True(config.HasReplaces);
        Assert.Equal("per-tenant", Match(config, ("tenant", "t1")).Policy.Name);
        Assert.Equal(["per-tenant"], Match(config, ("vip", "yes")).Policy.Replaces);
    }

    [Fact]
    public void ShareThreshold_Basic()
    {
        var config = Load(ShareThreshold);

        var first = Match(config, ("files", "files/a.txt"));
        var second = Match(config, ("files", "files/b.txt"));

        AssertLimit(first, 100, LimitUnit.Minute, "test-domain.files_files/*");
        Assert.Equal([new("files", "files/*")], first.CounterEntries!);
        Assert.Equal(first.CounterEntries, second.CounterEntries);
        Assert.Equal("test-domain.files_files/*", second.MetricPath);
    }

    [Fact]
    public void ShareThreshold_Nested()
    {
        var config = Load(ShareThreshold);

        var match = Match(config, ("nested", "parent"), ("files", "nested/x"));

        AssertLimit(match, 200, LimitUnit.Minute, "test-domain.nested_parent.files_nested/*");
        Assert.Equal([new("nested", "parent"), new("files", "nested/*")], match.CounterEntries!);
    }

    [Fact]
    public void ShareThreshold_SameKeyAtTwoLevels_IsPerLevel()
    {
        var match = Match(Load(ShareThreshold), ("files", "top/1"), ("files", "nested/2"));

        AssertLimit(match, 300, LimitUnit.Minute, "test-domain.files_top/*.files_nested/*");
        Assert.Equal([new("files", "top/*"), new("files", "nested/*")], match.CounterEntries!);
    }

    [Fact]
    public void ShareThreshold_OnAnIntermediateLevel_AndPriorityOverValueToMetric()
    {
        var match = Match(Load(ShareThreshold), ("route", "api/v1"), ("method", "GET"));

        AssertLimit(match, 60, LimitUnit.Minute, "test-domain.route_api/*.method");
        Assert.Equal([new("route", "api/*"), new("method", "GET")], match.CounterEntries!);
    }

    [Fact]
    public void ShareThreshold_WithDetailedMetric()
    {
        var match = Match(Load(ShareThreshold), ("service", "svc/users"), ("endpoint", "list"));

        AssertLimit(match, 80, LimitUnit.Minute, "test-domain.service_svc/*.endpoint_list");
        Assert.Equal([new("service", "svc/*"), new("endpoint", "list")], match.CounterEntries!);
    }

    [Fact]
    public void ShareThreshold_MixedLevels()
    {
        var match = Match(Load(ShareThreshold), ("path", "path/a"), ("file", "file/b"), ("type", "pdf"));

        AssertLimit(match, 120, LimitUnit.Minute, "test-domain.path_path/*.file_file/*.type");
        // Only the share_threshold level shares; file/b keeps its own counter.
        Assert.Equal([new("path", "path/*"), new("file", "file/b"), new("type", "pdf")], match.CounterEntries!);
    }

    [Fact]
    public void ShareThreshold_ExplicitValueWins()
    {
        var config = Load(ShareThreshold);

        var exact = Match(config, ("file", "test1"));
        var wild = Match(config, ("file", "test2"));

        AssertLimit(exact, 50, LimitUnit.Minute, "test-domain.file_test1");
        Assert.Null(exact.CounterEntries);
        AssertLimit(wild, 100, LimitUnit.Minute, "test-domain.file_test*");
        Assert.Equal([new("file", "test*")], wild.CounterEntries!);
    }

    [Fact]
    public void ShareThreshold_MiddleAndMultipleWildcards()
    {
        var config = Load(ShareThreshold);

        var middle = Match(config, ("midpath", "/api/users/v1"));
        Assert.Equal("test-domain.midpath_/api*v1", middle.MetricPath);
        Assert.Equal([new("midpath", "/api*v1")], middle.CounterEntries!);
        AssertNoLimit(config, ("midpath", "/api/users/v2"));

        var multiple = Match(config, ("multiroute", "svc-a-ep-b-rpc"));
        Assert.Equal("test-domain.multiroute_svc*ep*rpc", multiple.MetricPath);
        Assert.Equal([new("multiroute", "svc*ep*rpc")], multiple.CounterEntries!);

        var withValueToMetric = Match(config, ("midroute", "/api/x/v2"));
        Assert.Equal("test-domain.midroute_/api*v2", withValueToMetric.MetricPath);
    }

    [Fact]
    public void ValueToMetric_WritesThatLevelsValue()
    {
        var config = Load("""
            domain: example10
            descriptors:
              - key: route
                value: api
                descriptors:
                  - key: http_method
                    value_to_metric: true
                    descriptors:
                      - key: subject_id
                        rate_limit:
                          unit: minute
                          requests_per_unit: 60
              - key: wild
                value: foo*
                value_to_metric: true
                rate_limit:
                  unit: minute
                  requests_per_unit: 10
              - key: plain
                value: fixed
                value_to_metric: true
                rate_limit:
                  unit: minute
                  requests_per_unit: 10
            """);

        var nested = config.Match("example10", Descriptor(("route", "api"), ("http_method", "GET"), ("subject_id", "alice")))!.Value;
        Assert.Equal("example10.route_api.http_method_GET.subject_id", nested.MetricPath);
        Assert.Equal("example10.route_api.http_method.subject_id", nested.Policy.MetricPath);
        Assert.Null(nested.CounterEntries);

        Assert.Equal("example10.wild_foo42", config.Match("example10", Descriptor(("wild", "foo42")))!.Value.MetricPath);
        var plain = config.Match("example10", Descriptor(("plain", "fixed")))!.Value;
        Assert.Same(plain.Policy.MetricPath, plain.MetricPath);
    }

    [Fact]
    public void DetailedMetric_WinsOverValueToMetric()
    {
        var config = Load("""
            domain: d
            descriptors:
              - key: a
                value_to_metric: true
                descriptors:
                  - key: b
                    detailed_metric: true
                    rate_limit:
                      unit: second
                      requests_per_unit: 1
            """);

        Assert.Equal("d.a_1.b_2", config.Match("d", Descriptor(("a", "1"), ("b", "2")))!.Value.MetricPath);
    }

    [Fact]
    public void Override_BypassesTheTree()
    {
        var descriptor = Descriptor(("key1", "value1"), ("subkey1", "something"));
        descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 10, Unit = OverrideUnit.Day };

        var match = BasicConfig.Match("test-domain", descriptor)!.Value;

        Assert.True(match.Policy.IsOverride);
        Assert.Equal("test-domain.key1.subkey1", match.MetricPath);
        Assert.Equal("key1.subkey1", match.Policy.RulePath);
        Assert.Equal(10u, match.Policy.CurrentLimit.RequestsPerUnit);
        Assert.Equal(ProtoUnit.Day, match.Policy.CurrentLimit.Unit);
        Assert.False(match.Policy.ShadowMode);
        Assert.Null(match.Policy.Name);
        Assert.Null(match.CounterEntries);
    }

    [Fact]
    public void Override_MetricPathNamesTheKeysOnly_WhateverTheLimitAndTheValues()
    {
        var first = Descriptor(("key1", "value1"), ("subkey1", "something"));
        first.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 42, Unit = OverrideUnit.Hour };
        var other = Descriptor(("key1", "value1"), ("subkey1", "something_else"));
        other.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 7, Unit = OverrideUnit.Second };

        var match = BasicConfig.Match("test-domain", first)!.Value;

        // The reference writes test-domain.key1_value1.subkey1_something: a series per client when plans travel with requests.
        Assert.Equal("test-domain.key1.subkey1", match.MetricPath);
        Assert.Equal(42u, match.Policy.RequestsPerUnit);
        Assert.Equal(LimitUnit.Hour, match.Policy.Unit);
        Assert.Equal("test-domain.key1.subkey1", BasicConfig.Match("test-domain", other)!.Value.MetricPath);
    }

    [Fact]
    public void Override_AppliesEvenWhereTheTreeHasNoLimit()
    {
        var descriptor = Descriptor(("nowhere", ""), ("k", "v"));
        descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 3, Unit = OverrideUnit.Second };

        Assert.Equal("test-domain.nowhere.k", BasicConfig.Match("test-domain", descriptor)!.Value.MetricPath);
    }

    [Fact]
    public void Override_KeepsTheValuesWhereTheRuleTheEntriesMatchAsksForThem()
    {
        var config = Load("""
            domain: d
            descriptors:
              - key: tenant
                descriptors:
                  - key: client
                    value_to_metric: true
                    rate_limit: { unit: second, requests_per_unit: 1 }
              - key: user
                detailed_metric: true
                rate_limit: { unit: second, requests_per_unit: 1 }
              - key: plain
                rate_limit: { unit: second, requests_per_unit: 1 }
            """);
        RateLimitDescriptor WithOverride(params (string Key, string Value)[] entries)
        {
            var descriptor = Descriptor(entries);
            descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 5, Unit = OverrideUnit.Minute };
            return descriptor;
        }

        var valueToMetric = config.Match("d", WithOverride(("tenant", "acme"), ("client", "c1")))!.Value;
        var detailed = config.Match("d", WithOverride(("user", "alice")))!.Value;
        var plain = config.Match("d", WithOverride(("plain", "x")))!.Value;

        Assert.Equal("d.tenant.client_c1", valueToMetric.MetricPath);
        Assert.Equal(5u, valueToMetric.Policy.RequestsPerUnit); // still the override's limit
        Assert.Equal("d.user_alice", detailed.MetricPath);
        Assert.Equal("d.plain", plain.MetricPath);
        Assert.Same(plain.Policy.MetricPath, plain.MetricPath);
    }

    [Fact]
    public void Override_NeedsAKnownDomain()
    {
        var descriptor = Descriptor(("key1", "value1"));
        descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 10, Unit = OverrideUnit.Day };

        Assert.Null(BasicConfig.Match("foo_domain", descriptor));
    }

    [Fact]
    public void Override_WithUnknownUnit_HasNoLimit()
    {
        var descriptor = Descriptor(("key2", "value2"));
        descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 10, Unit = OverrideUnit.Unknown };

        Assert.Null(BasicConfig.Match("test-domain", descriptor));
        Assert.Throws<ArgumentException>(() => RateLimitPolicy.ForOverride("test-domain", descriptor));
    }

    [Fact]
    public void Match_WithoutRuntimeValues_DoesNotAllocate()
    {
        var config = Load(Wildcards);
        // As the service matches: the descriptors read from the wire.
        var exact = RlsDescriptor.From(Descriptor(("nestedWild", "val1"), ("wild", "goo2")));
        var none = RlsDescriptor.From(Descriptor(("wild", "bar")));
        for (var i = 0; i < 100; i++)
        {
            config.Match("test-domain", exact);
            config.Match("test-domain", none);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            config.Match("test-domain", exact);
            config.Match("test-domain", none);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void DomainWithoutDescriptors_IsKnown()
    {
        var config = Load("domain: empty\n");

        Assert.True(config.HasDomain("empty"));
        Assert.Null(config.Match("empty", Descriptor(("k", "v"))));
        var descriptor = Descriptor(("k", "v"));
        descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 1, Unit = OverrideUnit.Minute };
        Assert.NotNull(config.Match("empty", descriptor));
    }
}
