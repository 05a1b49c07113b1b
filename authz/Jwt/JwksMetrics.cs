using Prometheus;

namespace Legate.Authz.Jwt;

/// <summary>
/// <c>legate_authz_jwks_fetches_total{provider,result}</c>: result is one of <see cref="JwksFetchResult"/>'s
/// lower-case names, so cardinality is bounded by the configured providers.
/// </summary>
public sealed class JwksMetrics
{
    private readonly Counter _fetches;

    public JwksMetrics(IMetricFactory metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _fetches = metrics.CreateCounter("legate_authz_jwks_fetches_total", "JWKS and OIDC discovery fetches, by provider and result.", ["provider", "result"]);
    }

    internal void Fetched(string provider, JwksFetchResult result) => _fetches.WithLabels(provider, ResultLabel(result)).Inc();

    private static string ResultLabel(JwksFetchResult result) => result switch
    {
        JwksFetchResult.Success => "success",
        JwksFetchResult.Unchanged => "unchanged",
        JwksFetchResult.HttpError => "http_error",
        JwksFetchResult.Timeout => "timeout",
        JwksFetchResult.TooLarge => "too_large",
        JwksFetchResult.Invalid => "invalid",
        _ => "error",
    };
}

public enum JwksFetchResult
{
    Success,
    Unchanged,
    HttpError,
    Timeout,
    TooLarge,
    Invalid,
    Error,
}
