using System.Globalization;
using Legate.Authz;
using Legate.Authz.ApiKeys;
using Legate.Authz.Jwt;
using Legate.Authz.Policies;
using Legate.Hosting.Redis;
using Legate.Hosting.Rules;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Prometheus;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wiring of the authz service.</summary>
public static class AuthzExtensions
{
    /// <summary>The Envoy gRPC service authz implements, also a name the gRPC health service answers for.</summary>
    public const string GrpcServiceName = "envoy.service.auth.v3.Authorization";

    /// <summary>The rules' name: the policy file is configured under <c>Legate:Rules:authz:Path</c>.</summary>
    public const string RulesName = "authz";

    /// <summary>How many validated JWTs are remembered (default 10 000; 0 = none).</summary>
    public const string TokenCacheCapacityKey = "Legate:Authz:TokenCacheCapacity";

    /// <summary>Whether RS256/RS384/RS512 signatures are verified through OpenSSL with reused contexts (default true;
    /// false: .NET's RSA for every signature). Without a usable libcrypto.so.3 .NET's RSA is used either way.</summary>
    public const string NativeRsaKey = "Legate:Authz:NativeRsa";

    public static WebApplicationBuilder AddAuthz(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        // A CheckRequest carries the request's headers, and Envoy allows up to 8 MiB of them.
        builder.AddLegateServiceDefaults([new("Legate:MaxReceiveMessageSize", (16 * 1024 * 1024).ToString(CultureInfo.InvariantCulture))]);
        var services = builder.Services;
        services.TryAddSingleton(sp => new JwksMetrics(sp.GetRequiredService<IMetricFactory>()));
        // Redis is used when configured (api_keys: {redis: true} needs it); without it authz runs on files alone.
        var redis = !string.IsNullOrWhiteSpace(builder.Configuration[$"{RedisOptions.SectionName}:Configuration"]);
        if (redis)
            services.AddLegateRedis(builder.Configuration);
        services.TryAddSingleton(sp => new ApiKeyStores(sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptionsMonitor<RulesOptions>>().Get(RulesName), sp.GetRequiredService<IMetricFactory>(),
            sp.GetRequiredService<ILoggerFactory>(), redis ? sp.GetRequiredService<LegateRedis>().Connection : null));
        services.TryAddSingleton(sp => new AuthzPolicyLoader(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<JwksMetrics>(),
            sp.GetRequiredService<ILoggerFactory>(), sp.GetRequiredService<ApiKeyStores>()));
        builder.AddLegateRules<AuthzPolicySet, AuthzPolicyLoader>(RulesName);
        // Validated tokens kept until their exp (a repeated token costs no signature check); 0 turns the cache off
        // (the distinct-token benchmark: every call verifies a signature).
        var capacity = builder.Configuration.GetValue(TokenCacheCapacityKey, 10_000);
        if (capacity < 0)
            throw new OptionsValidationException(TokenCacheCapacityKey, typeof(int), [$"{TokenCacheCapacityKey} must be 0 (off) or more; was {capacity}."]);
        var nativeRsaText = builder.Configuration[NativeRsaKey];
        var nativeRsa = true;
        if (!string.IsNullOrEmpty(nativeRsaText) && !bool.TryParse(nativeRsaText, out nativeRsa))
            throw new OptionsValidationException(NativeRsaKey, typeof(bool), [$"{NativeRsaKey} must be true or false; was '{nativeRsaText}'."]);
        services.TryAddSingleton(sp => new JwtValidator(sp.GetRequiredService<TimeProvider>(),
            capacity == 0 ? null : new ValidatedTokenCache(sp.GetRequiredService<TimeProvider>(), capacity, metrics: sp.GetRequiredService<IMetricFactory>()),
            nativeRsa, sp.GetRequiredService<ILogger<JwtValidator>>()));
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
