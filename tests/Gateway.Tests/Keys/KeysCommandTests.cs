using Legate.Authz.ApiKeys;
using Legate.Gateway.Keys;
using Legate.Hosting.Rules;
using Microsoft.Extensions.Time.Testing;

namespace Legate.Gateway.Tests.Keys;

/// <summary><c>legate keys</c> against a keys file.</summary>
public sealed class KeysCommandTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly string _dir = Directory.CreateTempSubdirectory("legate-keys-").FullName;
    private readonly FakeTimeProvider _time = new(Now);

    private string KeysFile => Path.Combine(_dir, "keys.yaml");

    internal static (int ExitCode, string Stdout, string Stderr) Run(TimeProvider time, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = KeysCommand.RunAsync(args, stdout, stderr, time, TestContext.Current.CancellationToken).GetAwaiter().GetResult();
        return (exitCode, stdout.ToString(), stderr.ToString());
    }

    private (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => Run(_time, args);

    private string Create(params string[] extra)
    {
        var (exitCode, stdout, stderr) = Run(["create", "--tenant", "acme", "--client", "billing", "--file", KeysFile, .. extra]);
        Assert.True(exitCode == Cli.Ok, stderr);
        return stdout.Trim();
    }

    private ApiKeySet Load() => ApiKeySetLoader.Load([new RulesFile(KeysFile, File.ReadAllText(KeysFile))]);

    private async Task<ApiKeyResult> ValidateAsync(string key) =>
        await new ApiKeyValidator(new FileApiKeyStore(Load()), _time).ValidateAsync(key, TestContext.Current.CancellationToken);

    [Fact]
    public async Task Create_PrintsTheKeyOnceAloneOnStdout_AndStoresOnlyItsHash()
    {
        var (exitCode, stdout, stderr) = Run("create", "--tenant", "acme", "--client", "billing", "--scope", "orders:read", "--scopes", "orders:write, reports",
            "--plan", "gold", "--description", "CI deploy key", "--expires", "90d", "--file", KeysFile);

        Assert.Equal(Cli.Ok, exitCode);
        var key = stdout.TrimEnd('\n');
        Assert.DoesNotContain('\n', key);
        Assert.True(ApiKeyFormat.Default.TryParse(key, out var keyId));
        Assert.Contains("only time the key is shown", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(key, stderr, StringComparison.Ordinal);

        var text = File.ReadAllText(KeysFile);
        Assert.DoesNotContain(key.Split('_')[2], text, StringComparison.Ordinal);
        var record = Assert.Single(Load().Records);
        Assert.Equal(keyId, record.KeyId);
        Assert.Equal(ApiKeyFormat.Hash(key).AsSpan().ToArray(), record.Sha256.AsSpan().ToArray());
        Assert.Equal(["orders:read", "orders:write", "reports"], record.Scopes);
        Assert.Equal(("acme", "billing", "gold", "CI deploy key"), (record.Tenant, record.ClientId, record.Plan, record.Description));
        Assert.Equal(Now, record.CreatedAt);
        Assert.Equal(Now.AddDays(90), record.ExpiresAt);
        Assert.True((await ValidateAsync(key)).Succeeded);
    }

    [Fact]
    public void Create_KeepsTheFilesCommentsAndOtherEntries()
    {
        var first = Create();
        File.WriteAllText(KeysFile, "# Production keys. Owner: platform team.\n" + File.ReadAllText(KeysFile).Replace("\n", "   # first\n", StringComparison.Ordinal));
        var before = File.ReadAllText(KeysFile);

        var second = Create("--expires", "2027-01-01T00:00:00Z");

        var after = File.ReadAllText(KeysFile);
        Assert.StartsWith(before, after, StringComparison.Ordinal);
        Assert.Equal([first.Split('_')[1], second.Split('_')[1]], Load().Records.Select(r => r.KeyId));
        Assert.Equal(new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero), Load().Records[1].ExpiresAt);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Revoke_ChangesOnlyThatKey_AndKeepsComments()
    {
        var keep = Create();
        var drop = Create();
        File.WriteAllText(KeysFile, "# keep this comment\n" + File.ReadAllText(KeysFile));
        var dropId = drop.Split('_')[1];

        var (exitCode, stdout, _) = Run("revoke", dropId, "--file", KeysFile);

        Assert.Equal(Cli.Ok, exitCode);
        Assert.Contains($"Revoked key {dropId}", stdout, StringComparison.Ordinal);
        Assert.StartsWith("# keep this comment\n", File.ReadAllText(KeysFile), StringComparison.Ordinal);
        Assert.Equal(ApiKeyFailure.Revoked, (await ValidateAsync(drop)).Failure);
        Assert.True((await ValidateAsync(keep)).Succeeded);
        // Revoking again is fine (idempotent); an unknown id is an error.
        Assert.Equal(Cli.Ok, Run("revoke", dropId, "--file", KeysFile).ExitCode);
        var unknown = Run("revoke", "ZZZZZZZZZZZZ", "--file", KeysFile);
        Assert.Equal(Cli.Invalid, unknown.ExitCode);
        Assert.Contains("no key ZZZZZZZZZZZZ", unknown.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Revoke_AcceptsTheWholeKey_WithoutEchoingIt()
    {
        var key = Create();

        var (exitCode, stdout, stderr) = Run("revoke", key, "--file", KeysFile);

        Assert.Equal(Cli.Ok, exitCode);
        Assert.DoesNotContain(key, stdout + stderr, StringComparison.Ordinal);
        Assert.Equal(ApiKeyFailure.Revoked, (await ValidateAsync(key)).Failure);
    }

    [Fact]
    public void Revoke_FlowStyleRecord_StillRevokes()
    {
        var key = Create();
        var record = Load().Records[0];
        File.WriteAllText(KeysFile, $"- {{id: {record.KeyId}, sha256: {record.Sha256Hex}, tenant: acme, client: billing}}\n");

        Assert.Equal(Cli.Ok, Run("revoke", key.Split('_')[1], "--file", KeysFile).ExitCode);

        Assert.True(Load().Records[0].Revoked);
    }

    [Fact]
    public void List_ShowsIdsTenantClientScopesExpiryAndStatus_NeverKeysOrHashes()
    {
        var active = Create("--scope", "orders:read");
        var revoked = Create();
        var expiring = Create("--expires", "1h", "--plan", "gold");
        Run("revoke", revoked.Split('_')[1], "--file", KeysFile);
        _time.Advance(TimeSpan.FromHours(2));

        var (exitCode, stdout, _) = Run("list", "--file", KeysFile);

        Assert.Equal(Cli.Ok, exitCode);
        var lines = stdout.TrimEnd().Split('\n');
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("ID", lines[0], StringComparison.Ordinal);
        Assert.Matches($"^{active.Split('_')[1]} +acme +billing +orders:read +- +2026-06-01T12:00:00Z +never +active$", lines[1]);
        Assert.EndsWith("revoked", lines[2], StringComparison.Ordinal);
        Assert.Matches("gold +2026-06-01T12:00:00Z +2026-06-01T13:00:00Z +expired$", lines[3]);
        foreach (var record in Load().Records)
            Assert.DoesNotContain(record.Sha256Hex, stdout, StringComparison.Ordinal);
        foreach (var key in new[] { active, revoked, expiring })
            Assert.DoesNotContain(key.Split('_')[2], stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void List_FiltersByTenantAndClient_AndAMissingFileIsEmpty()
    {
        Create();
        Run("create", "--tenant", "globex", "--client", "app", "--file", KeysFile);

        var globex = Run("list", "--tenant", "globex", "--file", KeysFile).Stdout.TrimEnd().Split('\n');
        var none = Run("list", "--file", Path.Combine(_dir, "missing.yaml"));

        Assert.Equal(2, globex.Length);
        Assert.Contains("globex", globex[1], StringComparison.Ordinal);
        Assert.Equal(Cli.Ok, none.ExitCode);
        Assert.Single(none.Stdout.TrimEnd().Split('\n'));
    }

    [Theory]
    [InlineData(new[] { "create", "--tenant", "acme", "--client", "c" }, "give the store")]
    [InlineData(new[] { "create", "--tenant", "acme", "--client", "c", "--file", "k.yaml", "--redis", "127.0.0.1" }, "give the store")]
    [InlineData(new[] { "create", "--client", "c", "--file", "k.yaml" }, "needs --tenant and --client")]
    [InlineData(new[] { "create", "--tenant", "acme", "--client", "c", "--file", "k.yaml", "--colour", "red" }, "unknown option '--colour'")]
    [InlineData(new[] { "create", "--tenant", "acme", "--tenant", "b", "--client", "c", "--file", "k.yaml" }, "given twice")]
    [InlineData(new[] { "create", "--tenant", "acme", "--client", "c", "--file" }, "needs a value")]
    [InlineData(new[] { "revoke", "--file", "k.yaml" }, "exactly one key id")]
    [InlineData(new[] { "rotate", "--file", "k.yaml" }, "unknown keys command 'rotate'")]
    public void UsageErrors_ExitWith2AndSayWhat(string[] args, string message)
    {
        var (exitCode, _, stderr) = Run(args);

        Assert.Equal(Cli.Usage, exitCode);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--tenant", "Acme Corp", "tenant 'Acme Corp' must match")]
    [InlineData("--client", "bad\r\nx-admin: true", "must be 1 to 128 characters")]
    [InlineData("--client", "billing\n", "must be 1 to 128 characters")]   // a trailing newline too: the client becomes a header value
    [InlineData("--tenant", "acme\n", "must match")]
    [InlineData("--plan", "free\n", "plan must be 1 to 64 characters, no control characters")]
    [InlineData("--scope", "read\n", "scope 'read")]
    [InlineData("--scope", "a b", "scope 'a b'")]
    [InlineData("--expires", "next tuesday", "neither an RFC 3339 time")]
    [InlineData("--expires", "2020-01-01T00:00:00Z", "is not in the future")]
    [InlineData("--expires", "2027-01-01T00:00:00", "neither an RFC 3339 time")]
    [InlineData("--prefix", "LGT", "--prefix 'LGT' must be 1 to 16 lower-case ASCII letters or digits")]
    [InlineData("--prefix", "abcdefghijklmnopq", "--prefix 'abcdefghijklmnopq' must be 1 to 16")]
    public void InvalidValues_ExitWith1_AndWriteNothing(string option, string value, string message)
    {
        string[] args = ["create", "--tenant", "acme", "--client", "billing", "--file", KeysFile];
        var index = Array.IndexOf(args, option);
        if (index >= 0)
            args[index + 1] = value;
        else
            args = [.. args, option, value];

        var (exitCode, stdout, stderr) = Run(args);

        Assert.Equal(Cli.Invalid, exitCode);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.Empty(stdout);
        Assert.False(File.Exists(KeysFile));
    }

    [Fact]
    public async Task Create_WithAPrefix_MakesAKeyAuthzAcceptsOnlyWhereItsPolicyNamesThatPrefix()
    {
        var (exitCode, stdout, stderr) = Run("create", "--tenant", "acme", "--client", "billing", "--prefix", "acme", "--file", KeysFile);
        Assert.True(exitCode == Cli.Ok, stderr);
        var key = stdout.Trim();
        Assert.StartsWith("acme_", key, StringComparison.Ordinal);
        Assert.Contains("api_keys: {prefix: acme}", stderr, StringComparison.Ordinal);

        // authz's own policy loader, on a policy beside the keys file, with and without the prefix.
        async Task<ApiKeyFailure> CheckAsync(string apiKeys)
        {
            var policy = Path.Combine(_dir, "policies.yaml");
            File.WriteAllText(policy, "tenants:\n  acme:\n    api_keys: true\npolicies:\n  default:\n    credentials: [api_key]\n" + apiKeys);
            using var loader = new Legate.Authz.Policies.AuthzPolicyLoader(_time);
            using var set = loader.Load(RulesFiles.Read(policy));
            return (await set.ApiKeys!.Validator.ValidateAsync(key, TestContext.Current.CancellationToken, "acme")).Failure;
        }
        Assert.Equal(ApiKeyFailure.None, await CheckAsync("api_keys: {file: keys.yaml, prefix: acme}\n"));
        Assert.Equal(ApiKeyFailure.Malformed, await CheckAsync("api_keys: {file: keys.yaml}\n"));
    }

    [Fact]
    public void Create_WithTheDefaultPrefix_NeedsNoReminder() =>
        Assert.DoesNotContain("api_keys: {prefix", Run("create", "--tenant", "acme", "--client", "billing", "--file", KeysFile).Stderr, StringComparison.Ordinal);

    [Fact]
    public void ABrokenKeysFile_IsNamedWithLineAndLeftAlone()
    {
        const string broken = "- id: tooShort\n  sha256: 00\n";
        File.WriteAllText(KeysFile, broken);

        var create = Run("create", "--tenant", "acme", "--client", "billing", "--file", KeysFile);
        var revoke = Run("revoke", "ZZZZZZZZZZZZ", "--file", KeysFile);
        var list = Run("list", "--file", KeysFile);

        foreach (var (exitCode, stdout, stderr) in new[] { create, revoke, list })
        {
            Assert.Equal(Cli.Invalid, exitCode);
            Assert.Contains("keys.yaml:1:", stderr, StringComparison.Ordinal);
            Assert.Empty(stdout);
        }
        Assert.Equal(broken, File.ReadAllText(KeysFile));
    }

    [Fact]
    public void AMissingFolder_IsAClearErrorAtOnce()
    {
        var missing = Path.Combine(_dir, "no-such-folder", "keys.yaml");

        var (exitCode, stdout, stderr) = Run("create", "--tenant", "acme", "--client", "billing", "--file", missing);

        Assert.Equal(Cli.Invalid, exitCode);
        Assert.Contains("cannot write", stderr, StringComparison.Ordinal);
        Assert.Contains("no-such-folder", stderr, StringComparison.Ordinal);
        Assert.Empty(stdout);
    }

    [Fact]
    public async Task ConcurrentCreates_LoseNoKey()
    {
        var keys = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => Create())));

        Assert.Equal(keys.Select(k => k.Split('_')[1]).Order(StringComparer.Ordinal), Load().Records.Select(r => r.KeyId).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void TheCliDispatchesKeys()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        Assert.Equal(Cli.Ok, Cli.Run(["keys", "list", "--file", KeysFile], stdout, stderr));
        Assert.Equal(Cli.Ok, Cli.Run(["help"], stdout, stderr));
        Assert.Contains("legate keys create", stdout.ToString(), StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
