using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Gateway.Render;

namespace Legate.Gateway.Up;

/// <summary>
/// What <c>legate up</c> runs: the gateway file rendered into a work folder, the three services on that folder's
/// configs, and an Envoy bootstrap pointing at the services' actual addresses, ready for <c>envoy -c</c>.
/// </summary>
internal sealed class LocalGateway : IAsyncDisposable
{
    /// <summary>The services' usual ports (gRPC, HTTP): authz, ratelimit, statsink.</summary>
    public static readonly IReadOnlyList<(int Grpc, int Http)> DefaultPorts = [(9001, 9011), (9002, 9012), (9003, 9013)];

    private static readonly IReadOnlyList<(int Grpc, int Http)> FreePorts = [(0, 0), (0, 0), (0, 0)];

    /// <summary>The sample's files, embedded from deploy/examples (the gateway file names the other two).</summary>
    private static readonly string[] SampleFiles = ["gateway.yaml", "keys.yaml", "idp.jwks.json"];

    private readonly LocalServices _services;

    private LocalGateway(LocalServices services, EchoUpstream? echo, string outputDir, string summary, bool servicesTlsDropped)
    {
        _services = services;
        Echo = echo;
        OutputDir = outputDir;
        Summary = summary;
        ServicesTlsDropped = servicesTlsDropped;
    }

    /// <summary>The gateway file has <c>services.tls</c>, which the rendered Envoy config leaves out: the embedded services speak h2c.</summary>
    public bool ServicesTlsDropped { get; }

    /// <summary>The sample's backend (null for a gateway file of the user's own, whose backends are theirs).</summary>
    public EchoUpstream? Echo { get; }

    public string OutputDir { get; }

    /// <summary>What render printed (the rendered routes, policies and limits).</summary>
    public string Summary { get; }

    public IReadOnlyList<RunningService> Services => _services.Services;

    public string EnvoyBootstrap => Path.Combine(OutputDir, "envoy", "envoy.yaml");

    /// <summary>The command that starts Envoy against the rendered configuration, as is.</summary>
    public string EnvoyCommand => $"envoy -c {EnvoyBootstrap}";

    /// <summary>Cancelled when a service stops on its own.</summary>
    public CancellationToken Stopping => _services.Stopping;

    /// <summary>Renders <paramref name="gatewayFile"/> (or the bundled sample) into <paramref name="outputDir"/> and starts the services.</summary>
    /// <exception cref="GatewayFileException">The gateway file is invalid; nothing was started.</exception>
    public static async Task<LocalGateway> StartAsync(string? gatewayFile, string outputDir, bool freePorts, CancellationToken cancellationToken)
    {
        outputDir = Path.GetFullPath(outputDir);
        var config = GatewayLoader.Load(gatewayFile ?? ExtractSample(Path.Combine(outputDir, "sample")));
        var options = new RenderOptions(EnvoyDir: Path.Combine(outputDir, "envoy"));

        // The services' files first (their configs do not depend on where the services listen), then the services.
        var first = GatewayRenderer.Render(config, options);
        SelfCheck.Run(config, first);
        OutputWriter.Write(outputDir, [.. first.Files.Where(f => !f.Path.StartsWith("envoy/", StringComparison.Ordinal))]);
        var services = await LocalServices.StartAsync(outputDir, freePorts ? FreePorts : DefaultPorts, cancellationToken).ConfigureAwait(false);
        EchoUpstream? echo = null;
        try
        {
            // The sample's backends are compose's upstream:8080, unknown on this machine: an echo server stands in.
            if (gatewayFile is null)
                echo = await EchoUpstream.StartAsync(freePorts ? 0 : EchoUpstream.DefaultPort, cancellationToken).ConfigureAwait(false);
            // Envoy's bootstrap last, once the ports are known: the services block replaced by where they really listen.
            var local = config with
            {
                Services = config.Services with
                {
                    Authz = Local(services.Services[0]),
                    RateLimit = Local(services.Services[1]),
                    StatSink = Local(services.Services[2]),
                    // The embedded services listen in h2c on loopback, without the certificates services.tls names.
                    Tls = null,
                },
                Backends = echo is null ? config.Backends : [.. config.Backends.Select(b => b with
                {
                    Endpoints = [new ServiceAddress("127.0.0.1", echo.Port)],
                    Tls = false, Sni = null, CaFile = null, Http2 = false,
                })],
            };
            var result = GatewayRenderer.Render(local, options);
            SelfCheck.Run(local, result);
            OutputWriter.Write(outputDir, result.Files);
            return new LocalGateway(services, echo, outputDir, result[GatewayRenderer.SummaryFile].Text, config.Services.Tls is not null);
        }
        catch
        {
            if (echo is not null)
                await echo.DisposeAsync().ConfigureAwait(false);
            await services.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static ServiceAddress Local(RunningService service) => new(service.Grpc.Host, service.Grpc.Port);

    /// <summary>Writes the bundled sample gateway file and the two files it names; returns the gateway file's path.</summary>
    private static string ExtractSample(string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var name in SampleFiles)
        {
            using var resource = typeof(LocalGateway).Assembly.GetManifestResourceStream("sample/" + name)
                ?? throw new InvalidOperationException($"legate was built without its sample file {name}.");
            using var file = File.Create(Path.Combine(dir, name));
            resource.CopyTo(file);
        }
        return Path.Combine(dir, SampleFiles[0]);
    }

    /// <summary>Stops the three services together, each draining first, then the sample's backend.</summary>
    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync().ConfigureAwait(false);
        if (Echo is not null)
            await Echo.DisposeAsync().ConfigureAwait(false);
    }
}
