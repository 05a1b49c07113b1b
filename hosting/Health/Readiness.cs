using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Legate.Hosting.Health;

/// <summary>Health check tags: <c>live</c> checks answer <c>/healthz</c>, <c>ready</c> checks answer <c>/readyz</c> and the gRPC health service.</summary>
public static class HealthTags
{
    public const string Live = "live";
    public const string Ready = "ready";
}

/// <summary>Whether the service should receive traffic: false until it has started and again once it starts draining.</summary>
public sealed class ReadinessState
{
    private volatile string? _notReadyReason = "starting";

    /// <summary>True while the service accepts new work.</summary>
    public bool IsReady => _notReadyReason is null;

    /// <summary>Why the service is not ready, or null when it is.</summary>
    public string? NotReadyReason => _notReadyReason;

    internal void MarkStarted() => _notReadyReason = null;

    internal void MarkDraining() => _notReadyReason = "draining: shutdown in progress";
}

internal sealed class ReadinessHealthCheck(ReadinessState state) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(state.NotReadyReason is { } reason ? HealthCheckResult.Unhealthy(reason) : HealthCheckResult.Healthy());
}
