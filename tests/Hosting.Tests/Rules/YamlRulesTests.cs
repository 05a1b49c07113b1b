using Legate.Hosting.Rules;
using YamlDotNet.RepresentationModel;

namespace Legate.Hosting.Tests.Rules;

public sealed class YamlRulesTests
{
    private sealed class Policy
    {
        public string Name { get; set; } = "";

        public int RequestsPerUnit { get; set; }
    }

    [Fact]
    public void SnakeCaseKeys_MapToProperties()
    {
        var policy = YamlRules.Deserialize<Policy>(new RulesFile("p.yaml", "name: gold\nrequests_per_unit: 5\n"));

        Assert.Equal("gold", policy.Name);
        Assert.Equal(5, policy.RequestsPerUnit);
    }

    [Fact]
    public void UnknownKey_IsAnErrorWithItsLine()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Deserialize<Policy>(new RulesFile("p.yaml", "name: gold\nrequests_per_hour: 5\n")));

        Assert.Equal("p.yaml", error.File);
        Assert.Equal(2, error.Line);
        Assert.Contains("requests_per_hour", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SyntaxError_NamesLineAndColumn()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", "a: 1\nb: [2, 3\n")));

        Assert.Equal("p.yaml", error.File);
        Assert.NotNull(error.Line);
        Assert.StartsWith("p.yaml:", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("(Line:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DuplicateKey_IsAnError()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Deserialize<Policy>(new RulesFile("p.yaml", "name: a\nname: b\n")));

        Assert.Equal(2, error.Line);
    }

    [Fact]
    public void AliasInsideTheNodeItNames_IsAnErrorAtTheAlias()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", "a: 1\nb: &loop\n  c: [1, *loop]\n")));

        Assert.Equal("p.yaml:3:10: alias *loop is inside the node it names (&loop at line 2), which makes a cycle", error.Message);
    }

    [Fact]
    public void AliasCycleThroughSeveralNodes_IsAnErrorAtTheAlias()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", "a: &a\n  b: &b\n    c: &c\n      d: *a\n")));

        Assert.Equal("p.yaml:4:10: alias *a is inside the node it names (&a at line 1), which makes a cycle", error.Message);
    }

    [Fact]
    public void AliasBeforeItsAnchor_IsAnError()
    {
        // YamlDotNet would resolve these at the end of the document, to a cycle: x → y → x.
        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", "x: &x [*y]\ny: &y [*x]\n")));

        Assert.Equal("p.yaml:1:8: alias *y names no anchor &y before it", error.Message);
    }

    [Fact]
    public void SelfAliasInDeserialize_IsAnError()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Deserialize<Dictionary<string, object>>(new RulesFile("p.yaml", "a: &x [*x]\n")));

        Assert.Equal(1, error.Line);
        Assert.Contains("makes a cycle", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AliasBomb_IsAnErrorAtTheAliasThatCrossesTheLimit()
    {
        var text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + string.Concat(Enumerable.Range(1, 8).Select(i => $"{(char)('a' + i)}: &{(char)('a' + i)} [{string.Join(", ", Enumerable.Repeat($"*{(char)('a' + i - 1)}", 10))}]\n"));

        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", text)));

        Assert.Equal($"aliases expand to more than {YamlGuard.MaxAliasedNodes} nodes", error.Problem);
        Assert.InRange(error.Line!.Value, 2, 9);
    }

    [Fact]
    public void AnchorsUsedAsIntended_StillLoad()
    {
        var stream = YamlRules.Parse(new RulesFile("p.yaml", "std: &std {unit: minute, requests_per_unit: 10}\na: *std\nb: [*std, *std]\nc: &std 5\nd: *std\n"));

        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        Assert.Same(root["std"], root["a"]);
        Assert.Equal("5", ((YamlScalarNode)root["d"]).Value);
    }

    [Fact]
    public void AnchorsAreScopedToTheirDocument()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", "a: &x 1\n---\nb: *x\n")));

        Assert.Equal("p.yaml:3:4: alias *x names no anchor &x before it", error.Message);
    }

    [Fact]
    public void NestingDeeperThanTheLimit_IsAnError()
    {
        var deep = new string('[', YamlGuard.MaxDepth + 1) + new string(']', YamlGuard.MaxDepth + 1);
        YamlRules.Parse(new RulesFile("p.yaml", deep[1..^1]));

        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", deep)));

        Assert.Equal($"p.yaml:1:{YamlGuard.MaxDepth + 1}: nesting is deeper than {YamlGuard.MaxDepth} levels", error.Message);
    }

    [Fact]
    public void NestingThroughAnAlias_CountsWhatTheAliasBringsIn()
    {
        var half = YamlGuard.MaxDepth / 2 + 1;
        var text = $"a: &deep {new string('[', half)}{new string(']', half)}\nb: {new string('[', half)}*deep{new string(']', half)}\n";

        var error = Assert.Throws<RulesException>(() => YamlRules.Parse(new RulesFile("p.yaml", text)));

        Assert.Equal($"alias *deep makes nesting deeper than {YamlGuard.MaxDepth} levels", error.Problem);
        Assert.Equal(2, error.Line);
    }

    [Fact]
    public void EmptyFile_IsAnError()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Deserialize<Policy>(new RulesFile("p.yaml", "")));

        Assert.Equal("p.yaml:1:1: the file is empty", error.Message);
    }
}
