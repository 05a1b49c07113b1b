using Legate.Hosting.Rules;

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
    public void EmptyFile_IsAnError()
    {
        var error = Assert.Throws<RulesException>(() => YamlRules.Deserialize<Policy>(new RulesFile("p.yaml", "")));

        Assert.Equal("p.yaml:1:1: the file is empty", error.Message);
    }
}
