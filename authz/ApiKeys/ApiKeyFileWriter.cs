using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Legate.Authz.ApiKeys;

/// <summary>
/// Writes key records in the keys-file format that <see cref="ApiKeySetLoader"/> reads (for <c>legate keys create|revoke</c>).
/// Strings are written as YAML double-quoted scalars (JSON string syntax, which YAML accepts), so no value can
/// change the structure of the file.
/// </summary>
public static class ApiKeyFileWriter
{
    private static readonly JsonSerializerOptions Quoting = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One record as a YAML list item, ending with a newline.</summary>
    public static string Serialize(ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var text = new StringBuilder();
        text.Append("- id: ").Append(record.KeyId).Append('\n');
        text.Append("  sha256: ").Append(record.Sha256Hex).Append('\n');
        text.Append("  tenant: ").Append(Quote(record.Tenant)).Append('\n');
        text.Append("  client: ").Append(Quote(record.ClientId)).Append('\n');
        text.Append("  scopes: [").AppendJoin(", ", record.Scopes.Select(Quote)).Append("]\n");
        if (record.Plan is not null)
            text.Append("  plan: ").Append(Quote(record.Plan)).Append('\n');
        text.Append("  created: ").Append(Date(record.CreatedAt)).Append('\n');
        if (record.ExpiresAt is { } expires)
            text.Append("  expires: ").Append(Date(expires)).Append('\n');
        text.Append("  revoked: ").Append(record.Revoked ? "true" : "false").Append('\n');
        if (record.Description is not null)
            text.Append("  description: ").Append(Quote(record.Description)).Append('\n');
        return text.ToString();
    }

    /// <summary>A whole keys file.</summary>
    public static string Serialize(IEnumerable<ApiKeyRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var text = new StringBuilder("# Legate API keys: SHA-256 hashes only. Managed by `legate keys`.\n");
        var any = false;
        foreach (var record in records)
        {
            text.Append(Serialize(record));
            any = true;
        }
        if (!any)
            text.Append("[]\n");
        return text.ToString();
    }

    /// <summary>Adds a record to a keys file (created when missing). Rewrites the file atomically; refuses a key id already in it.</summary>
    public static void Append(string path, ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var records = ReadExisting(path);
        if (records.Any(r => r.KeyId == record.KeyId))
            throw new InvalidOperationException($"Key id {record.KeyId} is already in {path}.");
        records.Add(record);
        Write(path, records);
    }

    /// <summary>Marks a key revoked in a keys file. False when the id is not in the file.</summary>
    public static bool Revoke(string path, string keyId)
    {
        var records = ReadExisting(path);
        var index = records.FindIndex(r => r.KeyId == keyId);
        if (index < 0)
            return false;
        records[index] = records[index] with { Revoked = true };
        Write(path, records);
        return true;
    }

    /// <summary>
    /// Replaces the file's content: written to a temporary file beside it, then renamed over it, so the hot reload
    /// never reads half a file.
    /// </summary>
    public static void Write(string path, IEnumerable<ApiKeyRecord> records)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(path);
        var temporary = Path.Combine(Path.GetDirectoryName(full)!, "." + Path.GetFileName(full) + ".tmp");
        File.WriteAllText(temporary, Serialize(records), new UTF8Encoding(false));
        File.Move(temporary, full, overwrite: true);
    }

    private static List<ApiKeyRecord> ReadExisting(string path) =>
        File.Exists(path) ? [.. ApiKeySetLoader.Load([new Hosting.Rules.RulesFile(path, File.ReadAllText(path))]).Records] : [];

    private static string Quote(string value) => JsonSerializer.Serialize(value, Quoting);

    private static string Date(DateTimeOffset value) =>
        value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);
}
