using Legate.Hosting.Rules;
using Legate.RateLimit.Config;
using static Legate.RateLimit.Tests.Config.ConfigFixtures;

namespace Legate.RateLimit.Tests.Config;

/// <summary>Validation: envoyproxy/ratelimit's test/config cases with its messages, and Legate's own checks.</summary>
public sealed class RateLimitConfigLoaderTests
{
    private static void AssertError(RulesException error, int line, string field, string problem)
    {
        Assert.Equal(problem, error.Problem);
        Assert.Equal(line, error.Line);
        Assert.Equal(field, error.Field);
        Assert.Equal("config.yaml", error.File);
        Assert.StartsWith($"config.yaml:{line}:", error.Message, StringComparison.Ordinal);
        Assert.EndsWith($"{field}: {problem}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Basic_Loads()
    {
        var config = Load(Basic);

        Assert.Equal(["test-domain"], config.Domains);
        Assert.True(config.HasDomain("test-domain"));
        Assert.False(config.HasDomain("foo_domain"));
        Assert.Equal(10, config.Policies.Count);
        Assert.False(config.HasReplaces);
    }

    [Fact]
    public void EmptyDomain_IsRejected()
    {
        var error = LoadError("""
            domain: ""
            descriptors:
              - key: foo
            """);

        AssertError(error, 1, "domain", "config file cannot have empty domain");
    }

    [Fact]
    public void MissingDomain_IsRejected()
    {
        var error = LoadError("""
            descriptors:
              - key: foo
            """);

        AssertError(error, 1, "domain", "config file cannot have empty domain");
    }

    [Fact]
    public void DuplicateDomain_IsRejected_UnlessMerging()
    {
        const string Other = """
            # the same domain again
            domain: test-domain
            descriptors:
              - key: other
                rate_limit:
                  unit: second
                  requests_per_unit: 1
            """;

        var error = Assert.Throws<RulesException>(() => Load(false, ("basic.yaml", Basic), ("duplicate_domain.yaml", Other)));

        Assert.Equal("duplicate domain 'test-domain' in config file", error.Problem);
        Assert.Equal("duplicate_domain.yaml", error.File);
        Assert.Equal(2, error.Line);
        Assert.Equal("duplicate_domain.yaml:2:9: domain: duplicate domain 'test-domain' in config file", error.Message);

        var merged = Load(true, ("basic.yaml", Basic), ("duplicate_domain.yaml", Other));
        Assert.Equal(["test-domain"], merged.Domains);
        Assert.Equal(1u, merged.Match("test-domain", Descriptor(("other", "x")))!.Value.Policy.RequestsPerUnit);
        Assert.Equal(20u, merged.Match("test-domain", Descriptor(("key2", "x")))!.Value.Policy.RequestsPerUnit);
    }

    [Fact]
    public void EmptyKey_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                value: value1
                descriptors:
                  - value: subvalue1
                    rate_limit:
                      unit: second
                      requests_per_unit: 5
            """);

        AssertError(error, 6, "descriptors[0].descriptors[0].key", "descriptor has empty key");
    }

    [Fact]
    public void ExplicitlyEmptyKey_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: ""
            """);

        AssertError(error, 3, "descriptors[0].key", "descriptor has empty key");
    }

