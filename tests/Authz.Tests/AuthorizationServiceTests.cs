using Envoy.Service.Auth.V3;
using Google.Protobuf;
using Legate.Testing;
using AuthorizationClient = Envoy.Service.Auth.V3.Authorization.AuthorizationClient;

namespace Legate.Authz.Tests;

/// <summary>The service on its shipped sample policy and settings (authz/rules/policies.yaml, authz/appsettings.json).</summary>
public sealed class AuthorizationServiceTests : IDisposable
{
    // The demo key printed in authz/rules/keys.yaml (a local sample, not a secret).
    private const string DemoKey = "lgt_aS6L5CMAXtFg_hbIlGbLThBf1AxDFNAgKvWC9eTJSsKV5vwS1bpG1igq_0YnQsX";

    private readonly LegateServiceFactory<Program> _service = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static CheckRequest Request(string host, IDictionary<string, string>? headers = null, string? policy = null)
    {
        var http = new AttributeContext.Types.HttpRequest { Method = "GET", Path = "/orders?page=2", Host = host, Headers = { [":authority"] = host } };
        foreach (var (k, v) in headers ?? new Dictionary<string, string>())
            http.Headers[k] = v;
        var request = new CheckRequest { Attributes = new AttributeContext { Request = new AttributeContext.Types.Request { Http = http } } };
        if (policy is not null)
            request.Attributes.ContextExtensions["policy"] = policy;
        return request;
    }

    [Fact]
    public async Task SamplePolicy_DemoKeyOnLocalhost_IsAllowed()
    {
        var client = new AuthorizationClient(_service.Channel);

        var response = await client.CheckAsync(Request("localhost:10000", new Dictionary<string, string> { ["x-api-key"] = DemoKey }), cancellationToken: Ct);

        Assert.Equal(0, response.Status.Code);
        Assert.Equal("demo-client", response.DynamicMetadata.Fields["client"].StringValue);
    }

    [Fact]
    public async Task SamplePolicy_BearerTokenItCannotVerify_Is401()
    {
        var client = new AuthorizationClient(_service.Channel);

        var response = await client.CheckAsync(Request("api.acme.example", new Dictionary<string, string> { ["authorization"] = "Bearer abc.def.ghi" }), cancellationToken: Ct);

        Assert.Equal((int)Grpc.Core.StatusCode.Unauthenticated, response.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.Unauthorized, response.DeniedResponse.Status.Code);
    }

    [Fact]
    public async Task SamplePolicy_PublicPolicy_AllowsAnonymous()
    {
        var client = new AuthorizationClient(_service.Channel);

        var response = await client.CheckAsync(Request("api.acme.example", policy: "public"), cancellationToken: Ct);

        Assert.Equal(0, response.Status.Code);
    }

    [Fact]
    public async Task E1_EmptyRequest_IsStillDenied()
    {
        var client = new AuthorizationClient(_service.Channel);

        var response = await client.CheckAsync(new CheckRequest(), cancellationToken: Ct);

        Assert.NotEqual(0, response.Status.Code);
        Assert.NotEqual(CheckResponse.HttpResponseOneofCase.OkResponse, response.HttpResponseCase);
    }

    [Fact]
    public async Task E10_AFiveMegabyteCheckRequest_IsDecided_NotRefusedByTheTransport()
    {
        // Envoy sends up to 8 MiB of request headers, and a body when with_request_body asks: over gRPC's 4 MiB
        // default the call would fail RESOURCE_EXHAUSTED and Envoy would take its error path instead of our answer.
        var client = new AuthorizationClient(_service.Channel);
        var allowed = Request("localhost:10000", new Dictionary<string, string> { ["x-api-key"] = DemoKey });
        allowed.Attributes.Request.Http.Body = new string('x', 5 * 1024 * 1024);
        var anonymous = Request("localhost:10000");
        anonymous.Attributes.Request.Http.Headers["x-padding"] = new string('y', 5 * 1024 * 1024);

        var allow = await client.CheckAsync(allowed, cancellationToken: Ct);
        var deny = await client.CheckAsync(anonymous, cancellationToken: Ct);

        Assert.Equal(0, allow.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.Unauthorized, deny.DeniedResponse.Status.Code);
    }

    [Fact]
    public async Task Check_IsCountedInServerMetrics()
    {
        var client = new AuthorizationClient(_service.Channel);

        await client.CheckAsync(new CheckRequest(), cancellationToken: Ct);
        var scrape = await _service.ScrapeAsync(Ct);

        Assert.Contains("grpc_server_handled_total{grpc_service=\"envoy.service.auth.v3.Authorization\",grpc_method=\"Check\",grpc_type=\"unary\",grpc_code=\"OK\"} 1", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EncodeRawHeaders_TheKeyInHeaderMap_IsAllowed_TheKeyTwiceThere_Is401()
    {
        // Envoy's ext_authz with encode_raw_headers: true sends header_map (raw bytes, repeats apart) instead of headers.
        static CheckRequest Raw(string host, params (string Key, string Value)[] headers)
        {
            var request = Request(host);
            var http = request.Attributes.Request.Http;
            http.Headers.Clear();
            http.HeaderMap = new Envoy.Config.Core.V3.HeaderMap();
            foreach (var (key, value) in headers.Prepend((":authority", host)))
                http.HeaderMap.Headers.Add(new Envoy.Config.Core.V3.HeaderValue { Key = key, RawValue = ByteString.CopyFromUtf8(value) });
            return request;
        }
        var client = new AuthorizationClient(_service.Channel);

        var allowed = await client.CheckAsync(Raw("localhost:10000", ("x-api-key", DemoKey)), cancellationToken: Ct);
        // Joined as Envoy's map joins them ("key,key"): two values, refused, where taking the last one would allow.
        var twice = await client.CheckAsync(Raw("localhost:10000", ("x-api-key", DemoKey), ("x-api-key", DemoKey)), cancellationToken: Ct);

        Assert.Equal(0, allowed.Status.Code);
        Assert.Equal("demo-client", allowed.DynamicMetadata.Fields["client"].StringValue);
        Assert.Equal(Envoy.Type.V3.StatusCode.Unauthorized, twice.DeniedResponse.Status.Code);
    }

    [Fact]
    public async Task AMalformedCheckRequest_IsRefusedInvalidArgument_NeverAnsweredOk()
    {
        // Raw bytes through the method's path: the client cannot send these with the generated types.
        var raw = new Grpc.Core.Method<byte[], byte[]>(Grpc.Core.MethodType.Unary, "envoy.service.auth.v3.Authorization", "Check",
            Grpc.Core.Marshallers.Create(b => b, b => b), Grpc.Core.Marshallers.Create(b => b, b => b));
        var truncated = Request("localhost:10000", new Dictionary<string, string> { ["x-api-key"] = DemoKey }).ToByteArray()[..^3];

        var e = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => _service.Channel.CreateCallInvoker()
            .AsyncUnaryCall(raw, null, new Grpc.Core.CallOptions(cancellationToken: Ct), truncated).ResponseAsync);

        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("Malformed CheckRequest: Truncated message", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reflection_ListsTheAuthorizationService_BoundWithTheRequestView()
    {
        var (services, declaringFileFound) = await GrpcReflection.AskAsync(_service.Channel, "envoy.service.auth.v3.Authorization", Ct);

        Assert.Contains("envoy.service.auth.v3.Authorization", services);
        Assert.True(declaringFileFound);
    }

    public void Dispose() => _service.Dispose();
}
