using Microsoft.Extensions.Logging;

namespace Legate.Authz.Jwt;

/// <summary>Log events of JWT validation. Event ids and names are a contract with log pipelines: do not renumber. Never log tokens.</summary>
internal static partial class JwtLog
{
    [LoggerMessage(EventId = 300, EventName = "JwksLoaded", Level = LogLevel.Information,
        Message = "JWT provider '{Provider}': {KeyCount} keys loaded from {Source} (key set version {Version})")]
    public static partial void JwksLoaded(ILogger logger, string provider, int keyCount, string source, long version);

    [LoggerMessage(EventId = 301, EventName = "JwksFetchFailed", Level = LogLevel.Warning,
        Message = "JWT provider '{Provider}': fetching keys from {Source} failed ({Error}); {KeptKeys} last good keys stay in force")]
    public static partial void JwksFetchFailed(ILogger logger, string provider, string source, string error, int keptKeys);

    [LoggerMessage(EventId = 302, EventName = "JwksRefetchThrottled", Level = LogLevel.Debug,
        Message = "JWT provider '{Provider}': unknown key id, keys were fetched less than {MinRefetchSeconds} s ago; not fetching again")]
    public static partial void JwksRefetchThrottled(ILogger logger, string provider, double minRefetchSeconds);
}
