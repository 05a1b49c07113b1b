using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using Legate.Testing;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Tests;

/// <summary>
/// TLS on Envoy's links to authz, ratelimit and statsink (<c>services.tls</c>): what the loader accepts and refuses,
/// and what Envoy gets — an UpstreamTlsContext on each service cluster naming file-based SDS secrets (the listener
/// TLS's mechanism), checked by envoy-check.
/// </summary>
public sealed class ServiceTlsTests : IDisposable
{
    private readonly TempDir _out = new();

    public void Dispose() => _out.Dispose();

    /// <summary>Mutual TLS to the three services; ratelimit's certificate checked for another name than its host.</summary>
    public const string ServicesTls = """
        services:
          tls:
            ca_file: /etc/legate-tls/legate-envoy/ca.crt
            cert_file: /etc/legate-tls/legate-envoy/tls.crt
            key_file: /etc/legate-tls/legate-envoy/tls.key
          authz: { address: authz:9001 }
          ratelimit: { address: ratelimit:9002, sni: ratelimit.legate.svc }
          statsink: { address: 10.0.0.7:9003 }
        """ + "\n" + GatewayFiles.Minimal;

    private static string WithServices(string services) => GatewayFiles.Minimal + "\nservices:\n" + services;

    // ---- loading -----------------------------------------------------------------------------------------------

    [Fact]
    public void ServicesTls_Loads_WithEachServicesName()
    {
        var config = GatewayLoader.Load(new RulesFile("gw.yaml", ServicesTls));

        var tls = config.Services.Tls!;
        Assert.Equal("/etc/legate-tls/legate-envoy/ca.crt", tls.CaFile);
        Assert.Equal(new TlsCertificateFiles("/etc/legate-tls/legate-envoy/tls.crt", "/etc/legate-tls/legate-envoy/tls.key"), tls.Client);
        Assert.Null(tls.AuthzSni);
        Assert.Equal("ratelimit.legate.svc", tls.RateLimitSni);
        Assert.Null(tls.StatSinkSni);
    }

    [Fact]
    public void WithoutServicesTls_TheServicesAreCalledInH2c()
    {
        Assert.Null(GatewayLoader.Load(new RulesFile("gw.yaml", GatewayFiles.Minimal)).Services.Tls);
        Assert.Null(GatewayLoader.Load(new RulesFile("gw.yaml", WithServices("  authz: { address: authz:9001 }"))).Services.Tls);
    }

    [Fact]
    public void ACaWithoutClientCertificate_IsTlsWithoutMutualAuthentication()
    {
        var config = GatewayLoader.Load(new RulesFile("gw.yaml", WithServices("  tls: { ca_file: /etc/legate-tls/services-ca/ca.crt }")));

        Assert.Equal(new ServiceLinkTls("/etc/legate-tls/services-ca/ca.crt", null), config.Services.Tls);
    }

