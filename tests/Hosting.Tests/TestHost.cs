using Envoy.Service.Auth.V3;
using Grpc.Core;
using Grpc.Net.Client;
using Legate.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Prometheus;

namespace Legate.Hosting.Tests;

/// <summary>A real Kestrel host on free ports of 127.0.0.1 built with the shared hosting and a controllable gRPC service.</summary>
internal sealed class TestHost : IAsyncDisposable
{
    public const string ServiceName = "probe";

    private readonly Dictionary<string, GrpcChannel> _channels = [];

    private TestHost(WebApplication app, CollectorRegistry registry)
    {
        App = app;
        Registry = registry;
    }

    public WebApplication App { get; }

    public CollectorRegistry Registry { get; }

    public ControlledAuthorization Service => App.Services.GetRequiredService<ControlledAuthorization>();

    public LegateEndpoints Endpoints => App.Services.GetRequiredService<LegateEndpoints>();

    public GrpcChannel Channel => ChannelFor(Endpoints.Grpc);

    public HttpClient Http { get; } = new();

    public static async Task<TestHost> StartAsync(IDictionary<string, string?>? settings = null, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder();
        var defaults = new Dictionary<string, string?>
        {
            ["Legate:GrpcPort"] = "0",
            ["Legate:HttpPort"] = "0",
            ["Legate:BindAddress"] = "127.0.0.1",
            ["Legate:DrainDelay"] = "00:00:00",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            defaults[key] = value;
        builder.Configuration.AddInMemoryCollection(defaults);
        var registry = Prometheus.Metrics.NewCustomRegistry();
        builder.Services.AddSingleton(registry);
        builder.AddLegateHosting(ServiceName, "envoy.service.auth.v3.Authorization");
        builder.Services.AddSingleton<ControlledAuthorization>();
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapLegateEndpoints();
        app.MapGrpcService<ControlledAuthorization>();
        await app.StartAsync(TestContext.Current.CancellationToken);
        return new TestHost(app, registry);
    }

    public GrpcChannel ChannelFor(Uri address, GrpcChannelOptions? options = null)
    {
        var key = address.ToString();
        if (!_channels.TryGetValue(key, out var channel))
            _channels[key] = channel = GrpcChannel.ForAddress(address, options ?? new GrpcChannelOptions());
        return channel;
    }

    public async Task<string> ScrapeAsync() =>
        await Http.GetStringAsync(new Uri(Endpoints.Http, "/metrics"), TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        foreach (var channel in _channels.Values)
            channel.Dispose();
        Http.Dispose();
        await App.StopAsync(CancellationToken.None);
        await App.DisposeAsync();
    }
}

/// <summary>An ext_authz service whose answers a test controls: allow, deny by throwing, or hold a call until released.</summary>
internal sealed class ControlledAuthorization : Authorization.AuthorizationBase
{
    private TaskCompletionSource? _gate;

    public TaskCompletionSource Entered { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>From now on calls wait until <see cref="Release"/>.</summary>
    public void Hold() => _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Release() => _gate?.TrySetResult();

    public override async Task<CheckResponse> Check(CheckRequest request, ServerCallContext context)
    {
        if (request.Attributes?.ContextExtensions.TryGetValue("fail", out var code) == true)
            throw new RpcException(new Status((StatusCode)int.Parse(code, System.Globalization.CultureInfo.InvariantCulture), "asked to fail"));
        if (_gate is { } gate)
        {
            Entered.TrySetResult();
            await gate.Task;
        }
        return new CheckResponse { Status = new Google.Rpc.Status { Code = 0 } };
    }
}
