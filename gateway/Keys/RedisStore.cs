using Legate.Authz.ApiKeys;
using StackExchange.Redis;

namespace Legate.Gateway.Keys;

/// <summary>A short-lived connection to the Redis key store for one <c>legate keys</c> command.</summary>
internal sealed class RedisStore : IAsyncDisposable
{
    private readonly ConnectionMultiplexer _connection;

    private RedisStore(ConnectionMultiplexer connection, RedisApiKeyStore store)
    {
        _connection = connection;
        Store = store;
    }

    /// <summary>The store, with the same key layout (default prefix) the authz service reads.</summary>
    public RedisApiKeyStore Store { get; }

    /// <exception cref="RedisStoreException">The connection string is bad or Redis cannot be reached (the message holds no password).</exception>
    public static async Task<RedisStore> ConnectAsync(string configuration, TimeProvider time)
    {
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(configuration);
        }
        catch (ArgumentException e)
        {
            throw new RedisStoreException($"--redis is not a valid connection string: {e.Message}", e);
        }
        options.AbortOnConnectFail = true;
        options.ClientName ??= "legate-keys";
        var where = options.ToString(includePassword: false);
        try
        {
            var connection = await ConnectionMultiplexer.ConnectAsync(options);
            // A command-line tool can wait for Redis a little longer than a request can; no local cache: every read is fresh.
            return new RedisStore(connection, new RedisApiKeyStore(connection, new RedisApiKeyStoreOptions { CacheTtl = TimeSpan.Zero, Timeout = TimeSpan.FromSeconds(10) }, time));
        }
        catch (RedisException e)
        {
            throw new RedisStoreException($"cannot connect to Redis at {where}: {e.GetType().Name}", e);
        }
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}

/// <summary>The Redis store cannot be used by this command.</summary>
internal sealed class RedisStoreException : Exception
{
    public RedisStoreException()
    {
    }

    public RedisStoreException(string message)
        : base(message)
    {
    }

    public RedisStoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
