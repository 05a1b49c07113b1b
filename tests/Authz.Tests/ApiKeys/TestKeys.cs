using Legate.Authz.ApiKeys;

namespace Legate.Authz.Tests.ApiKeys;

/// <summary>A store that counts lookups and remembers every id it was asked for (never a key: K1).</summary>
internal sealed class CountingStore(ApiKeySet set) : IApiKeyStore
{
    public int Lookups;
    public List<string> Asked { get; } = [];
    public Exception? Failure { get; set; }
    public bool Asynchronous { get; set; }

    public async ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Lookups);
        lock (Asked)
            Asked.Add(keyId);
        if (Asynchronous)
            await Task.Yield();
        if (Failure is not null)
            throw Failure;
        return set.Find(keyId);
    }
}

internal static class TestKeys
{
    public static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static GeneratedApiKey New(string tenant = "acme", string client = "billing", string[]? scopes = null, DateTimeOffset? expires = null, ApiKeyFormat? format = null) =>
        (format ?? ApiKeyFormat.Default).Generate(tenant, client, scopes ?? ["orders:read"], Now, expires, plan: "gold", description: "test key");
}
