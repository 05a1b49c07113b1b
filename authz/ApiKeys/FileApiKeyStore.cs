using Legate.Hosting.Rules;

namespace Legate.Authz.ApiKeys;

/// <summary>
/// Keys from a YAML keys file, hot-reloaded by the hosting's <see cref="RulesProvider{TRules}"/> (loader:
/// <see cref="ApiKeySetLoader"/>). Every lookup reads the snapshot in force, so a reload (a new key, a revocation)
/// applies to the next request. Lookups complete synchronously.
/// </summary>
public sealed class FileApiKeyStore : IApiKeyStore
{
    private readonly RulesProvider<ApiKeySet>? _provider;
    private readonly ApiKeySet? _set;
    private readonly ApiKeyMetrics? _metrics;

    /// <summary>A store that follows the provider's current keys file.</summary>
    public FileApiKeyStore(RulesProvider<ApiKeySet> provider, ApiKeyMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(provider);
        _provider = provider;
        _metrics = metrics;
    }

    /// <summary>A store over a fixed set (tests, or a set loaded once).</summary>
    public FileApiKeyStore(ApiKeySet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        _set = set;
    }

    /// <summary>The keys in force.</summary>
    public ApiKeySet Current => _set ?? _provider!.Current;

    public ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken)
    {
        var record = Current.Find(keyId);
        _metrics?.FileLookup(record is not null);
        return new ValueTask<ApiKeyRecord?>(record);
    }
}