    [Fact]
    public void DuplicateKey_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                value: value1
                rate_limit:
                  unit: second
                  requests_per_unit: 5
              - key: key1
                value: value1
                rate_limit:
                  unit: minute
                  requests_per_unit: 5
            """);

        AssertError(error, 8, "descriptors[1]", "duplicate descriptor composite key 'test-domain.key1_value1'");
    }

    [Fact]
    public void DuplicateDefault_IsRejected_EvenWithAnEmptyValue()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                descriptors:
                  - key: sub
                  - key: sub
                    value: ""
            """);

        AssertError(error, 6, "descriptors[0].descriptors[1]", "duplicate descriptor composite key 'test-domain.key1.sub'");
    }

    [Fact]
    public void DuplicateKey_AcrossMergedFiles_IsRejected()
    {
        const string Key1 = """
            domain: test-domain
            descriptors:
              - key: key1
                value: value1
                rate_limit:
                  unit: minute
                  requests_per_unit: 10
            """;

        var error = Assert.Throws<RulesException>(() => Load(true, ("merge_domain_key1.yaml", Key1), ("merge_domain_key1_again.yaml", Key1)));

        Assert.Equal("merge_domain_key1_again.yaml", error.File);
        Assert.Equal(3, error.Line);
        Assert.Equal("duplicate descriptor composite key 'test-domain.key1_value1'", error.Problem);
    }

    [Fact]
    public void BadLimitUnit_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: foo
                  requests_per_unit: 5
            """);

        AssertError(error, 5, "descriptors[0].rate_limit.unit", "invalid rate limit unit 'foo'");
    }

    [Fact]
    public void MissingLimitUnit_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  requests_per_unit: 5
            """);

        AssertError(error, 4, "descriptors[0].rate_limit.unit", "invalid rate limit unit ''");
    }

    [Fact]
    public void UnknownIsNotAUnit()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: unknown
                  requests_per_unit: 5
            """);

        AssertError(error, 5, "descriptors[0].rate_limit.unit", "invalid rate limit unit 'unknown'");
    }

    [Fact]
    public void UnlimitedWithUnit_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unlimited: true
                  unit: second
            """);

        AssertError(error, 6, "descriptors[0].rate_limit.unit", "should not specify rate limit unit when unlimited");
    }

    [Fact]
    public void UnlimitedWithAnInvalidUnit_IsAccepted_LikeTheReference()
    {
        var config = Load("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unlimited: true
                  unit: fortnight
            """);

        var policy = config.Match("test-domain", Descriptor(("key1", "x")))!.Value.Policy;
        Assert.True(policy.Unlimited);
        Assert.Equal(LimitUnit.Unknown, policy.Unit);
    }

    [Fact]
    public void ReplacesSelf_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  name: self
                  unit: second
                  requests_per_unit: 5
                  replaces:
                    - name: other
                    - name: self
            """);

        AssertError(error, 10, "descriptors[0].rate_limit.replaces[1].name", "replaces should not contain name of same descriptor");
    }

    [Fact]
    public void ReplacesEmpty_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  name: one
                  unit: second
                  requests_per_unit: 5
                  replaces:
                    - name: ""
            """);

        AssertError(error, 9, "descriptors[0].rate_limit.replaces[0].name", "should not have an empty replaces entry");
    }

    [Fact]
    public void ReplacesEntryWithoutName_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: second
                  requests_per_unit: 5
                  replaces:
                    - {}
            """);

        AssertError(error, 8, "descriptors[0].rate_limit.replaces[0].name", "should not have an empty replaces entry");
    }

    [Fact]
    public void BadYaml_IsRejected_WithItsPosition()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors: "unterminated
            """);

        // YamlDotNet's words after the reference's prefix: "While scanning a quoted scalar, found unexpected end of stream."
        Assert.StartsWith("error loading config file: ", error.Problem, StringComparison.Ordinal);
        Assert.Contains("unexpected end of stream", error.Problem, StringComparison.Ordinal);
        Assert.Equal(2, error.Line);
        Assert.Equal("config.yaml", error.File);
    }

    [Fact]
    public void MisspelledKey_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                ratelimit:
                  unit: second
                  requests_per_unit: 5
            """);

        AssertError(error, 4, "descriptors[0].ratelimit", "config error, unknown key 'ratelimit'");
    }

    [Fact]
    public void MisspelledKeyInRateLimit_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: second
                  requestsperunit: 5
            """);

        AssertError(error, 6, "descriptors[0].rate_limit.requestsperunit", "config error, unknown key 'requestsperunit'");
    }

    [Fact]
    public void UnknownTopLevelKey_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            ratelimit: 5
            """);

        AssertError(error, 2, "ratelimit", "config error, unknown key 'ratelimit'");
    }

    [Fact]
    public void KeyInTheWrongPlace_IsRejected()
    {
        // The reference's whitelist is global and would ignore this; Legate checks keys per level.
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                unit: second
            """);

        AssertError(error, 4, "descriptors[0].unit", "config error, unknown key 'unit'");
    }

    [Fact]
    public void NonStringKey_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                0.25: foo
            """);

        AssertError(error, 4, "descriptors[0]", "config error, key is not of type string: 0.25");
    }

    [Fact]
    public void NonMapList_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - a
            """);

        AssertError(error, 3, "descriptors[0]", "config error, yaml file contains list of type other than map: a");
    }

    [Fact]
    public void ShareThresholdWithoutWildcard_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: files
                value: files/a
                share_threshold: true
                rate_limit:
                  unit: minute
                  requests_per_unit: 100
            """);

        AssertError(error, 5, "descriptors[0].share_threshold",
            "share_threshold can only be used with wildcard values (containing '*'), but found key 'files_files/a'");
    }

    [Fact]
    public void ShareThresholdOnKeyOnlyRule_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: files
                share_threshold: true
            """);

        AssertError(error, 4, "descriptors[0].share_threshold",
            "share_threshold can only be used with wildcard values (containing '*'), but found key 'files'");
    }

    [Fact]
    public void MetadataThatIsNotAMap_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                metadata: just a string
            """);

        AssertError(error, 4, "descriptors[0].metadata", "error parsing metadata: expected a mapping, found 'just a string'");
    }

    [Theory]
    [InlineData("value: 1.5")]
    [InlineData("value: 1e3")]
    [InlineData("value: .inf")]
    [InlineData("shadow_mode: 0.5")]
    [InlineData("quota_mode: 1.0")]
    public void FloatLeaf_IsRejected(string line)
    {
        var error = LoadError($$"""
            domain: test-domain
            descriptors:
              - key: key1
                {{line}}
            """);

        Assert.Equal("error checking config", error.Problem);
        Assert.Equal(4, error.Line);
    }

    [Fact]
    public void FloatRequestsPerUnit_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: second
                  requests_per_unit: 1.5
            """);

        AssertError(error, 6, "descriptors[0].rate_limit.requests_per_unit", "error checking config");
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("4294967296")]
    [InlineData("many")]
    [InlineData("\"5\"")]
    [InlineData("true")]
    public void InvalidRequestsPerUnit_IsRejected(string value)
    {
        var error = LoadError($$"""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: second
                  requests_per_unit: {{value}}
            """);

        Assert.Equal(6, error.Line);
        Assert.Equal("descriptors[0].rate_limit.requests_per_unit", error.Field);
        Assert.StartsWith("error loading config file: expected a whole number from 0 to 4294967295, found '", error.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("4294967295", 4294967295u)]
    [InlineData("0", 0u)]
    [InlineData("1_000", 1000u)]
    [InlineData("0x10", 16u)]
    [InlineData("~", 0u)]
    public void RequestsPerUnit_ReadsLikeTheReference(string value, uint expected)
    {
        var config = Load($$"""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: second
                  requests_per_unit: {{value}}
            """);

        Assert.Equal(expected, config.Policies[0].RequestsPerUnit);
    }

    [Fact]
    public void UnknownAlgorithm_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                rate_limit:
                  unit: second
                  requests_per_unit: 5
                  algorithm: token_bucket
            """);

        AssertError(error, 7, "descriptors[0].rate_limit.algorithm",
            "invalid rate limit algorithm 'token_bucket', expected 'fixed_window' or 'sliding_window'");
    }

    [Fact]
    public void BoolThatIsNotABool_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                shadow_mode: "true"
            """);

        AssertError(error, 4, "descriptors[0].shadow_mode", "error loading config file: expected true or false, found 'true'");
    }

    [Fact]
    public void DuplicateYamlKey_IsRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              - key: key1
                key: key2
            """);

        Assert.Equal(4, error.Line);
        Assert.StartsWith("error loading config file: ", error.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("value: 18446744073709551616")]
    [InlineData("value: 9223372036854775808")]
    [InlineData("value: 08")]
    public void NumbersTheReferenceReadsAsFloatsOrUnsigned_AreRejected(string line)
    {
        var error = LoadError($$"""
            domain: test-domain
            descriptors:
              - key: key1
                {{line}}
            """);

        Assert.Equal("error checking config", error.Problem);
    }

    [Fact]
    public void DescriptorsThatAreNotAList_AreRejected()
    {
        var error = LoadError("""
            domain: test-domain
            descriptors:
              key: key1
            """);

        AssertError(error, 3, "descriptors", "error loading config file: expected a list, found a mapping");
    }

    [Fact]
    public void RootThatIsNotAMapping_IsRejected()
    {
        var error = LoadError("""
            - domain: test-domain
            """);

        Assert.Equal(1, error.Line);
        Assert.Equal("error loading config file: expected a mapping with 'domain' and 'descriptors', found a list", error.Problem);
    }

    [Theory]
    [InlineData("")]
    [InlineData("# nothing but a comment\n")]
    [InlineData("---\n")]
    public void EmptyFile_IsRefused_AsByTheReference(string yaml)
    {
        // So a file caught half-written on a reload keeps the last good rules instead of dropping its domain.
        var error = Assert.Throws<RulesException>(() => Load(false, ("empty.yaml", yaml), ("basic.yaml", Basic)));

        Assert.Equal("empty.yaml", error.File);
        Assert.Equal("config file cannot have empty domain (the file holds no document)", error.Problem);
    }

    [Fact]
    public void AnEmptyDocumentBetweenOthers_IsSkipped()
    {
        var config = Load(false, ("two.yaml", "---\n---\n" + Basic));

        Assert.Equal(["test-domain"], config.Domains);
    }

    [Fact]
    public void StructureIsCheckedInEveryFileBeforeAnyIsLoaded()
    {
        // As in the reference: the unknown key in the second file wins over the empty domain of the first.
        var error = Assert.Throws<RulesException>(() => Load(false,
            ("a.yaml", "domain: \"\"\n"),
            ("b.yaml", "domain: b\nratelimit: 1\n")));

        Assert.Equal("b.yaml", error.File);
        Assert.Equal("config error, unknown key 'ratelimit'", error.Problem);
    }

    [Theory]
    [InlineData("second", LimitUnit.Second)]
    [InlineData("SECOND", LimitUnit.Second)]
    [InlineData("Minute", LimitUnit.Minute)]
    [InlineData("hOuR", LimitUnit.Hour)]
    [InlineData("day", LimitUnit.Day)]
    [InlineData("week", LimitUnit.Week)]
    [InlineData("month", LimitUnit.Month)]
    [InlineData("year", LimitUnit.Year)]
    public void Units_AreCaseInsensitive(string text, LimitUnit unit)
    {
        var config = Load($$"""
            domain: d
            descriptors:
              - key: k
                rate_limit:
                  unit: {{text}}
                  requests_per_unit: 1
            """);

        Assert.Equal(unit, config.Policies[0].Unit);
        Assert.Equal(unit.ToProto(), config.Policies[0].CurrentLimit.Unit);
    }

    [Fact]
    public void RuleFields_AreLoaded()
    {
        var config = Load("""
            domain: d
            descriptors:
              - key: k
                value: v
                shadow_mode: true
                quota_mode: yes
                detailed_metric: on
                metadata:
                  team: edge
                  weight: 1.5
                  count: 3
                  enabled: true
                  nothing: ~
                  quoted: "7"
                  tags: [a, 2]
                  nested: {x: y, z: w}
                  big: 0xFFFFFFFFFFFFFFFF
                rate_limit:
                  unit: hour
                  requests_per_unit: 0
                  name: per-k
                  algorithm: Sliding_Window
                  replaces:
                    - name: other
                    - name: another
            """);

        var policy = Assert.Single(config.Policies);
        Assert.Equal("d", policy.Domain);
        Assert.Equal("k_v", policy.RulePath);
        Assert.Equal("d.k_v", policy.MetricPath);
        Assert.Equal("per-k", policy.Name);
        Assert.Equal(LimitUnit.Hour, policy.Unit);
        Assert.Equal(0u, policy.RequestsPerUnit);
        Assert.False(policy.Unlimited);
        Assert.True(policy.ShadowMode);
        Assert.True(policy.QuotaMode);
        Assert.True(policy.DetailedMetric);
        Assert.False(policy.IsOverride);
        Assert.Equal(LimitAlgorithm.SlidingWindow, policy.Algorithm);
        Assert.Equal(["other", "another"], policy.Replaces);
        Assert.True(config.HasReplaces);
        Assert.Equal(0u, policy.CurrentLimit.RequestsPerUnit);
        Assert.Equal("per-k", policy.CurrentLimit.Name);
        Assert.Equal("edge", policy.Metadata["team"]);
        Assert.Equal(1.5, policy.Metadata["weight"]);
        Assert.Equal(3L, policy.Metadata["count"]);
        Assert.Equal(true, policy.Metadata["enabled"]);
        Assert.Null(policy.Metadata["nothing"]);
        Assert.Equal("7", policy.Metadata["quoted"]);
        Assert.Equal(["a", 2L], Assert.IsAssignableFrom<IReadOnlyList<object?>>(policy.Metadata["tags"]));
        var nested = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(policy.Metadata["nested"]);
        Assert.Equal(true, nested["x"]); // YAML 1.1, as the reference reads it: y is true
        Assert.Equal("w", nested["z"]);
        Assert.Equal((double)ulong.MaxValue, policy.Metadata["big"]);
    }

    [Fact]
    public void Defaults_AreTheReferences()
    {
        var config = Load("""
            domain: d
            descriptors:
              - key: k
                rate_limit:
                  unit: second
            """);

        var policy = Assert.Single(config.Policies);
        Assert.Equal(0u, policy.RequestsPerUnit);
        Assert.Null(policy.Name);
        Assert.Equal("", policy.CurrentLimit.Name);
        Assert.Empty(policy.Replaces);
        Assert.Empty(policy.Metadata);
        Assert.False(policy.ShadowMode);
        Assert.False(policy.QuotaMode);
        Assert.Equal(LimitAlgorithm.FixedWindow, policy.Algorithm);
    }

    [Fact]
    public void LeafValues_AreTheirText()
    {
        var config = Load("""
            domain: 42
            descriptors:
              - key: true
                value: 0755
                rate_limit:
                  unit: second
                  requests_per_unit: 1
            """);

        Assert.Equal(["42"], config.Domains);
        Assert.NotNull(config.Match("42", Descriptor(("true", "0755"))));
    }

    [Fact]
    public void Describe_ListsEveryRule()
    {
        var text = Load(Basic).Describe();

        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(10, lines.Length);
        Assert.Equal("test-domain.key1_value1.subkey1: unit=SECOND requests_per_unit=5 unlimited=false shadow_mode=false quota_mode=false algorithm=fixed_window", lines[0]);
        Assert.Contains("test-domain.key4: unit=DAY requests_per_unit=1 unlimited=false name=key4_rate_limit shadow_mode=false quota_mode=false algorithm=fixed_window", lines);
        Assert.Contains("test-domain.key6: unit=UNKNOWN requests_per_unit=0 unlimited=true shadow_mode=false quota_mode=false algorithm=fixed_window", lines);
        Assert.Equal("", RateLimitConfig.Empty.Describe());
    }
    // go-yaml v2, which the reference reads its files with, applies YAML merge keys: a shared rate limit written once
    // and merged into other rules is a common way to keep a config short.
    [Fact]
    public void MergeKeys_CopyTheNamedMapping_AsTheReferenceReadsThem()
    {
        var config = Load("""
            domain: d
            descriptors:
              - key: a
                rate_limit: &per_minute
                  unit: minute
                  requests_per_unit: 5
              - key: b
                rate_limit:
                  <<: *per_minute
                  requests_per_unit: 7
              - &c
                key: c
                shadow_mode: true
                rate_limit: *per_minute
              - <<: *c
                value: special
                rate_limit:
                  <<: *per_minute
                  name: special
            """);

        var b = config.Match("d", Descriptor(("b", "x")))!.Value.Policy;
        Assert.Equal((LimitUnit.Minute, 7u), (b.Unit, b.RequestsPerUnit));
        var c = config.Match("d", Descriptor(("c", "x")))!.Value.Policy;
        Assert.Equal((LimitUnit.Minute, 5u, true), (c.Unit, c.RequestsPerUnit, c.ShadowMode));
        var special = config.Match("d", Descriptor(("c", "special")))!.Value.Policy;
        Assert.Equal((LimitUnit.Minute, 5u, true, "special"), (special.Unit, special.RequestsPerUnit, special.ShadowMode, special.Name));
        Assert.Equal("d.c_special", special.MetricPath);
    }

    [Fact]
    public void MergeKeys_ApplyInOrder_AsGoYamlV2Does()
    {
        // v2 writes a mapping's entries in order, a merge included: a key after "<<" overrides what it merged, one before
        // it is overridden (the YAML spec would keep every explicit key). Of a list of merged mappings the first wins.
        var config = Load("""
            domain: d
            descriptors:
              - key: before
                rate_limit:
                  requests_per_unit: 7
                  <<: {unit: second, requests_per_unit: 1}
              - key: list
                rate_limit:
                  <<: [{unit: hour, requests_per_unit: 2}, {unit: day, requests_per_unit: 3, name: second}]
            """);

        var before = config.Match("d", Descriptor(("before", "x")))!.Value.Policy;
        Assert.Equal((LimitUnit.Second, 1u), (before.Unit, before.RequestsPerUnit));
        var list = config.Match("d", Descriptor(("list", "x")))!.Value.Policy;
        Assert.Equal((LimitUnit.Hour, 2u, "second"), (list.Unit, list.RequestsPerUnit, list.Name));
    }

    [Fact]
    public void MergedKeys_AreValidatedLikeWrittenOnes()
    {
        var error = LoadError("""
            domain: d
            descriptors:
              - key: a
                rate_limit:
                  <<: {unit: minute, requests_per_unit: 5, ratelimit: 1}
            """);

        Assert.Equal("config error, unknown key 'ratelimit'", error.Problem);
        Assert.Equal(5, error.Line);
        Assert.Equal("descriptors[0].rate_limit.ratelimit", error.Field);
    }

    [Theory]
    [InlineData("<<: 5", 5, "descriptors[0].rate_limit.<<", "error loading config file: a merge key (<<) takes a mapping or a list of mappings, found '5'")]
    [InlineData("<<: [{unit: minute}, 5]", 5, "descriptors[0].rate_limit.<<[1]", "error loading config file: a merge key (<<) takes a mapping or a list of mappings, found '5'")]
    [InlineData("\"<<\": {unit: minute}", 5, "descriptors[0].rate_limit.<<", "config error, unknown key '<<'")]
    public void MergeKeyThatIsNotOne_IsRejected(string line, int at, string field, string problem)
    {
        var error = LoadError($"""
            domain: d
            descriptors:
              - key: a
                rate_limit:
                  {line}
            """);

        AssertError(error, at, field, problem);
    }

    [Fact]
    public void MergedRateLimit_AndAWrittenOne_AreMergedFieldByField_AsGoYamlV2Does()
    {
        // The reference decodes into a struct whose rate_limit is a pointer: v2 decodes a second rate_limit into the
        // struct the first one made, so its fields add to (or override) the first one's instead of replacing it whole.
        var config = Load("""
            domain: d
            descriptors:
              - &c
                key: c
                rate_limit: {unit: minute, requests_per_unit: 5}
              - <<: *c
                value: hourly
                rate_limit: {unit: hour}
              - rate_limit: {name: named}
                <<: *c
                value: named
              - <<: *c
                value: more
                rate_limit: {requests_per_unit: 10}
            """);

        var hourly = config.Match("d", Descriptor(("c", "hourly")))!.Value.Policy;
        Assert.Equal((LimitUnit.Hour, 5u), (hourly.Unit, hourly.RequestsPerUnit));
        var named = config.Match("d", Descriptor(("c", "named")))!.Value.Policy;
        Assert.Equal((LimitUnit.Minute, 5u, "named"), (named.Unit, named.RequestsPerUnit, named.Name));
        var more = config.Match("d", Descriptor(("c", "more")))!.Value.Policy;
        Assert.Equal((LimitUnit.Minute, 10u), (more.Unit, more.RequestsPerUnit));
    }

    [Fact]
    public void MergedReplaces_AreReplacedWhole_NotAddedTo()
    {
        // A list is made anew by v2 each time it is decoded, even inside a rate_limit merged field by field.
        var config = Load("""
            domain: d
            descriptors:
              - &c
                key: c
                rate_limit: {unit: minute, requests_per_unit: 5, replaces: [{name: a}]}
              - <<: *c
                value: v
                rate_limit: {replaces: [{name: b}]}
            """);

        var v = config.Match("d", Descriptor(("c", "v")))!.Value.Policy;
        Assert.Equal(["b"], v.Replaces);
    }
}
