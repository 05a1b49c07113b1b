using Grpc.Core;
using Legate.Authz.Policies;
using Legate.Authz.Wire;

namespace Legate.Authz;

/// <summary>Envoy's ext_authz v3 <c>Check</c>, answered by <see cref="AuthorizationDecider"/> from the policy file.</summary>
internal sealed class AuthorizationService(AuthorizationDecider decider) : CheckBinding.ServiceBase
{
    public override Task<CheckAnswer> Check(CheckRequestView request, ServerCallContext context)
        => decider.DecideAsync(request, context.CancellationToken);
}
