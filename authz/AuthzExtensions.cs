using Legate.Authz;

namespace Microsoft.Extensions.Hosting;

/// <summary>Wiring of the authz service.</summary>
public static class AuthzExtensions
{
    /// <summary>The Envoy gRPC service authz implements, also a name the gRPC health service answers for.</summary>
    public const string GrpcServiceName = "envoy.service.auth.v3.Authorization";

    public static WebApplicationBuilder AddAuthz(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }

    public static WebApplication MapAuthz(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcService<AuthorizationService>();
        return app;
    }
}
