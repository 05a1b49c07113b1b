using Legate.Authz.ApiKeys;
using Legate.Hosting.Rules;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Prometheus;

namespace Legate.Authz.Tests.ApiKeys;

public sealed class FileApiKeyStoreTests : IDisposable
{
    private const string Hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    private readonly string _dir = Directory.CreateTempSubdirectory("legate-apikeys-").FullName;
    private readonly FakeTimeProvider _time = new(TestKeys.Now);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private RulesProvider<ApiKeySet> Provider(string path) =>
        new("apikeys", new RulesOptions { Path = path, Watch = false }, new ApiKeySetLoader(), _time, NullLogger.Instance,
            Prometheus.Metrics.WithCustomRegistry(Prometheus.Metrics.NewCustomRegistry()));

    private static ApiKeySet Load(string text) => ApiKeySetLoader.Load([new RulesFile("keys.yaml", text)]);

    private static RulesException Error(string text) => Assert.Throws<RulesException>(() => Load(text));

    [Theory]
    [InlineData("- &k {id: AAAAAAAAAAAA, scopes: [*k]}\n", "keys.yaml:1:34: alias *k is inside the node it names (&k at line 1), which makes a cycle")]
    [InlineData("- &all\n  - *all\n", "keys.yaml:2:5: alias *all is inside the node it names (&all at line 1), which makes a cycle")]
    public void AliasCycle_IsAnErrorNamingFileAndLine(string text, string expected)
    {
        Assert.Equal(expected, Error(text).Message);
    }

