using Legate.Authz;
using Legate.Authz.Jwt;
using Legate.Authz.Policies;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Prometheus;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wiring of the authz service.</summary>
public static class AuthzExtensions
{
    /// <summary>The Envoy gRPC service authz implements, also a name the gRPC health service answers for.</summary>
    public const string GrpcServiceName = "envoy.service.auth.v3.Authorization";

    /// <summary>The rules' name: the policy file is configured under <c>Legate:Rules:authz:Path</c>.</summary>
    public const string RulesName = "authz";

    public static WebApplicationBuilder AddAuthz(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.TryAddSingleton(sp => new JwksMetrics(sp.GetRequiredService<IMetricFactory>()));
        services.TryAddSingleton(sp => new AuthzPolicyLoader(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<JwksMetrics>(),
            sp.GetRequiredService<ILoggerFactory>()));
        builder.AddLegateRules<AuthzPolicySet, AuthzPolicyLoader>(RulesName);
        services.TryAddSingleton(sp => new ValidatedTokenCache(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new JwtValidator(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ValidatedTokenCache>()));
        services.TryAddSingleton(sp => new AuthzMetrics(sp.GetRequiredService<IMetricFactory>()));
        services.TryAddSingleton<AuthorizationDecider>();
        return builder;
    }

    public static WebApplication MapAuthz(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcService<AuthorizationService>();
        return app;
    }
}
