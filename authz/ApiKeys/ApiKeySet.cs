using System.Collections.Frozen;

namespace Legate.Authz.ApiKeys;

/// <summary>An immutable set of key records, indexed by key id.</summary>
public sealed class ApiKeySet
{
    private readonly FrozenDictionary<string, ApiKeyRecord> _byId;

    private ApiKeySet(IReadOnlyList<ApiKeyRecord> records, FrozenDictionary<string, ApiKeyRecord> byId)
    {
        Records = records;
        _byId = byId;
    }

    public static ApiKeySet Empty { get; } = new([], FrozenDictionary<string, ApiKeyRecord>.Empty);

    /// <summary>The records in file order.</summary>
    public IReadOnlyList<ApiKeyRecord> Records { get; }

    public int Count => Records.Count;

    /// <summary>Builds a set; key ids must be unique.</summary>
    /// <exception cref="ArgumentException">Two records share a key id.</exception>
    public static ApiKeySet Create(IEnumerable<ApiKeyRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var list = records.ToList();
        var byId = new Dictionary<string, ApiKeyRecord>(list.Count, StringComparer.Ordinal);
        foreach (var record in list)
        {
            if (!byId.TryAdd(record.KeyId, record))
                throw new ArgumentException($"Key id {record.KeyId} appears twice.", nameof(records));
        }
        return new ApiKeySet(list.AsReadOnly(), byId.ToFrozenDictionary(StringComparer.Ordinal));
    }

    /// <summary>The record with this id, or null. O(1).</summary>
    public ApiKeyRecord? Find(string keyId) => _byId.GetValueOrDefault(keyId);

    /// <summary>Every record of one client of one tenant (several while keys rotate).</summary>
    public IEnumerable<ApiKeyRecord> ForClient(string tenant, string clientId) =>
        Records.Where(r => r.Tenant == tenant && r.ClientId == clientId);
}