    [Theory]
    [InlineData("  tls: { cert_file: /c/tls.crt, key_file: /c/tls.key }", "services.tls", "needs ca_file")]
    [InlineData("  tls: {}", "services.tls", "needs ca_file")]
    [InlineData("  tls: { ca_file: /c/ca.crt, cert_file: /c/tls.crt }", "services.tls", "needs key_file")]
    [InlineData("  tls: { ca_file: /c/ca.crt, key_file: /c/tls.key }", "services.tls", "needs cert_file")]
    [InlineData("  tls: { ca_file: certs/ca.crt }", "services.tls.ca_file", "'certs/ca.crt' is not an absolute file path")]
    [InlineData("  tls: { ca_file: /c/ca.crt, cert_file: tls.crt, key_file: /c/tls.key }", "services.tls.cert_file", "'tls.crt' is not an absolute file path")]
    [InlineData("  tls: { ca_file: /c/ca.crt, cert_file: /c/tls.crt, key_file: /c/ }", "services.tls.key_file", "'/c/' is not an absolute file path")]
    [InlineData("  tls: /c/ca.crt", "services.tls", "is a mapping (ca_file, cert_file, key_file)")]
    [InlineData("  authz: { sni: authz.legate.svc }", "services.authz.sni", "is set but services.tls is not")]
    [InlineData("  tls: { ca_file: /c/ca.crt }\n  ratelimit: { sni: 10.0.0.7 }", "services.ratelimit.sni", "'10.0.0.7' is not a DNS name")]
    [InlineData("  tls: { ca_file: /c/ca.crt }\n  statsink: { sni: \"statsink:9003\" }", "services.statsink.sni", "'statsink:9003' is not a DNS name")]
    public void InvalidServicesTls_IsOneErrorNamingTheField(string services, string field, string problem)
    {
        var errors = GatewayFiles.Errors(WithServices(services));

        var error = Assert.Single(errors);
        Assert.Equal(field, error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
        Assert.NotNull(error.Line);
        Assert.False(string.IsNullOrEmpty(error.Hint), error.ToString());
    }

    [Fact]
    public void UnknownServicesTlsFields_AreErrorsWithSuggestions()
    {
        var errors = GatewayFiles.Errors(WithServices("  tls: { ca_file: /c/ca.crt, ca_fiel: /c/ca.crt, client_ca_file: /c/ca.crt }\n  authz: { snl: authz }"));

        Assert.Equal(["services.tls.ca_fiel", "services.tls.client_ca_file", "services.authz.snl"], errors.Select(e => e.Field));
        Assert.Equal("did you mean 'ca_file'?", errors[0].Hint);
        Assert.Equal("did you mean 'sni'?", errors[2].Hint);
    }

    [Fact]
    public void EveryServicesTlsError_IsReportedAtOnce_WithFileLineAndColumn()
    {
        var errors = GatewayFiles.Errors(WithServices("""
              tls:
                cert_file: tls.crt
              authz: { sni: "-" }
            """));

        Assert.Equal(
            [
                "gw.yaml:11:5: services.tls: needs ca_file",
                "gw.yaml:11:5: services.tls: needs key_file",
                "gw.yaml:11:16: services.tls.cert_file: 'tls.crt' is not an absolute file path",
                "gw.yaml:12:17: services.authz.sni: '-' is not a DNS name",
            ],
            errors.Select(e => e.ToString().Split('\n')[0]));
    }

    // ---- rendering ---------------------------------------------------------------------------------------------

    private (int ExitCode, string Stderr) Render(string yaml, params string[] extra)
    {
        using var dir = GatewayFiles.Write(yaml);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = Cli.Run(["render", dir.File("gateway.yaml"), "-o", _out.Path, "--envoy-dir", _out.File("envoy"), .. extra], stdout, stderr);
        return (exitCode, stderr.ToString());
    }

    private YamlNode Cluster(string name)
        => GatewayFiles.Load(_out.File("envoy/envoy.yaml")).Seq("static_resources", "clusters").Single(c => c.Str("name") == name);

    private YamlNode Secret(string name)
        => Assert.Single(GatewayFiles.Load(_out.File($"envoy/sds/{name}.yaml")).Seq("resources"));

    private static IEnumerable<(string Type, string Name)> SanMatchers(YamlNode context)
        => context.Seq("common_tls_context", "combined_validation_context", "default_validation_context", "match_typed_subject_alt_names")
            .Select(m => (m.Str("san_type")!, m.Str("matcher", "exact")!));

    [Fact]
    public void ServiceClusters_CallTheServicesOverTls_CheckingTheirNames_WithSdsSecrets_AndAlpnH2()
    {
        var (exitCode, stderr) = Render(ServicesTls);
        Assert.True(exitCode == Cli.Ok, stderr);

        var sdsDir = _out.File("envoy/sds");
        foreach (var (cluster, sni, san) in new[]
        {
            ("legate_authz", "authz", ("DNS", "authz")),
            ("legate_ratelimit", "ratelimit.legate.svc", ("DNS", "ratelimit.legate.svc")),
            // An IP address: no SNI (TLS cannot carry one), and the certificate must name the IP.
            ("legate_statsink", null, ("IP_ADDRESS", "10.0.0.7")),
        })
        {
            var context = Cluster(cluster).Get("transport_socket", "typed_config")!;
            Assert.Equal("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", context.Str("@type"));
            Assert.Equal(sni, context.Str("sni"));
            Assert.Equal([san], SanMatchers(context));
            Assert.Equal(["h2"], context.Seq("common_tls_context", "alpn_protocols").Select(p => p.Str()));
            // No file names or contents in the cluster: SDS references only, so rotation needs no restart.
            Assert.Null(context.Get("common_tls_context", "tls_certificates"));
            Assert.Null(context.Get("common_tls_context", "validation_context"));
            var references = context.Seq("common_tls_context", "tls_certificate_sds_secret_configs")
                .Append(context.Get("common_tls_context", "combined_validation_context", "validation_context_sds_secret_config")!).ToList();
            Assert.Equal(["legate_services-client", "legate_services-ca"], references.Select(r => r.Str("name")));
            foreach (var reference in references)
            {
                var name = reference.Str("name")!;
                Assert.Equal(Path.Combine(sdsDir, name + ".yaml"), reference.Str("sds_config", "path_config_source", "path"));
                Assert.Equal(sdsDir, reference.Str("sds_config", "path_config_source", "watched_directory", "path"));
                Assert.Equal(name, Secret(name).Str("name"));
            }
            // The gRPC health check goes over the cluster's transport socket: no health-check-only socket or ALPN.
            var check = Cluster(cluster).Seq("health_checks").Single();
            Assert.NotNull(check.Get("grpc_health_check"));
            Assert.Null(check.Get("transport_socket_match_criteria"));
            Assert.Null(check.Get("tls_options"));
        }
        Assert.Contains("statsink 10.0.0.7:9003; over mutual TLS", File.ReadAllText(_out.File("summary.txt")), StringComparison.Ordinal);
    }

    [Fact]
    public void SdsSecrets_NameEnvoysClientCertificateAndTheServicesCa_AndWatchTheirFolders()
    {
        var (exitCode, stderr) = Render(ServicesTls);
        Assert.True(exitCode == Cli.Ok, stderr);

        var client = Secret("legate_services-client");
        Assert.Equal("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", client.Str("@type"));
        Assert.Equal("/etc/legate-tls/legate-envoy/tls.crt", client.Str("tls_certificate", "certificate_chain", "filename"));
        Assert.Equal("/etc/legate-tls/legate-envoy/tls.key", client.Str("tls_certificate", "private_key", "filename"));
        Assert.Equal("/etc/legate-tls/legate-envoy", client.Str("tls_certificate", "watched_directory", "path"));
        var ca = Secret("legate_services-ca");
        Assert.Equal("/etc/legate-tls/legate-envoy/ca.crt", ca.Str("validation_context", "trusted_ca", "filename"));
        Assert.Equal("/etc/legate-tls/legate-envoy", ca.Str("validation_context", "watched_directory", "path"));
        Assert.Equal(["legate_services-ca.yaml", "legate_services-client.yaml"],
            Directory.GetFiles(_out.File("envoy/sds")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void WithoutClientCertificate_EnvoyPresentsNone()
    {
        var (exitCode, stderr) = Render(WithServices("  tls: { ca_file: /etc/legate-tls/services-ca/ca.crt }"));
        Assert.True(exitCode == Cli.Ok, stderr);

        var context = Cluster("legate_authz").Get("transport_socket", "typed_config")!;
        Assert.Null(context.Get("common_tls_context", "tls_certificate_sds_secret_configs"));
        Assert.Equal("legate_services-ca", context.Str("common_tls_context", "combined_validation_context", "validation_context_sds_secret_config", "name"));
        Assert.Equal(["legate_services-ca.yaml"], Directory.GetFiles(_out.File("envoy/sds")).Select(Path.GetFileName));
        Assert.Contains("statsink statsink:9003; over TLS\n", File.ReadAllText(_out.File("summary.txt")), StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutServicesTls_NoServiceClusterHasATransportSocket()
    {
        var (exitCode, stderr) = Render(GatewayFiles.Minimal);
        Assert.True(exitCode == Cli.Ok, stderr);

        foreach (var cluster in new[] { "legate_authz", "legate_ratelimit", "legate_statsink" })
            Assert.Null(Cluster(cluster).Get("transport_socket"));
        Assert.False(Directory.Exists(_out.File("envoy/sds")) && Directory.GetFiles(_out.File("envoy/sds")).Length > 0);
    }

    [Fact]
    public void ServicesTlsAndListenerTls_KeepTheirOwnSecrets()
    {
        var yaml = ServicesTls + """

            listeners:
              - name: legate_services
                port: 8443
                tls:
                  certificates: [{ cert_file: /etc/legate-tls/acme/tls.crt, key_file: /etc/legate-tls/acme/tls.key }]
                  client_ca_file: /etc/legate-tls/clients/ca.crt
            """;
        var (exitCode, stderr) = Render(yaml);
        Assert.True(exitCode == Cli.Ok, stderr);

        // A listener may be named like the services' secrets' prefix: its secrets still end in -cert-N and -client-ca.
        Assert.Equal(["legate_services-ca.yaml", "legate_services-cert-0.yaml", "legate_services-client-ca.yaml", "legate_services-client.yaml"],
            Directory.GetFiles(_out.File("envoy/sds")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void SecretsOfServicesTls_AreRemovedWithIt()
    {
        Assert.Equal(Cli.Ok, Render(ServicesTls).ExitCode);

        var (exitCode, stderr) = Render(GatewayFiles.Minimal);

        Assert.True(exitCode == Cli.Ok, stderr);
        Assert.Empty(Directory.GetFiles(_out.File("envoy/sds")));
        Assert.Null(Cluster("legate_authz").Get("transport_socket"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EnvoyCheck_AcceptsTheServiceClusters_AndEverySdsFile(bool isStatic)
    {
        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        var (exitCode, stderr) = Render(ServicesTls, isStatic ? ["--static"] : []);
        Assert.True(exitCode == Cli.Ok, stderr);

        // envoy-check follows the bootstrap's LDS/CDS files but not SDS ones: those are given as xDS resource files.
        var secrets = Directory.GetFiles(_out.File("envoy/sds")).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(2, secrets.Length);
        var (code, output) = await SharedTools.RunAsync(tool!, [_out.File("envoy/envoy.yaml"), .. secrets]);

        Assert.True(code == 0, output);
        Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
        Assert.Contains("UpstreamTlsContext", File.ReadAllText(_out.File("envoy/envoy.yaml")), StringComparison.Ordinal);
    }
}
