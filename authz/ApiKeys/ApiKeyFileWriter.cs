using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Legate.Hosting.Rules;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

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

    /// <summary>
    /// Adds a record to a keys file (created when missing), refusing a key id already in it. The record is appended to
    /// the file's text, so comments and the other entries stay exactly as they were; the file is replaced atomically.
    /// </summary>
    /// <exception cref="RulesException">The existing file is not a valid keys file (it is left alone).</exception>
    public static void Append(string path, ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        using var _ = WriteLock.Acquire(path);
        var (text, records) = ReadExisting(path);
        if (records.Any(r => r.KeyId == record.KeyId))
            throw new InvalidOperationException($"Key id {record.KeyId} is already in {path}.");
        var updated = records.Count == 0 ? null : (text.EndsWith('\n') ? text : text + "\n") + Serialize(record);
        WriteChecked(path, updated, [.. records, record]);
    }

    /// <summary>
    /// Marks a key revoked in a keys file. False when the id is not in the file. Only that record's <c>revoked</c>
    /// value changes in the file's text (comments and other entries stay); the file is replaced atomically.
    /// </summary>
    /// <exception cref="RulesException">The existing file is not a valid keys file (it is left alone).</exception>
    public static bool Revoke(string path, string keyId)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        using var _ = WriteLock.Acquire(path);
        var (text, records) = ReadExisting(path);
        var index = records.FindIndex(r => r.KeyId == keyId);
        if (index < 0)
            return false;
        if (records[index].Revoked)
            return true;
        records[index] = records[index] with { Revoked = true };
        WriteChecked(path, EditRevoked(path, text, keyId), records);
        return true;
    }

    /// <summary>
    /// Replaces the file's content: written to a temporary file beside it (hidden, so a directory of rules skips it),
    /// then renamed over it, so the hot reload never reads half a file. The file keeps its permissions.
    /// </summary>
    public static void Write(string path, IEnumerable<ApiKeyRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        WriteText(path, Serialize(records));
    }

    private static void WriteText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(path);
        var temporary = Path.Combine(Path.GetDirectoryName(full)!, "." + Path.GetFileName(full) + ".tmp");
        File.WriteAllText(temporary, text, new UTF8Encoding(false));
        if (!OperatingSystem.IsWindows() && File.Exists(full))
            File.SetUnixFileMode(temporary, File.GetUnixFileMode(full));
        File.Move(temporary, full, overwrite: true);
    }

    // The edited text is written only when it reads back as exactly the intended records; otherwise (an unusual
    // layout the text edit cannot handle) the whole file is written from the records, losing only comments.
    private static void WriteChecked(string path, string? edited, IReadOnlyList<ApiKeyRecord> expected)
    {
        if (edited is not null)
        {
            try
            {
                if (ApiKeySetLoader.Load([new RulesFile(path, edited)]).Records.SequenceEqual(expected))
                {
                    WriteText(path, edited);
                    return;
                }
            }
            catch (RulesException)
            {
            }
        }
        Write(path, expected);
    }

    // Replaces the record's revoked value in place, or adds "revoked: true" after its id line (block mappings only).
    private static string? EditRevoked(string path, string text, string keyId)
    {
        foreach (var document in YamlRules.Parse(new RulesFile(path, text)).Documents)
        {
            if (document.RootNode is not YamlSequenceNode list)
                continue;
            foreach (var item in list)
            {
                if (item is not YamlMappingNode { Style: not YamlDotNet.Core.Events.MappingStyle.Flow } map
                    || YamlNodes.Field(map, "id") is not YamlScalarNode { Value: var id } idNode || id != keyId)
                {
                    continue;
                }
                if (YamlNodes.Field(map, "revoked") is YamlScalarNode { Style: ScalarStyle.Plain } revoked)
                {
                    var (start, end) = ((int)revoked.Start.Index, (int)revoked.End.Index);
                    return text[..start] + "true" + text[end..];
                }
                var idKey = map.Children.Keys.First(k => k is YamlScalarNode { Value: "id" });
                var lineEnd = text.IndexOf('\n', (int)idNode.End.Index);
                if (lineEnd < 0)
                    return null;
                var indent = new string(' ', (int)idKey.Start.Column - 1);
                return text[..(lineEnd + 1)] + indent + "revoked: true\n" + text[(lineEnd + 1)..];
            }
        }
        return null;
    }

    private static (string Text, List<ApiKeyRecord> Records) ReadExisting(string path)
    {
        if (!File.Exists(path))
            return ("", []);
        var text = File.ReadAllText(path);
        return (text, [.. ApiKeySetLoader.Load([new RulesFile(path, text)]).Records]);
    }

    /// <summary>
    /// An exclusive lock file beside the keys file, so two <c>legate keys</c> runs cannot lose each other's edits
    /// (read, change, replace). The running authz only reads the keys file and never takes it. The lock file stays
    /// (deleting it on release would let two writers lock two different files); it is hidden, so rules loading skips it.
    /// </summary>
    private sealed class WriteLock : IDisposable
    {
        private readonly FileStream _stream;

        private WriteLock(FileStream stream) => _stream = stream;

        public static WriteLock Acquire(string path)
        {
            var full = Path.GetFullPath(path);
            var directory = Path.GetDirectoryName(full)!;
            // Only a lock held by another writer is worth waiting for.
            if (!Directory.Exists(directory))
                throw new DirectoryNotFoundException($"No folder {directory} for the keys file.");
            var lockPath = Path.Combine(directory, "." + Path.GetFileName(full) + ".lock");
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    return new WriteLock(new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
                }
                catch (IOException e) when (attempt < 100 && e is not (DirectoryNotFoundException or PathTooLongException))
                {
                    Thread.Sleep(50);
                }
            }
        }

        public void Dispose() => _stream.Dispose();
    }

    private static string Quote(string value) => JsonSerializer.Serialize(value, Quoting);

    private static string Date(DateTimeOffset value) =>
        value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);
}
