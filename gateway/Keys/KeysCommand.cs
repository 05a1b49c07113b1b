using System.Globalization;
using Legate.Authz.ApiKeys;
using Legate.Hosting.Rules;
using StackExchange.Redis;

namespace Legate.Gateway.Keys;

/// <summary>
/// <c>legate keys create|list|revoke</c>: API key management against a keys file (the file store authz hot-reloads)
/// or Redis (the store every authz replica shares). A new key is printed once, alone on stdout, so a script can
/// capture it; only its SHA-256 is stored. Nothing here ever prints a key again or a hash.
/// </summary>
internal static class KeysCommand
{
    public const string Help = """
          legate keys create --tenant T --client C [--scope S]... [--expires WHEN] [--plan P] [--description D] [--prefix X] STORE
                                        make a key; prints it once on stdout (stores only its SHA-256); --prefix
                                        (default lgt) must be the policy's api_keys.prefix
          legate keys list [--tenant T] [--client C] STORE
                                        show key ids, tenant, client, scopes, plan, expiry and status (never keys)
          legate keys revoke KEY_ID STORE
                                        revoke a key (a running authz refuses it within seconds)
            STORE is --file keys.yaml (created if missing; replaced atomically) or --redis CONNSTRING
            WHEN is an RFC 3339 time (2027-01-01T00:00:00Z) or a duration from now (90d, 12h, 30m)
        """;