    [Fact]
    public void Load_ReadsEveryField()
    {
        var set = Load($"""
            - id: AAAAAAAAAAAA
              sha256: {Hash}
              tenant: acme
              client: billing
              scopes: [orders:read, orders:write]
              plan: gold
              created: 2026-01-01T00:00:00Z
              expires: 2027-01-01T01:00:00+01:00
              revoked: true
              description: "CI key"
            - id: BBBBBBBBBBBB
              sha256: {Hash.ToUpperInvariant()}
              tenant: acme
              client: billing
            """);

        Assert.Equal(2, set.Count);
        var a = set.Find("AAAAAAAAAAAA")!;
        Assert.Equal(("acme", "billing", "gold", "CI key", true), (a.Tenant, a.ClientId, a.Plan, a.Description, a.Revoked));
        Assert.Equal(["orders:read", "orders:write"], a.Scopes);
        Assert.Equal(new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero), a.ExpiresAt);
        Assert.Equal(Hash, a.Sha256Hex);
        var b = set.Find("BBBBBBBBBBBB")!;
        Assert.Equal((false, null, 0), (b.Revoked, b.ExpiresAt, b.Scopes.Length));
        Assert.Null(set.Find("CCCCCCCCCCCC"));
    }

    [Fact]
    public void EmptyFile_IsAnEmptySet() => Assert.Equal(0, Load("# no keys yet\n").Count);

    public static TheoryData<string, string> BadFiles() => new()
    {
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n  colour: red\n", "keys.yaml:5:3: [0].colour: unknown field 'colour'" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  client: c\n", "keys.yaml:1:3: [0].tenant: is required" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n", "keys.yaml:1:3: [0].client: is required" },
        { $"- id: AAAAAAAAAAAA\n  sha256: abc\n  tenant: a\n  client: c\n", "keys.yaml:2:11: [0].sha256: must be 64 hexadecimal digits" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash[..^1]}z\n  tenant: a\n  client: c\n", "keys.yaml:2:11: [0].sha256: must be 64 hexadecimal digits" },
        { $"- id: short\n  sha256: {Hash}\n  tenant: a\n  client: c\n", "keys.yaml:1:7: [0].id: a key id is 12 base62 characters" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n  expires: 2027-13-01\n", "keys.yaml:5:12: [0].expires: must be an RFC 3339" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n  expires: 2027-01-01T00:00:00\n", "keys.yaml:5:12: [0].expires: must be an RFC 3339" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n  revoked: yes\n", "keys.yaml:5:12: [0].revoked: must be true or false" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n  scopes: read\n", "keys.yaml:5:11: [0].scopes: must be a list" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n", "keys.yaml:5:7: [1].id: key id 'AAAAAAAAAAAA' is already used at keys.yaml:1" },
        // Values the identity headers and rate-limit descriptors carry: what `legate keys create` refuses, the file refuses too.
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: \"acme\\n\"\n  client: c\n", "keys.yaml:3:11: [0].tenant: must match [a-z0-9][a-z0-9._-]*" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: Acme\n  client: c\n", "keys.yaml:3:11: [0].tenant: must match" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: \"billing\\n\"\n", "keys.yaml:4:11: [0].client: must be 1 to 128 characters" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: billing service\n", "keys.yaml:4:11: [0].client: must be 1 to 128 characters" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n  plan: \"gold\\n\"\n", "keys.yaml:5:9: [0].plan: must be 1 to 64 characters, no control characters" },
        { $"- id: AAAAAAAAAAAA\n  sha256: {Hash}\n  tenant: a\n  client: c\n  scopes: [\"read,write\"]\n", "keys.yaml:5:12: [0].scopes[0]: a scope is 1 to 128 printable ASCII characters" },
        { "id: AAAAAAAAAAAA\n", "keys.yaml:1:1: a keys file is a list of key records" },
        { "- [oops\n", "keys.yaml:" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadFile_NamesFileLineColumnAndField(string text, string expected) =>
        Assert.StartsWith(expected, Error(text).Message, StringComparison.Ordinal);

    [Fact]
    public void DuplicateField_IsAnError() =>
        Assert.StartsWith("keys.yaml:", Error($"- id: AAAAAAAAAAAA\n  id: BBBBBBBBBBBB\n  sha256: {Hash}\n  tenant: a\n  client: c\n").Message, StringComparison.Ordinal);

    [Fact]
    public void PlanRule_RefusesExactlyTheControlCharacters_AndLengthsOutsideOneTo64()
    {
        for (var c = char.MinValue; c < char.MaxValue; c++)
            Assert.True(ApiKeyRecordRules.IsPlan("gold" + c) != char.IsControl(c), $"U+{(int)c:X4}");
        Assert.False(ApiKeyRecordRules.IsPlan(""));
        Assert.True(ApiKeyRecordRules.IsPlan(new string('p', 64)));
        Assert.False(ApiKeyRecordRules.IsPlan(new string('p', 65)));
    }

    [Fact]
    public void Writer_RoundTrips_ThroughTheLoader()
    {
        // Values YAML would misread unquoted, within what a record may hold (ApiKeyRecordRules).
        var odd = TestKeys.New(tenant: "0.5", client: "-:@/weird").Record with { Description = "multi\nline 'quoted': {x} # ✓", Plan = "true" };
        var plain = TestKeys.New(expires: TestKeys.Now.AddDays(30)).Record with { Revoked = true };

        var set = Load(ApiKeyFileWriter.Serialize([odd, plain]));

        Assert.Equal([odd, plain], set.Records);
        Assert.Equal(0, Load(ApiKeyFileWriter.Serialize([])).Count);
    }

    [Fact]
    public async Task HotReload_AddsAndRevokesKeys_ThroughTheRulesProvider()
    {
        var first = TestKeys.New();
        var second = TestKeys.New();
        var path = Path.Combine(_dir, "keys.yaml");
        ApiKeyFileWriter.Append(path, first.Record);
        using var provider = Provider(path);
        provider.LoadInitial();
        var validator = new ApiKeyValidator(new FileApiKeyStore(provider), _time);

        Assert.True((await validator.ValidateAsync(first.Key, TestKeys.Ct)).Succeeded);
        Assert.Equal(ApiKeyFailure.Unknown, (await validator.ValidateAsync(second.Key, TestKeys.Ct)).Failure);

        ApiKeyFileWriter.Append(path, second.Record);
        Assert.Throws<InvalidOperationException>(() => ApiKeyFileWriter.Append(path, second.Record));
        Assert.True(ApiKeyFileWriter.Revoke(path, first.Record.KeyId));
        Assert.False(ApiKeyFileWriter.Revoke(path, "ZZZZZZZZZZZZ"));
        Assert.True(provider.Reload());

        Assert.Equal(ApiKeyFailure.Revoked, (await validator.ValidateAsync(first.Key, TestKeys.Ct)).Failure);
        Assert.True((await validator.ValidateAsync(second.Key, TestKeys.Ct)).Succeeded);

        // A bad edit keeps the last good keys in force.
        File.AppendAllText(path, "- id: nope\n");
        Assert.False(provider.Reload());
        Assert.True((await validator.ValidateAsync(second.Key, TestKeys.Ct)).Succeeded);
    }

    [Fact]
    public void Directory_OfKeysFiles_RefusesAnIdInTwoFiles()
    {
        var key = TestKeys.New();
        Write("a.yaml", ApiKeyFileWriter.Serialize([key.Record]));
        Write("b.yaml", ApiKeyFileWriter.Serialize([key.Record]));
        using var provider = Provider(_dir);

        var error = Assert.Throws<RulesException>(provider.LoadInitial);
        Assert.Contains("b.yaml", error.File, StringComparison.Ordinal);
        Assert.Contains("a.yaml", error.Problem, StringComparison.Ordinal);
    }
}
