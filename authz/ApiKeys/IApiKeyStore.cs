namespace Legate.Authz.ApiKeys;

/// <summary>Where API key records live. Lookups are by key id only: O(1), never a scan.</summary>
public interface IApiKeyStore
{
    /// <summary>The record with this key id, or null. Completes synchronously when the store is in memory.</summary>
    /// <exception cref="ApiKeyStoreUnavailableException">The store cannot answer; the caller fails closed.</exception>
    ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken);
}

/// <summary>The key store cannot answer (Redis down or slow). The message never holds key material.</summary>
public sealed class ApiKeyStoreUnavailableException : Exception
{
    public ApiKeyStoreUnavailableException()
        : this("The API key store is unavailable.")
    {
    }

    public ApiKeyStoreUnavailableException(string message)
        : base(message)
    {
    }

    public ApiKeyStoreUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