    private static readonly string[] ValueOptions = ["--file", "--redis", "--tenant", "--client", "--scope", "--scopes", "--expires", "--plan", "--description", "--prefix"];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TimeProvider time) =>
        RunAsync(args, stdout, stderr, time, CancellationToken.None).GetAwaiter().GetResult();

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        ArgumentNullException.ThrowIfNull(time);
        if (args is [] or ["help" or "--help" or "-h"])
        {
            stdout.WriteLine("Usage:\n" + Help);
            return args.Length == 0 ? Cli.Usage : Cli.Ok;
        }
        var verb = args[0];
        if (verb is not ("create" or "list" or "revoke"))
            return UsageError(stderr, $"unknown keys command '{verb}' (create, list, revoke)");
        if (!TryParse(args.AsSpan(1), out var options, out var positional, out var problem))
            return UsageError(stderr, problem);

        var file = options.GetValueOrDefault("--file")?.Single();
        var redis = options.GetValueOrDefault("--redis")?.Single();
        if ((file is null) == (redis is null))
            return UsageError(stderr, "give the store: --file keys.yaml or --redis CONNSTRING (one of them)");

        try
        {
            return verb switch
            {
                "create" => await CreateAsync(options, positional, file, redis, stdout, stderr, time, cancellationToken),
                "list" => await ListAsync(options, positional, file, redis, stdout, stderr, time, cancellationToken),
                _ => await RevokeAsync(options, positional, file, redis, stdout, stderr, cancellationToken),
            };
        }
        catch (RulesException e)
        {
            // The keys file exists but is not valid: say where, and leave it alone.
            stderr.WriteLine($"legate keys {verb}: {e.Message}");
            return Cli.Invalid;
        }
        catch (ApiKeyStoreUnavailableException e)
        {
            stderr.WriteLine($"legate keys {verb}: {e.Message}");
            return Cli.Invalid;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"legate keys {verb}: cannot write {file}: {e.Message}");
            return Cli.Invalid;
        }
        catch (RedisStoreException e)
        {
            stderr.WriteLine($"legate keys {verb}: {e.Message}");
            return Cli.Invalid;
        }
    }

    private static async Task<int> CreateAsync(Dictionary<string, List<string>> options, List<string> positional, string? file, string? redis,
        TextWriter stdout, TextWriter stderr, TimeProvider time, CancellationToken cancellationToken)
    {
        if (positional.Count > 0)
            return UsageError(stderr, $"unexpected argument '{positional[0]}'");
        var tenant = options.GetValueOrDefault("--tenant")?.Single();
        var client = options.GetValueOrDefault("--client")?.Single();
        if (tenant is null || client is null)
            return UsageError(stderr, "create needs --tenant and --client");
        if (!ApiKeyRecordRules.IsName(tenant))
            return Invalid(stderr, $"tenant '{tenant}' must match {ApiKeyRecordRules.NameRule}, as tenant names in the policy file do");
        if (!ApiKeyRecordRules.IsClientId(client))
            return Invalid(stderr, $"client '{client}' must be {ApiKeyRecordRules.ClientRule} (it becomes a header value)");
        var scopes = new List<string>();
        foreach (var value in options.GetValueOrDefault("--scope") ?? [])
            scopes.Add(value);
        foreach (var value in options.GetValueOrDefault("--scopes") ?? [])
            scopes.AddRange(value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        foreach (var scope in scopes)
        {
            if (!ApiKeyRecordRules.IsScope(scope))
                return Invalid(stderr, $"scope '{scope}' must be {ApiKeyRecordRules.ScopeRule}");
        }
        var plan = options.GetValueOrDefault("--plan")?.Single();
        if (plan is not null && !ApiKeyRecordRules.IsPlan(plan))
            return Invalid(stderr, $"plan must be {ApiKeyRecordRules.PlanRule}");
        var description = options.GetValueOrDefault("--description")?.Single();
        if (description is not null && (description.Length > 256 || description.Any(char.IsControl)))
            return Invalid(stderr, "a description is at most 256 characters, without control characters");
        var now = time.GetUtcNow();
        DateTimeOffset? expires = null;
        if (options.GetValueOrDefault("--expires")?.Single() is { } when)
        {
            if (!TryParseExpiry(when, now, out var at))
                return Invalid(stderr, $"--expires '{when}' is neither an RFC 3339 time with an offset (2027-01-01T00:00:00Z) nor a duration (90d, 12h, 30m)");
            if (at <= now)
                return Invalid(stderr, $"--expires {When(at)} is not in the future");
            expires = at;
        }
        var prefix = options.GetValueOrDefault("--prefix")?.Single();
        if (prefix is not null && !ApiKeyFormat.IsPrefix(prefix))
            return Invalid(stderr, $"--prefix '{prefix}' must be {ApiKeyFormat.PrefixRule}");
        var format = prefix is null ? ApiKeyFormat.Default : new ApiKeyFormat(prefix);

        var generated = format.Generate(tenant, client, scopes.Distinct(StringComparer.Ordinal), now, expires, plan, description);
        var record = generated.Record;
        if (file is not null)
        {
            ApiKeyFileWriter.Append(file, record);
        }
        else
        {
            await using var store = await RedisStore.ConnectAsync(redis!, time);
            // A key id is ~71 random bits: a clash is practically impossible, and AddAsync refuses rather than overwrites.
            if (!await store.Store.AddAsync(record, cancellationToken))
                return Invalid(stderr, $"key id {record.KeyId} already exists in Redis; run the command again");
        }
        stdout.WriteLine(generated.Key);
        stderr.WriteLine($"Created key {record.KeyId} for client '{client}' of tenant '{tenant}' (scopes: {(scopes.Count == 0 ? "none" : string.Join(' ', record.Scopes))}; "
            + $"expires: {(expires is { } until ? When(until) : "never")}) in {file ?? "Redis"}.");
        stderr.WriteLine("This is the only time the key is shown: only its SHA-256 is stored. Keep it secret.");
        // The store does not record a prefix, so a mismatch cannot be caught here: authz checks keys against one prefix.
        if (format.Prefix != ApiKeyFormat.DefaultPrefix)
            stderr.WriteLine($"authz accepts it only where its policy says api_keys: {{prefix: {format.Prefix}}} (without it, only {ApiKeyFormat.DefaultPrefix}_ keys).");
        return Cli.Ok;
    }

    private static async Task<int> ListAsync(Dictionary<string, List<string>> options, List<string> positional, string? file, string? redis,
        TextWriter stdout, TextWriter stderr, TimeProvider time, CancellationToken cancellationToken)
    {
        if (positional.Count > 0)
            return UsageError(stderr, $"unexpected argument '{positional[0]}'");
        var tenant = options.GetValueOrDefault("--tenant")?.Single();
        var client = options.GetValueOrDefault("--client")?.Single();
        IReadOnlyList<ApiKeyRecord> records;
        if (file is not null)
        {
            records = File.Exists(file)
                ? [.. ApiKeySetLoader.Load([new RulesFile(file, File.ReadAllText(file))]).Records
                    .Where(r => (tenant is null || r.Tenant == tenant) && (client is null || r.ClientId == client))]
                : [];
        }
        else
        {
            await using var store = await RedisStore.ConnectAsync(redis!, time);
            records = await store.Store.ListAsync(tenant, client, cancellationToken);
        }

        var now = time.GetUtcNow();
        string[] header = ["ID", "TENANT", "CLIENT", "SCOPES", "PLAN", "CREATED", "EXPIRES", "STATUS"];
        var rows = records.Select(r => new[]
        {
            r.KeyId, r.Tenant, r.ClientId, r.Scopes.IsEmpty ? "-" : string.Join(',', r.Scopes), r.Plan ?? "-", When(r.CreatedAt),
            r.ExpiresAt is { } e ? When(e) : "never", r.Revoked ? "revoked" : r.IsExpiredAt(now) ? "expired" : "active",
        }).ToList();
        var widths = header.Select((h, i) => rows.Select(row => row[i].Length).Append(h.Length).Max()).ToArray();
        foreach (var row in rows.Prepend(header))
            stdout.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))));
        return Cli.Ok;
    }

    private static async Task<int> RevokeAsync(Dictionary<string, List<string>> options, List<string> positional, string? file, string? redis,
        TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (options.Keys.Any(k => k is not ("--file" or "--redis")))
            return UsageError(stderr, "revoke takes a key id and the store only");
        if (positional is not [var keyId])
            return UsageError(stderr, "revoke needs exactly one key id (the second part of the key, or the ID column of 'legate keys list')");
        // Accept a whole key too, but never echo it: its id is all that is needed.
        if (!ApiKeyFormat.IsKeyId(keyId))
        {
            var parts = keyId.Split('_');
            if (parts.Length != 4 || !ApiKeyFormat.IsKeyId(parts[1]))
                return Invalid(stderr, $"not a key id: a key id is {ApiKeyFormat.KeyIdLength} characters of A-Z a-z 0-9");
            keyId = parts[1];
        }
        bool revoked;
        if (file is not null)
        {
            revoked = File.Exists(file) && ApiKeyFileWriter.Revoke(file, keyId);
        }
        else
        {
            await using var store = await RedisStore.ConnectAsync(redis!, TimeProvider.System);
            revoked = await store.Store.RevokeAsync(keyId, cancellationToken);
        }
        if (!revoked)
            return Invalid(stderr, $"no key {keyId} in {file ?? "Redis"}");
        stdout.WriteLine($"Revoked key {keyId} in {file ?? "Redis"}.");
        return Cli.Ok;
    }

    private static bool TryParse(ReadOnlySpan<string> args, out Dictionary<string, List<string>> options, out List<string> positional, out string problem)
    {
        options = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        positional = [];
        problem = "";
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                positional.Add(arg);
                continue;
            }
            string name = arg, value;
            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                name = arg[..equals];
                value = arg[(equals + 1)..];
            }
            else if (i + 1 < args.Length)
            {
                value = args[++i];
            }
            else
            {
                problem = ValueOptions.Contains(arg) ? $"option {arg} needs a value" : $"unknown option '{arg}'";
                return false;
            }
            if (!ValueOptions.Contains(name))
            {
                problem = $"unknown option '{name}'";
                return false;
            }
            if (!options.TryGetValue(name, out var values))
                options[name] = values = [];
            if (values.Count > 0 && name is not ("--scope" or "--scopes"))
            {
                problem = $"option {name} is given twice";
                return false;
            }
            values.Add(value);
        }
        return true;
    }

    private static bool TryParseExpiry(string text, DateTimeOffset now, out DateTimeOffset at)
    {
        at = default;
        if (text.EndsWith('d') && int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var days) && days <= 36_500)
        {
            at = now.AddDays(days);
            return true;
        }
        if (YamlNodes.TryParseDuration(text, out var duration))
        {
            at = now + duration;
            return true;
        }
        if (DateTimeOffset.TryParseExact(text, ["yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"], CultureInfo.InvariantCulture, DateTimeStyles.None, out at)
            && (text.EndsWith('Z') || text.EndsWith('z') || text[^6] is '+' or '-'))
        {
            at = at.ToUniversalTime();
            return true;
        }
        return false;
    }

    private static string When(DateTimeOffset value) => value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static int UsageError(TextWriter stderr, string problem)
    {
        stderr.WriteLine($"legate keys: {problem}. Run 'legate keys help'.");
        return Cli.Usage;
    }

    private static int Invalid(TextWriter stderr, string problem)
    {
        stderr.WriteLine($"legate keys: {problem}.");
        return Cli.Invalid;
    }
}
