using Envoy.Service.Auth.V3;
using Legate.Testing;
using AuthorizationClient = Envoy.Service.Auth.V3.Authorization.AuthorizationClient;

namespace Legate.Authz.Tests;

public sealed class AuthorizationServiceTests : IDisposable
{
    private readonly LegateServiceFactory<Program> _service = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static CheckRequest RequestWithBearerToken() => new()
    {
        Attributes = new AttributeContext
        {
            Request = new AttributeContext.Types.Request
            {
                Http = new AttributeContext.Types.HttpRequest
                {
                    Method = "GET",
                    Path = "/orders?page=2",
                    Host = "api.example.com",
                    Headers = { [":authority"] = "api.example.com", ["authorization"] = "Bearer abc.def.ghi" },
                },
            },
            ContextExtensions = { ["policy"] = "default", ["tenant"] = "acme" },
        },
    };

    [Fact]
    public async Task Check_WithoutPolicies_DeniesWith403AndSaysWhy()
    {
        var client = new AuthorizationClient(_service.Channel);

        var response = await client.CheckAsync(RequestWithBearerToken(), cancellationToken: Ct);

        Assert.Equal((int)Grpc.Core.StatusCode.PermissionDenied, response.Status.Code);
        Assert.Equal(CheckResponse.HttpResponseOneofCase.DeniedResponse, response.HttpResponseCase);
        Assert.Equal(Envoy.Type.V3.StatusCode.Forbidden, response.DeniedResponse.Status.Code);
        Assert.Contains("no authorization policy is configured", response.DeniedResponse.Body, StringComparison.Ordinal);
        Assert.Contains(response.DeniedResponse.Headers, h => h.Header.Key == "x-ext-auth-reason" && h.Header.Value == "no-policy");
    }

    [Fact]
    public async Task Check_EmptyRequest_IsStillDenied()
    {
        var client = new AuthorizationClient(_service.Channel);

        var response = await client.CheckAsync(new CheckRequest(), cancellationToken: Ct);

        Assert.NotEqual(0, response.Status.Code);
        Assert.NotEqual(CheckResponse.HttpResponseOneofCase.OkResponse, response.HttpResponseCase);
    }

    [Fact]
    public async Task Check_IsCountedInServerMetrics()
    {
        var client = new AuthorizationClient(_service.Channel);

        await client.CheckAsync(new CheckRequest(), cancellationToken: Ct);
        var scrape = await _service.ScrapeAsync(Ct);

        Assert.Contains("grpc_server_handled_total{grpc_service=\"envoy.service.auth.v3.Authorization\",grpc_method=\"Check\",grpc_type=\"unary\",grpc_code=\"OK\"} 1", scrape, StringComparison.Ordinal);
    }

    public void Dispose() => _service.Dispose();
}
