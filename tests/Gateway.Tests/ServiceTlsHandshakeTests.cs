using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Legate.Hosting;
using Legate.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using YamlDotNet.RepresentationModel;
using HealthClient = Grpc.Health.V1.Health.HealthClient;

namespace Legate.Gateway.Tests;

/// <summary>
/// What <c>services.tls</c> renders for Envoy fits what the hosting library serves: a service started with
/// <c>Legate:GrpcTls</c> and <c>ClientCaPath</c> accepts a client that does exactly what the rendered cluster says —
/// the SNI, ALPN, client certificate and CA of its UpstreamTlsContext and SDS files, the names its certificate must
/// carry — and answers the cluster's gRPC health check. (Envoy itself does not run here; envoy-check covers the form.)
/// </summary>
public sealed class ServiceTlsHandshakeTests : IDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly TestCertificates _certificates = new();
    private readonly TempDir _out = new();

    public void Dispose()
    {
        _certificates.Dispose();
        _out.Dispose();
    }

    [Fact]
    public async Task AServiceWithMutualTls_AcceptsTheClientTheRenderedClusterDescribes()
    {
        // Envoy's client certificate, as a Secret would hold it.
        var clientCert = _certificates.Directory + "/envoy.crt";
        var clientKey = _certificates.Directory + "/envoy.key";
        await File.WriteAllTextAsync(clientCert, _certificates.Client.ExportCertificatePem(), Ct);
        await File.WriteAllTextAsync(clientKey, _certificates.Client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem(), Ct);

        await using var service = await StartAuthzAsync();
        var port = service.Services.GetRequiredService<LegateEndpoints>().Grpc.Port;
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal + $$"""

            services:
              tls: { ca_file: {{_certificates.CaPath}}, cert_file: {{clientCert}}, key_file: {{clientKey}} }
              authz: { address: "localhost:{{port}}" }
            """);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.True(Cli.Run(["render", dir.File("gateway.yaml"), "-o", _out.Path, "--envoy-dir", _out.File("envoy")], stdout, stderr) == Cli.Ok, stderr.ToString());

        // Everything the client does comes from the rendered cluster and the SDS files it names.
        var cluster = GatewayFiles.Load(_out.File("envoy/envoy.yaml")).Seq("static_resources", "clusters").Single(c => c.Str("name") == "legate_authz");
        var endpoint = cluster.Seq("load_assignment", "endpoints").Single().Seq("lb_endpoints").Single().Get("endpoint", "address", "socket_address")!;
        var context = cluster.Get("transport_socket", "typed_config", "common_tls_context")!;
        var sdsClient = Secret(context.Seq("tls_certificate_sds_secret_configs").Single());
        var sdsCa = Secret(context.Get("combined_validation_context", "validation_context_sds_secret_config")!);
        var names = context.Seq("combined_validation_context", "default_validation_context", "match_typed_subject_alt_names")
            .Select(m => m.Str("matcher", "exact")!).ToList();
        using var ca = X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(sdsCa.Str("validation_context", "trusted_ca", "filename")!, Ct));
        using var client = X509Certificate2.CreateFromPemFile(
            sdsClient.Str("tls_certificate", "certificate_chain", "filename")!, sdsClient.Str("tls_certificate", "private_key", "filename")!);
        string? negotiated = null;

        var handler = new SocketsHttpHandler();
        handler.SslOptions.TargetHost = cluster.Str("transport_socket", "typed_config", "sni");
        handler.SslOptions.ApplicationProtocols = [.. context.Seq("alpn_protocols").Select(p => new SslApplicationProtocol(p.Str()!))];
        handler.SslOptions.ClientCertificates = [client];
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, _, _) =>
        {
            negotiated = (sender as SslStream)?.NegotiatedApplicationProtocol.ToString();
            return certificate is not null && ChainsTo(certificate, ca) && Names(certificate).Intersect(names).Any();
        };
        using var channel = GrpcChannel.ForAddress(new Uri($"https://{endpoint.Str("address")}:{endpoint.Str("port_value")}"),
            new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
        var reply = await new HealthClient(channel).CheckAsync(
            new HealthCheckRequest { Service = cluster.Seq("health_checks").Single().Str("grpc_health_check", "service_name") }, cancellationToken: Ct);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
        Assert.Equal(["localhost"], names);
        Assert.Equal("h2", negotiated);
    }

    private static YamlNode Secret(YamlNode reference)
        => GatewayFiles.Load(reference.Str("sds_config", "path_config_source", "path")!).Seq("resources").Single(r => r.Str("name") == reference.Str("name"));

    private async Task<WebApplication> StartAuthzAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Legate:GrpcPort"] = "0",
            ["Legate:HttpPort"] = "0",
            ["Legate:BindAddress"] = "127.0.0.1",
            ["Legate:DrainDelay"] = "00:00:00",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Legate:GrpcTls:CertificatePath"] = _certificates.ServerCertificatePath,
            ["Legate:GrpcTls:KeyPath"] = _certificates.ServerKeyPath,
            ["Legate:GrpcTls:ClientCaPath"] = _certificates.CaPath,
        });
        builder.Services.AddSingleton(Prometheus.Metrics.NewCustomRegistry());
        builder.AddLegateHosting("authz", "envoy.service.auth.v3.Authorization");
        var app = builder.Build();
        app.MapLegateEndpoints();
        await app.StartAsync(Ct);
        return app;
    }

    private static bool ChainsTo(X509Certificate certificate, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var server = new X509Certificate2(certificate);
        return chain.Build(server);
    }

    private static List<string> Names(X509Certificate certificate)
    {
        using var server = new X509Certificate2(certificate);
        return server.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(san => san.EnumerateDnsNames()).ToList();
    }
}
