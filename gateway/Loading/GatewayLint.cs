using Legate.Gateway.Model;

namespace Legate.Gateway.Loading;

/// <summary>
/// Settings that are valid but dangerous: printed loudly by validate, render and up, without failing them.
/// </summary>
internal static class GatewayLint
{
    /// <summary>The warnings for <paramref name="config"/> loaded from <paramref name="path"/>, one line each.</summary>
    public static IEnumerable<string> Warnings(GatewayConfig config, string path)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Services.AuthzFailOpen)
        {
            // Envoy's failure_mode_allow is per filter, not per route: it opens every authenticated route at once.
            yield return $"{path}: services.authz.failure_mode: warning: 'allow' sends every request to the backends " +
                "unchecked (no authentication, no identity headers) whenever authz is slow or down, on every route; " +
                "keep 'deny' unless every route may be served to anyone";
        }
    }

    /// <summary>Writes the warnings to <paramref name="stderr"/>.</summary>
    public static void Print(GatewayConfig config, string path, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(stderr);
        foreach (var warning in Warnings(config, path))
            stderr.WriteLine(warning);
    }
}
