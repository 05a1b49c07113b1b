using Microsoft.Extensions.Logging;

namespace Legate.Hosting;

/// <summary>Log events of the shared hosting. Event ids and names are a contract with log pipelines: do not renumber.</summary>
internal static partial class HostingLog
{
    [LoggerMessage(EventId = 1, EventName = "Listening", Level = LogLevel.Information,
        Message = "{Service} listening: gRPC {GrpcAddress}, HTTP {HttpAddress} (/metrics, /healthz, /readyz)")]
    public static partial void Listening(ILogger logger, string service, string grpcAddress, string httpAddress);

    [LoggerMessage(EventId = 2, EventName = "Draining", Level = LogLevel.Information,
        Message = "{Service} stopping: not ready, serving for {DrainSeconds} s more before closing listeners")]
    public static partial void Draining(ILogger logger, string service, double drainSeconds);

    [LoggerMessage(EventId = 3, EventName = "Stopped", Level = LogLevel.Information, Message = "{Service} stopped")]
    public static partial void Stopped(ILogger logger, string service);

    [LoggerMessage(EventId = 4, EventName = "StartRefused", Level = LogLevel.Critical,
        Message = "{Service} did not start: {Reason}")]
    public static partial void StartRefused(ILogger logger, string service, string reason);

    [LoggerMessage(EventId = 10, EventName = "RulesLoaded", Level = LogLevel.Information,
        Message = "Rules '{Rules}' loaded from {Path} (version {Version})")]
    public static partial void RulesLoaded(ILogger logger, string rules, string path, long version);

    [LoggerMessage(EventId = 11, EventName = "RulesReloadFailed", Level = LogLevel.Error,
        Message = "Rules '{Rules}' not reloaded, the last good version {Version} stays in force: {Error}")]
    public static partial void RulesReloadFailed(ILogger logger, string rules, long version, string error);

    [LoggerMessage(EventId = 12, EventName = "RulesWatchFailed", Level = LogLevel.Warning,
        Message = "Rules '{Rules}': watching {Path} for changes failed; polling continues")]
    public static partial void RulesWatchFailed(ILogger logger, Exception exception, string rules, string path);

    [LoggerMessage(EventId = 13, EventName = "RulesLoaderFaulted", Level = LogLevel.Error,
        Message = "Rules '{Rules}': loading {Path} threw {ExceptionType}, a bug in the loader (its message is left out: it can quote the files) {StackTrace}")]
    public static partial void RulesLoaderFaulted(ILogger logger, string rules, string path, string exceptionType, string stackTrace);

    [LoggerMessage(EventId = 14, EventName = "RulesChangeCallbackFailed", Level = LogLevel.Warning,
        Message = "Rules '{Rules}': a change callback threw {ExceptionType}; the new rules are in force")]
    public static partial void RulesChangeCallbackFailed(ILogger logger, string rules, string exceptionType);

    [LoggerMessage(EventId = 30, EventName = "TlsCertificateReloaded", Level = LogLevel.Information,
        Message = "TLS certificate reloaded from {CertificatePath}")]
    public static partial void TlsCertificateReloaded(ILogger logger, string certificatePath);

    [LoggerMessage(EventId = 31, EventName = "TlsCertificateUnusable", Level = LogLevel.Warning,
        Message = "TLS certificate files changed but cannot be used ({ExceptionType}); the certificate loaded before, from {CertificatePath}, stays in force until they can")]
    public static partial void TlsCertificateUnusable(ILogger logger, string certificatePath, string exceptionType);

    [LoggerMessage(EventId = 32, EventName = "TlsClientCaReloaded", Level = LogLevel.Information,
        Message = "TLS client CA bundle reloaded from {ClientCaPath}")]
    public static partial void TlsClientCaReloaded(ILogger logger, string clientCaPath);

    [LoggerMessage(EventId = 33, EventName = "TlsClientCaUnusable", Level = LogLevel.Warning,
        Message = "TLS client CA bundle {ClientCaPath} changed but cannot be used ({ExceptionType}); the bundle loaded before stays in force until it can")]
    public static partial void TlsClientCaUnusable(ILogger logger, string clientCaPath, string exceptionType);

    [LoggerMessage(EventId = 20, EventName = "RedisConfigured", Level = LogLevel.Information,
        Message = "Redis: {Configuration}")]
    public static partial void RedisConfigured(ILogger logger, string configuration);

    [LoggerMessage(EventId = 21, EventName = "RedisConnectionFailed", Level = LogLevel.Warning,
        Message = "Redis connection to {Endpoint} failed ({FailureType}); retrying in the background")]
    public static partial void RedisConnectionFailed(ILogger logger, System.Net.EndPoint? endpoint, StackExchange.Redis.ConnectionFailureType failureType);

    [LoggerMessage(EventId = 22, EventName = "RedisConnectionRestored", Level = LogLevel.Information,
        Message = "Redis connection to {Endpoint} restored")]
    public static partial void RedisConnectionRestored(ILogger logger, System.Net.EndPoint? endpoint);

    [LoggerMessage(EventId = 23, EventName = "RedisNotConnectedYet", Level = LogLevel.Warning,
        Message = "Redis ({Configuration}) did not answer the first connect; retrying in the background, calls that need it answer unavailable until then")]
    public static partial void RedisNotConnectedYet(ILogger logger, string configuration);

    [LoggerMessage(EventId = 24, EventName = "RedisConnectThrew", Level = LogLevel.Warning,
        Message = "Redis ({Configuration}): the connect failed ({ExceptionType}); trying again in {RetrySeconds} s")]
    public static partial void RedisConnectThrew(ILogger logger, string configuration, string exceptionType, double retrySeconds);
}
