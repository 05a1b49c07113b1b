using Legate.Gateway.Loading;
using Legate.Gateway.Model;
using Legate.Hosting.Rules;
using Legate.Testing;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Tests;

/// <summary>
/// Listener TLS and the HTTP→HTTPS redirect: what the loader accepts and refuses (every error class), and what Envoy
/// gets — file-based SDS secrets that name the certificate files (never their contents), checked by envoy-check.
/// </summary>
public sealed class ListenerTlsTests : IDisposable
{
    private readonly TempDir _out = new();

    public void Dispose() => _out.Dispose();

    /// <summary>A plain listener redirecting to a TLS one with two certificates (different folders) and a client CA.</summary>
    public const string Tls = """
        listeners:
          - { name: http, port: 8080, https_redirect: { port: 8443 } }
          - name: https
            port: 8443
            tls:
              certificates:
                - { cert_file: /etc/legate-tls/acme/tls.crt, key_file: /etc/legate-tls/acme/tls.key }
                - { cert_file: /etc/ssl/certs/globex.pem, key_file: /etc/ssl/private/globex.key }
              min_version: "1.3"
              client_ca_file: /etc/legate-tls/clients/ca.crt
        """ + "\n" + GatewayFiles.Minimal;

    private static string WithListeners(string listeners) => GatewayFiles.Minimal + "\nlisteners:\n" + listeners;

    // ---- loading -----------------------------------------------------------------------------------------------

    [Fact]
    public void TlsAndRedirect_Load_WithTheirDefaults()
    {
        var config = GatewayLoader.Load(new RulesFile("gw.yaml", WithListeners("""
              - { name: http, port: 8080, https_redirect: true }
              - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/tls.key }] } }
            """)));

        Assert.Equal(443, config.Listeners[0].HttpsRedirectPort);
        Assert.Null(config.Listeners[0].Tls);
        var tls = config.Listeners[1].Tls!;
        Assert.Equal([new TlsCertificateFiles("/c/tls.crt", "/c/tls.key")], tls.Certificates);
        Assert.Equal(TlsVersion.Tls12, tls.MinVersion);
        Assert.Null(tls.ClientCaFile);
        Assert.False(config.Listeners[1].Redirects);
    }

