using System.Collections.Frozen;
using System.Collections.Immutable;
using System.Globalization;
using Legate.Hosting.Rules;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Legate.Authz.ApiKeys;

/// <summary>
/// Loads keys files: each file is a YAML list of records.
/// <code>
/// - id: 4fT9xQ2mZp0K            # the key's public id
///   sha256: 9f86d0…             # 64 hex digits: SHA-256 of the whole key
///   tenant: acme
///   client: billing-service
///   scopes: [orders:read, orders:write]
///   plan: gold                  # optional
///   created: 2026-01-01T00:00:00Z
///   expires: 2027-01-01T00:00:00Z  # optional, RFC 3339
///   revoked: false              # optional
///   description: CI deploy key  # optional
/// </code>
/// Unknown fields, a missing tenant or client, bad hex, bad dates and a key id used twice (across all files) are
/// errors naming file:line:column and the field; the hosting then keeps the last good keys in force.
/// </summary>
public sealed class ApiKeySetLoader : IRulesLoader<ApiKeySet>
{
    private static readonly FrozenSet<string> Fields = FrozenSet.Create(StringComparer.Ordinal,
        "id", "sha256", "tenant", "client", "scopes", "plan", "expires", "revoked", "description", "created");

    private static readonly string[] DateFormats = ["yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"];

    public ApiKeySet Load(RulesFiles files)
    {
        ArgumentNullException.ThrowIfNull(files);
        return Load(files.Files);
    }

