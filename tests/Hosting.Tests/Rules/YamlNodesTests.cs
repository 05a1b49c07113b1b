using System.Collections.Frozen;
using Legate.Hosting.Rules;
using YamlDotNet.RepresentationModel;

namespace Legate.Hosting.Tests.Rules;

public sealed class YamlNodesTests
{
    private static (RulesFile File, YamlMappingNode Root) Parse(string yaml)
    {
        var file = new RulesFile("gateway.yaml", yaml);
        return (file, (YamlMappingNode)YamlRules.Parse(file).Documents[0].RootNode);
    }

    private static string ErrorOf(Action read) => Assert.Throws<RulesException>(read).Message;

    [Fact]
    public void CheckFields_NamesTheUnknownFieldWithItsPositionAndTheExpectedOnes()
    {
        var (file, root) = Parse("routes:\n  - path: /a\n    pth: /b\n");
        var route = (YamlMappingNode)((YamlSequenceNode)YamlNodes.Field(root, "routes")!)[0];

        var message = ErrorOf(() => YamlNodes.CheckFields(file, route, "routes[0]", FrozenSet.Create(StringComparer.Ordinal, "path", "backend")));

        Assert.Equal("gateway.yaml:3:5: routes[0].pth: unknown field (expected one of backend, path)", message);
    }

    [Fact]
    public void CheckFields_AtTheTopLevel_NamesTheFieldAlone()
    {
        var (file, root) = Parse("listenrs: []\n");

        var message = ErrorOf(() => YamlNodes.CheckFields(file, root, "", FrozenSet.Create(StringComparer.Ordinal, "listeners")));

        Assert.StartsWith("gateway.yaml:1:1: listenrs: unknown field", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("250ms", 250)]
    [InlineData("30s", 30_000)]
    [InlineData("5m", 300_000)]
    [InlineData("1h", 3_600_000)]
    public void Duration_ReadsWholeNumbersWithAUnit(string text, long milliseconds)
    {
        var (file, root) = Parse($"timeout: {text}\n");

        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), YamlNodes.Duration(file, YamlNodes.Field(root, "timeout")!, "timeout"));
    }

    [Theory]
    [InlineData("30")]
    [InlineData("1.5s")]
    [InlineData("-1s")]
    [InlineData("s")]
    [InlineData("10d")]
    public void Duration_RejectsOtherShapes(string text)
    {
        var (file, root) = Parse($"timeout: {text}\n");

        var message = ErrorOf(() => YamlNodes.Duration(file, YamlNodes.Field(root, "timeout")!, "timeout"));

        Assert.Equal($"gateway.yaml:1:10: timeout: '{text}' is not a duration (e.g. 250ms, 30s, 5m, 1h)", message);
    }

    [Fact]
    public void Bool_AcceptsOnlyTrueAndFalse()
    {
        var (file, root) = Parse("a: true\nb: yes\n");

        Assert.True(YamlNodes.Bool(file, YamlNodes.Field(root, "a")!, "a"));
        Assert.Equal("gateway.yaml:2:4: b: is true or false", ErrorOf(() => YamlNodes.Bool(file, YamlNodes.Field(root, "b")!, "b")));
    }

    [Fact]
    public void Strings_TakesASingleValueOrAList_AndRejectsEmptyItems()
    {
        var (file, root) = Parse("one: a\nmany: [a, b]\nbad: [a, '']\n");

        Assert.Equal(["a"], YamlNodes.Strings(file, YamlNodes.Field(root, "one")!, "one").Select(s => s.Value));
        Assert.Equal(["a", "b"], YamlNodes.Strings(file, YamlNodes.Field(root, "many")!, "many").Select(s => s.Value));
        Assert.Equal("gateway.yaml:3:10: bad: an item is not a non-empty string", ErrorOf(() => YamlNodes.Strings(file, YamlNodes.Field(root, "bad")!, "bad")));
    }

    [Fact]
    public void WholeNumber_ChecksTheRange()
    {
        var (file, root) = Parse("port: 70000\nname: x\n");

        Assert.Equal("gateway.yaml:1:7: port: must be between 1 and 65535",
            ErrorOf(() => YamlNodes.WholeNumber(file, YamlNodes.Field(root, "port")!, "port", 1, 65535)));
        Assert.Equal("gateway.yaml:2:7: name: 'x' is not a whole number",
            ErrorOf(() => YamlNodes.WholeNumber(file, YamlNodes.Field(root, "name")!, "name")));
    }

    [Fact]
    public void NamedMaps_RequiresAMappingPerName_AndTreatsNullAsNone()
    {
        var (file, root) = Parse("none:\ntenants:\n  acme: {plan: free}\n  beta: 3\n");

        Assert.Empty(YamlNodes.NamedMaps(file, YamlNodes.Field(root, "none")!, "none"));
        var message = ErrorOf(() => _ = YamlNodes.NamedMaps(file, YamlNodes.Field(root, "tenants")!, "tenants").ToList());
        Assert.Equal("gateway.yaml:4:9: tenants.beta: is a mapping", message);
    }

    [Fact]
    public void RelativeTo_ResolvesAgainstTheFilesFolder()
    {
        var file = new RulesFile(Path.Combine("/etc", "legate", "policies.yaml"), "");

        Assert.Equal(Path.GetFullPath("/etc/legate/keys.yaml"), YamlNodes.RelativeTo(file, "keys.yaml"));
        Assert.Equal(Path.GetFullPath("/srv/keys.yaml"), YamlNodes.RelativeTo(file, "/srv/keys.yaml"));
    }
}