    [Theory]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt }] } }",
        "listeners[0].tls.certificates[0]", "needs key_file")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ key_file: /c/tls.key }] } }",
        "listeners[0].tls.certificates[0]", "needs cert_file")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{}] } }",
        "listeners[0].tls.certificates[0]", "needs cert_file and key_file")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ cert_file: certs/tls.crt, key_file: /c/tls.key }] } }",
        "listeners[0].tls.certificates[0].cert_file", "'certs/tls.crt' is not an absolute file path")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/ }] } }",
        "listeners[0].tls.certificates[0].key_file", "'/c/' is not an absolute file path")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/tls.key }], client_ca_file: ca.pem } }",
        "listeners[0].tls.client_ca_file", "'ca.pem' is not an absolute file path")]
    [InlineData("  - { name: https, port: 8443, tls: {} }",
        "listeners[0].tls.certificates", "at least one certificate is required")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [] } }",
        "listeners[0].tls.certificates", "at least one certificate is required")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/tls.key }], min_version: \"1.4\" } }",
        "listeners[0].tls.min_version", "unknown TLS version '1.4'")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/tls.key }], min_version: 1.1 } }",
        "listeners[0].tls.min_version", "TLS 1.0 and 1.1 are not offered (deprecated by RFC 8996)")]
    [InlineData("  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/a.crt, key_file: /c/a.key }, { cert_file: /c/a.crt, key_file: /d/a.key }] } }",
        "listeners[0].tls.certificates[1].cert_file", "'/c/a.crt' is listed twice")]
    [InlineData("  - { name: https, port: 8443, https_redirect: true, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/tls.key }] } }",
        "listeners[0].https_redirect", "a listener with tls is already https: it cannot also redirect to https")]
    [InlineData("  - { name: http, port: 8080, https_redirect: { port: 8080 } }\n  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/tls.key }] } }",
        "listeners[0].https_redirect", "redirects to its own port 8080, which speaks plain HTTP")]
    [InlineData("  - { name: http, port: 8080, https_redirect: { port: 8081 } }\n  - { name: web, port: 8081 }\n  - { name: https, port: 8443, tls: { certificates: [{ cert_file: /c/tls.crt, key_file: /c/tls.key }] } }",
        "listeners[0].https_redirect", "redirects to port 8081, where listener 'web' speaks plain HTTP")]
    [InlineData("  - { name: http, port: 8080, https_redirect: true }",
        "listeners", "every listener redirects to https: none serves the routes")]
    [InlineData("  - { name: http, port: 8080, https_redirect: { port: 0 } }\n  - { name: web, port: 8081 }",
        "listeners[0].https_redirect.port", "")]
    [InlineData("  - { name: http, port: 8080, https_redirect: [443] }\n  - { name: web, port: 8081 }",
        "listeners[0].https_redirect", "is true or a mapping { port: N }")]
    [InlineData("  - { name: http, port: 8080, https_redirect: \"yes\" }\n  - { name: web, port: 8081 }",
        "listeners[0].https_redirect", "")]
    [InlineData("  - { name: https, port: 8443, tls: [/c/tls.crt] }",
        "listeners[0].tls", "is a mapping (certificates, min_version, client_ca_file)")]
    public void InvalidTlsOrRedirect_IsOneErrorNamingTheField(string listeners, string field, string problem)
    {
        var errors = GatewayFiles.Errors(WithListeners(listeners));

        var error = Assert.Single(errors);
        Assert.Equal(field, error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
        Assert.NotNull(error.Line);
        Assert.False(string.IsNullOrEmpty(error.Hint), error.ToString());
    }

    [Fact]
    public void UnknownTlsFields_AreErrorsWithSuggestions()
    {
        var errors = GatewayFiles.Errors(WithListeners(
            "  - { name: https, port: 8443, tls: { certificate: [], certificates: [{ cert_flie: /c/tls.crt, cert_file: /c/tls.crt, key_file: /c/tls.key }] } }"));

        Assert.Equal(["listeners[0].tls.certificate", "listeners[0].tls.certificates[0].cert_flie"], errors.Select(e => e.Field));
        Assert.Equal(["did you mean 'certificates'?", "did you mean 'cert_file'?"], errors.Select(e => e.Hint));
    }

    [Fact]
    public void EveryListenerError_IsReportedAtOnce_WithFileLineAndColumn()
    {
        var errors = GatewayFiles.Errors(WithListeners("""
              - { name: http, port: 8080, https_redirect: true, tls: { certificates: [{ cert_file: tls.crt }] } }
              - name: https
                port: 8443
                tls: { min_version: "1.0" }
            """));

        Assert.Equal(
            [
                "gw.yaml:10:47: listeners[0].https_redirect: a listener with tls is already https: it cannot also redirect to https",
                "gw.yaml:10:75: listeners[0].tls.certificates[0]: needs key_file",
                "gw.yaml:10:88: listeners[0].tls.certificates[0].cert_file: 'tls.crt' is not an absolute file path",
                "gw.yaml:13:10: listeners[1].tls.certificates: at least one certificate is required",
                "gw.yaml:13:25: listeners[1].tls.min_version: TLS 1.0 and 1.1 are not offered (deprecated by RFC 8996)",
            ],
            errors.Select(e => e.ToString().Split('\n')[0]));
    }

    [Fact]
    public void CertificateFiles_NeedNotExistWhereValidateRuns()
    {
        // The paths are Envoy's (a container, a mounted Secret): validate checks their form only.
        Assert.Empty(GatewayFiles.Errors(Tls));
        Assert.False(File.Exists("/etc/legate-tls/acme/tls.crt"));
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

    private YamlNode Listener(string name) => GatewayFiles.Load(_out.File("envoy/dynamic/lds.yaml")).Seq("resources").Single(l => l.Str("name") == name);

    private YamlNode Secret(string name)
        => Assert.Single(GatewayFiles.Load(_out.File($"envoy/sds/{name}.yaml")).Seq("resources"));

    [Fact]
    public void TlsListener_TerminatesTlsWithSdsSecrets_PickedBySni_WithMinVersionAlpnAndClientCertificates()
    {
        var (exitCode, stderr) = Render(Tls);
        Assert.True(exitCode == Cli.Ok, stderr);

        var chain = Assert.Single(Listener("https").Seq("filter_chains"));
        // One chain: Envoy picks the certificate by SNI itself, so no filter_chain_match per host.
        Assert.Null(chain.Get("filter_chain_match"));
        Assert.Equal("envoy.filters.network.http_connection_manager", chain.Seq("filters").Single().Str("name"));
        var context = chain.Get("transport_socket", "typed_config")!;
        Assert.Equal("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", context.Str("@type"));
        Assert.Equal("TLSv1_3", context.Str("common_tls_context", "tls_params", "tls_minimum_protocol_version"));
        Assert.Equal(["h2", "http/1.1"], context.Seq("common_tls_context", "alpn_protocols").Select(p => p.Str()));
        Assert.Equal("true", context.Str("require_client_certificate"));
        // No file contents and no static file names in the listener: only SDS references, so rotation needs no restart.
        Assert.Null(context.Get("common_tls_context", "tls_certificates"));
        var sdsDir = _out.File("envoy/sds");
        var certificates = context.Seq("common_tls_context", "tls_certificate_sds_secret_configs");
        Assert.Equal(["https-cert-0", "https-cert-1"], certificates.Select(c => c.Str("name")));
        foreach (var reference in certificates.Append(context.Get("common_tls_context", "validation_context_sds_secret_config")!))
        {
            var name = reference.Str("name")!;
            Assert.Equal("V3", reference.Str("sds_config", "resource_api_version"));
            Assert.Equal(Path.Combine(sdsDir, name + ".yaml"), reference.Str("sds_config", "path_config_source", "path"));
            Assert.Equal(sdsDir, reference.Str("sds_config", "path_config_source", "watched_directory", "path"));
            // The file the listener names exists and holds the secret of that name (Envoy refuses another name).
            Assert.Equal(name, Secret(name).Str("name"));
        }
        Assert.Equal("https-client-ca", context.Str("common_tls_context", "validation_context_sds_secret_config", "name"));
    }

    [Fact]
    public void SdsSecrets_NameTheFiles_AndWatchTheFolderKubernetesSwapsTheirSymlinkIn()
    {
        var (exitCode, stderr) = Render(Tls);
        Assert.True(exitCode == Cli.Ok, stderr);

        var acme = Secret("https-cert-0");
        Assert.Equal("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", acme.Str("@type"));
        Assert.Equal("/etc/legate-tls/acme/tls.crt", acme.Str("tls_certificate", "certificate_chain", "filename"));
        Assert.Equal("/etc/legate-tls/acme/tls.key", acme.Str("tls_certificate", "private_key", "filename"));
        Assert.Equal("/etc/legate-tls/acme", acme.Str("tls_certificate", "watched_directory", "path"));
        // Chain and key in two folders: no single folder to watch, Envoy watches each file's own.
        var globex = Secret("https-cert-1");
        Assert.Equal("/etc/ssl/private/globex.key", globex.Str("tls_certificate", "private_key", "filename"));
        Assert.Null(globex.Get("tls_certificate", "watched_directory"));
        var ca = Secret("https-client-ca");
        Assert.Equal("/etc/legate-tls/clients/ca.crt", ca.Str("validation_context", "trusted_ca", "filename"));
        Assert.Equal("/etc/legate-tls/clients", ca.Str("validation_context", "watched_directory", "path"));
        Assert.Equal(["https-cert-0.yaml", "https-cert-1.yaml", "https-client-ca.yaml"],
            Directory.GetFiles(_out.File("envoy/sds")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void TlsListener_ServesTheSameRoutesAndFiltersAsAPlainOne()
    {
        var (exitCode, stderr) = Render(Tls.Replace("  - { name: http, port: 8080, https_redirect: { port: 8443 } }", "  - { name: http, port: 8080 }", StringComparison.Ordinal));
        Assert.True(exitCode == Cli.Ok, stderr);

        static YamlNode Hcm(YamlNode listener) => listener.Seq("filter_chains").Single().Seq("filters").Single().Get("typed_config")!;
        var plain = Hcm(Listener("http"));
        var tls = Hcm(Listener("https"));
        Assert.Equal(plain.Seq("http_filters").Select(f => f.Str("name")), tls.Seq("http_filters").Select(f => f.Str("name")));
        Assert.Equal(plain.Seq("route_config", "virtual_hosts").Count, tls.Seq("route_config", "virtual_hosts").Count);
        Assert.Equal("true", tls.Str("use_remote_address"));
        Assert.NotEmpty(tls.Seq("early_header_mutation_extensions"));
        Assert.Null(Listener("http").Seq("filter_chains").Single().Get("transport_socket"));
    }

    [Fact]
    public void RedirectListener_AnswersEveryRequestWith308ToHttps_WithoutAuthzOrRateLimit()
    {
        var (exitCode, stderr) = Render(Tls);
        Assert.True(exitCode == Cli.Ok, stderr);

        var hcm = Listener("http").Seq("filter_chains").Single().Seq("filters").Single().Get("typed_config")!;
        Assert.Equal(["envoy.filters.http.router"], hcm.Seq("http_filters").Select(f => f.Str("name")));
        var host = hcm.Seq("route_config", "virtual_hosts").Single();
        Assert.Equal(["*"], host.Seq("domains").Select(d => d.Str()));
        var route = host.Seq("routes").Single();
        Assert.Equal("/", route.Str("match", "prefix"));
        Assert.Equal("true", route.Str("redirect", "https_redirect"));
        Assert.Equal("8443", route.Str("redirect", "port_redirect"));
        Assert.Equal("PERMANENT_REDIRECT", route.Str("redirect", "response_code"));
        Assert.Null(route.Get("route"));
        Assert.Contains("http 0.0.0.0:8080 (redirects to https port 8443), https 0.0.0.0:8443 (tls: 2 certificate(s), TLS 1.3+, client certificates required)",
            File.ReadAllText(_out.File("summary.txt")), StringComparison.Ordinal);
    }

    [Fact]
    public void WithoutClientCa_NoClientCertificateIsAskedFor()
    {
        var (exitCode, stderr) = Render(Tls.Replace("      client_ca_file: /etc/legate-tls/clients/ca.crt\n", "", StringComparison.Ordinal)
            .Replace("      min_version: \"1.3\"\n", "", StringComparison.Ordinal));
        Assert.True(exitCode == Cli.Ok, stderr);

        var context = Listener("https").Seq("filter_chains").Single().Get("transport_socket", "typed_config")!;
        Assert.Null(context.Get("require_client_certificate"));
        Assert.Null(context.Get("common_tls_context", "validation_context_sds_secret_config"));
        Assert.Equal("TLSv1_2", context.Str("common_tls_context", "tls_params", "tls_minimum_protocol_version"));
        Assert.False(File.Exists(_out.File("envoy/sds/https-client-ca.yaml")));
    }

    [Fact]
    public void SecretsOfARemovedListener_AreRemovedWithIt()
    {
        Assert.Equal(Cli.Ok, Render(Tls).ExitCode);

        var (exitCode, stderr) = Render(Tls.Replace("        - { cert_file: /etc/ssl/certs/globex.pem, key_file: /etc/ssl/private/globex.key }\n", "", StringComparison.Ordinal)
            .Replace("      client_ca_file: /etc/legate-tls/clients/ca.crt\n", "", StringComparison.Ordinal));

        Assert.True(exitCode == Cli.Ok, stderr);
        Assert.Equal(["https-cert-0.yaml"], Directory.GetFiles(_out.File("envoy/sds")).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EnvoyCheck_AcceptsTheTlsListeners_AndEverySdsFile(bool isStatic)
    {
        var tool = SharedTools.EnvoyCheckTool("envoy-check");
        Assert.SkipWhen(tool is null, "../shared/tools/envoy-check is not beside this checkout");
        var (exitCode, stderr) = Render(Tls, isStatic ? ["--static"] : []);
        Assert.True(exitCode == Cli.Ok, stderr);

        // envoy-check follows the bootstrap's LDS/CDS files but not SDS ones: those are given as xDS resource files.
        var secrets = Directory.GetFiles(_out.File("envoy/sds")).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(3, secrets.Length);
        var (code, output) = await SharedTools.RunAsync(tool!, [_out.File("envoy/envoy.yaml"), .. secrets]);

        Assert.True(code == 0, output);
        Assert.Contains(" 0 error(s), 0 warning(s)", output, StringComparison.Ordinal);
        if (isStatic)
            Assert.Contains("DownstreamTlsContext", File.ReadAllText(_out.File("envoy/envoy.yaml")), StringComparison.Ordinal);
    }
}
