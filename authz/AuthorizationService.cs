using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using Grpc.Core;
using GrpcStatusCode = Grpc.Core.StatusCode;
using HttpStatusCode = Envoy.Type.V3.StatusCode;

namespace Legate.Authz;

/// <summary>
/// Envoy's ext_authz v3 <c>Check</c>. Until policies exist every request is denied (fail closed) with a
/// reason that says so; a deny is never mistaken for an allow.
/// </summary>
internal sealed class AuthorizationService : Authorization.AuthorizationBase
{
    private const string Reason = "no authorization policy is configured; Legate authz denies every request until one is";

    // One immutable answer shared by every call: nothing is allocated per request.
    private static readonly CheckResponse NoPolicy = new()
    {
        Status = new Google.Rpc.Status { Code = (int)GrpcStatusCode.PermissionDenied, Message = Reason },
        DeniedResponse = new DeniedHttpResponse
        {
            Status = new Envoy.Type.V3.HttpStatus { Code = HttpStatusCode.Forbidden },
            Headers =
            {
                new HeaderValueOption
                {
                    Header = new HeaderValue { Key = "x-ext-auth-reason", Value = "no-policy" },
                    AppendAction = HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd,
                },
            },
            Body = Reason,
        },
    };

    private static readonly Task<CheckResponse> NoPolicyTask = Task.FromResult(NoPolicy);

    public override Task<CheckResponse> Check(CheckRequest request, ServerCallContext context) => NoPolicyTask;
}