    /// <summary>Loads files in the order given.</summary>
    /// <exception cref="RulesException">A file is not valid.</exception>
    public static ApiKeySet Load(IEnumerable<RulesFile> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var records = new List<ApiKeyRecord>();
        var seen = new Dictionary<string, (RulesFile File, YamlNode Node)>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            foreach (var document in YamlRules.Parse(file).Documents)
            {
                var root = document.RootNode;
                if (IsNull(root))
                    continue;
                if (root is not YamlSequenceNode list)
                    throw YamlRules.Error(file, root, "", "a keys file is a list of key records");
                var index = 0;
                foreach (var item in list)
                {
                    var path = string.Create(CultureInfo.InvariantCulture, $"[{index++}]");
                    var (record, idNode) = ReadRecord(file, item, path);
                    if (seen.TryGetValue(record.KeyId, out var first))
                    {
                        throw YamlRules.Error(file, idNode, path + ".id",
                            $"key id '{record.KeyId}' is already used at {first.File.Path}:{first.Node.Start.Line}");
                    }
                    seen.Add(record.KeyId, (file, idNode));
                    records.Add(record);
                }
            }
        }
        return ApiKeySet.Create(records);
    }

    private static (ApiKeyRecord Record, YamlNode IdNode) ReadRecord(RulesFile file, YamlNode node, string path)
    {
        if (node is not YamlMappingNode map)
            throw YamlRules.Error(file, node, path, "a key record is a mapping (id, sha256, tenant, client, ...)");
        foreach (var key in map.Children.Keys)
        {
            var name = (key as YamlScalarNode)?.Value ?? "";
            if (!Fields.Contains(name))
                throw YamlRules.Error(file, key, path + "." + name, $"unknown field '{name}' (known: {string.Join(", ", Fields.Order(StringComparer.Ordinal))})");
        }

        var (id, idNode) = RequiredString(file, map, path, "id");
        if (!ApiKeyFormat.IsKeyId(id))
            throw YamlRules.Error(file, idNode, path + ".id", $"a key id is {ApiKeyFormat.KeyIdLength} base62 characters");

        var (hex, hexNode) = RequiredString(file, map, path, "sha256");
        byte[] hash;
        try
        {
            hash = hex.Length == 64 ? Convert.FromHexString(hex) : [];
        }
        catch (FormatException)
        {
            hash = [];
        }
        if (hash.Length != 32)
            throw YamlRules.Error(file, hexNode, path + ".sha256", "must be 64 hexadecimal digits (the SHA-256 of the key)");

        var (tenant, tenantNode) = RequiredString(file, map, path, "tenant");
        if (!ApiKeyRecordRules.IsName(tenant))
            throw YamlRules.Error(file, tenantNode, path + ".tenant", $"must match {ApiKeyRecordRules.NameRule}, as tenant names in the policy file do");
        var (client, clientNode) = RequiredString(file, map, path, "client");
        if (!ApiKeyRecordRules.IsClientId(client))
            throw YamlRules.Error(file, clientNode, path + ".client", $"must be {ApiKeyRecordRules.ClientRule} (it becomes a header value)");
        var scopes = Scopes(file, map, path);
        var plan = OptionalString(file, map, path, "plan");
        if (plan is not null && !ApiKeyRecordRules.IsPlan(plan))
            throw YamlRules.Error(file, Field(map, "plan")!, path + ".plan", $"must be {ApiKeyRecordRules.PlanRule}");
        var description = OptionalString(file, map, path, "description");
        var created = Date(file, map, path, "created") ?? DateTimeOffset.UnixEpoch;
        var expires = Date(file, map, path, "expires");
        var revoked = Bool(file, map, path, "revoked");
        var record = new ApiKeyRecord(id, ImmutableArray.Create(hash), tenant, client, scopes, created, expires, revoked, plan, description);
        return (record, idNode);
    }

    private static YamlNode? Field(YamlMappingNode map, string name) =>
        map.Children.TryGetValue(new YamlScalarNode(name), out var value) ? value : null;

    private static bool IsNull(YamlNode? node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any } s && s.Value is null or "" or "~" or "null" or "Null" or "NULL";

    private static (string Value, YamlNode Node) RequiredString(RulesFile file, YamlMappingNode map, string path, string name)
    {
        var node = Field(map, name);
        if (node is null || IsNull(node))
            throw YamlRules.Error(file, node ?? map, path + "." + name, "is required");
        if (node is not YamlScalarNode { Value: { } text } || string.IsNullOrWhiteSpace(text))
            throw YamlRules.Error(file, node, path + "." + name, "must be a non-empty string");
        return (text, node);
    }

    private static string? OptionalString(RulesFile file, YamlMappingNode map, string path, string name)
    {
        var node = Field(map, name);
        if (node is null || IsNull(node))
            return null;
        return node is YamlScalarNode { Value: { } text } ? text : throw YamlRules.Error(file, node, path + "." + name, "must be a string");
    }

    private static ImmutableArray<string> Scopes(RulesFile file, YamlMappingNode map, string path)
    {
        var node = Field(map, "scopes");
        if (node is null || IsNull(node))
            return [];
        if (node is not YamlSequenceNode list)
            throw YamlRules.Error(file, node, path + ".scopes", "must be a list of scope names");
        var builder = ImmutableArray.CreateBuilder<string>(list.Children.Count);
        var i = 0;
        foreach (var item in list)
        {
            if (item is not YamlScalarNode { Value: { } scope } || !ApiKeyRecordRules.IsScope(scope))
                throw YamlRules.Error(file, item, string.Create(CultureInfo.InvariantCulture, $"{path}.scopes[{i}]"), $"a scope is {ApiKeyRecordRules.ScopeRule}");
            builder.Add(scope);
            i++;
        }
        return builder.MoveToImmutable();
    }

    private static DateTimeOffset? Date(RulesFile file, YamlMappingNode map, string path, string name)
    {
        var node = Field(map, name);
        if (node is null || IsNull(node))
            return null;
        if (node is YamlScalarNode { Value: { } text }
            && DateTimeOffset.TryParseExact(text, DateFormats, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var value)
            && (text.EndsWith('Z') || text.EndsWith('z') || text[^6] is '+' or '-'))
        {
            return value;
        }
        throw YamlRules.Error(file, node, path + "." + name, "must be an RFC 3339 date and time with an offset, e.g. 2027-01-01T00:00:00Z");
    }

    private static bool Bool(RulesFile file, YamlMappingNode map, string path, string name)
    {
        var node = Field(map, name);
        if (node is null || IsNull(node))
            return false;
        return node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: var text } && text is "true" or "false"
            ? text == "true"
            : throw YamlRules.Error(file, node, path + "." + name, "must be true or false");
    }
}
