using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Health.V1;

using HealthClient = Grpc.Health.V1.Health.HealthClient;
using Grpc.Net.Client;
using Legate.Hosting.Tls;
using Legate.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Legate.Hosting.Tests;

public sealed class TlsTests : IDisposable
{
    private readonly TestCertificates _certificates = new();

    // With TLS 1.3 the server judges the client certificate after the handshake, so the client learns of the refusal
    // either while connecting (Unavailable) or on its first stream (Internal), depending on timing.
    private static readonly StatusCode[] RefusedConnection = [StatusCode.Unavailable, StatusCode.Internal];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task GrpcListener_ServesTlsFromPemFiles()
    {
        await using var host = await TestHost.StartAsync(Tls(mutual: false));

        var status = await CheckHealthAsync(host, clientCertificate: null);

        Assert.Equal("https", host.Endpoints.Grpc.Scheme);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);
    }

    [Fact]
    public async Task MutualTls_AcceptsAClientCertificateFromTheConfiguredCa()
    {
        await using var host = await TestHost.StartAsync(Tls(mutual: true));

        var status = await CheckHealthAsync(host, _certificates.Client);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);
    }

    [Fact]
    public async Task MutualTls_RejectsAClientWithoutCertificate()
    {
        await using var host = await TestHost.StartAsync(Tls(mutual: true));

        var error = await Assert.ThrowsAsync<RpcException>(() => CheckHealthAsync(host, clientCertificate: null));

        Assert.Contains(error.StatusCode, RefusedConnection);
    }

    [Fact]
    public async Task MutualTls_RejectsACertificateFromAnotherIssuer()
    {
        await using var host = await TestHost.StartAsync(Tls(mutual: true));

        var error = await Assert.ThrowsAsync<RpcException>(() => CheckHealthAsync(host, _certificates.UntrustedClient));

        Assert.Contains(error.StatusCode, RefusedConnection);
    }

    [Fact]
    public void RotatedCertificate_BehindKubernetesSymlinks_IsServedAfterTheRecheck()
    {
        // A Secret volume: tls.crt -> ..data/tls.crt, ..data -> a timestamped folder. A rotation writes a new folder
        // and repoints ..data; the tls.crt link itself never changes.
        using var rotated = new TestCertificates();
        var dir = Path.Combine(_certificates.Directory, "secret");
        Directory.CreateDirectory(dir);
        SecretVersion(dir, "..v1", _certificates);
        Directory.CreateSymbolicLink(Path.Combine(dir, "..data"), "..v1");
        File.CreateSymbolicLink(Path.Combine(dir, "tls.crt"), Path.Combine("..data", "tls.crt"));
        File.CreateSymbolicLink(Path.Combine(dir, "tls.key"), Path.Combine("..data", "tls.key"));
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logger = new FakeLogger();
        var selector = new CertificateFiles(new TlsOptions { CertificatePath = Path.Combine(dir, "tls.crt"), KeyPath = Path.Combine(dir, "tls.key") }, time, logger)
            .ToHttpsOptions().ServerCertificateSelector!;
        Assert.Equal(_certificates.Server.Thumbprint, selector(null, null)!.Thumbprint);

        SecretVersion(dir, "..v2", rotated);
        File.Delete(Path.Combine(dir, "..data"));
        Directory.CreateSymbolicLink(Path.Combine(dir, "..data"), "..v2");
        time.Advance(TimeSpan.FromSeconds(31));

        Assert.Equal(rotated.Server.Thumbprint, selector(null, null)!.Thumbprint);
        Assert.Equal(["TlsCertificateReloaded"], logger.Collector.GetSnapshot().Select(r => r.Id.Name));
    }

    [Fact]
    public void ANewCertificateThatDoesNotMatchTheKey_KeepsTheOldOne()
    {
        // A rotation that writes the certificate before the key: for a moment the pair does not match.
        using var rotated = new TestCertificates();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logger = new FakeLogger();
        var selector = new CertificateFiles(new TlsOptions { CertificatePath = _certificates.ServerCertificatePath, KeyPath = _certificates.ServerKeyPath }, time, logger)
            .ToHttpsOptions().ServerCertificateSelector!;
        Assert.Equal(_certificates.Server.Thumbprint, selector(null, null)!.Thumbprint);

        File.Copy(rotated.ServerCertificatePath, _certificates.ServerCertificatePath, overwrite: true);
        time.Advance(TimeSpan.FromSeconds(31));

        Assert.Equal(_certificates.Server.Thumbprint, selector(null, null)!.Thumbprint);
        // Said once for these files, not at every recheck; then the key arrives and the new pair is in force.
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(_certificates.Server.Thumbprint, selector(null, null)!.Thumbprint);
        var unusable = Assert.Single(logger.Collector.GetSnapshot());
        Assert.Equal(("TlsCertificateUnusable", LogLevel.Warning), (unusable.Id.Name, unusable.Level));
        Assert.Contains(_certificates.ServerCertificatePath, unusable.Message, StringComparison.Ordinal);

        File.Copy(rotated.ServerKeyPath, _certificates.ServerKeyPath, overwrite: true);
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(rotated.Server.Thumbprint, selector(null, null)!.Thumbprint);
        Assert.Equal("TlsCertificateReloaded", logger.Collector.LatestRecord.Id.Name);
    }

    [Fact]
    public void ACertificateARotationReplaced_IsDisposed_OnlyWhenNoHandshakeCanStillBeUsingIt()
    {
        using var rotated = new TestCertificates();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var selector = new CertificateFiles(new TlsOptions { CertificatePath = _certificates.ServerCertificatePath, KeyPath = _certificates.ServerKeyPath }, time)
            .ToHttpsOptions().ServerCertificateSelector!;
        var replaced = selector(null, null)!;

        File.Copy(rotated.ServerCertificatePath, _certificates.ServerCertificatePath, overwrite: true);
        File.Copy(rotated.ServerKeyPath, _certificates.ServerKeyPath, overwrite: true);
        time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(rotated.Server.Thumbprint, selector(null, null)!.Thumbprint);

        // A handshake handed it just before the rotation may still be reading it, for up to Kestrel's handshake timeout.
        time.Advance(TimeSpan.FromSeconds(31));
        selector(null, null);
        Assert.NotEqual(IntPtr.Zero, replaced.Handle);
        time.Advance(TimeSpan.FromSeconds(31));
        selector(null, null);
        Assert.Equal(IntPtr.Zero, replaced.Handle);
        Assert.Equal(rotated.Server.Thumbprint, selector(null, null)!.Thumbprint);
    }

    [Fact]
    public async Task AConnectionMadeWithAReplacedCertificate_KeepsWorking_AfterTheCertificateIsDisposed()
    {
        using var rotated = new TestCertificates();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var host = await TestHost.StartAsync(Tls(mutual: false), builder => builder.Services.AddSingleton<TimeProvider>(time));
        var handshakes = 0;
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
        {
            Interlocked.Increment(ref handshakes);
            return TrustedByTestCa(certificate, chain);
        };
        using var before = GrpcChannel.ForAddress(host.Endpoints.Grpc, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
        var client = new HealthClient(before);
        await client.CheckAsync(new HealthCheckRequest(), cancellationToken: Ct);

        File.Copy(rotated.ServerCertificatePath, _certificates.ServerCertificatePath, overwrite: true);
        File.Copy(rotated.ServerKeyPath, _certificates.ServerKeyPath, overwrite: true);
        // New connections' handshakes recheck the files: the first one gets the new certificate, the last one comes
        // after the replaced certificate was disposed.
        for (var i = 0; i < 3; i++)
        {
            time.Advance(TimeSpan.FromSeconds(31));
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, await CheckHealthAsync(host, clientCertificate: null, rotated.Ca));
        }

        var reply = await client.CheckAsync(new HealthCheckRequest(), cancellationToken: Ct);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
        Assert.Equal(1, handshakes);
    }

    [Fact]
    public async Task MutualTls_RotatedClientCa_IsTrustedForNewConnectionsAfterTheRecheck()
    {
        using var rotated = new TestCertificates();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var host = await TestHost.StartAsync(Tls(mutual: true), builder => builder.Services.AddSingleton<TimeProvider>(time));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, await CheckHealthAsync(host, _certificates.Client));
        await Assert.ThrowsAsync<RpcException>(() => CheckHealthAsync(host, rotated.Client));

        File.Copy(rotated.CaPath, _certificates.CaPath, overwrite: true);
        time.Advance(TimeSpan.FromSeconds(31));

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, await CheckHealthAsync(host, rotated.Client));
        await Assert.ThrowsAsync<RpcException>(() => CheckHealthAsync(host, _certificates.Client));
    }

    [Fact]
    public void ANewClientCaBundleThatCannotBeUsed_KeepsTheOldOne_AndIsSaidOnce()
    {
        using var rotated = new TestCertificates();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logger = new FakeLogger();
        var https = new CertificateFiles(new TlsOptions
        {
            CertificatePath = _certificates.ServerCertificatePath,
            KeyPath = _certificates.ServerKeyPath,
            ClientCaPath = _certificates.CaPath,
        }, time, logger).ToHttpsOptions();
        // What Kestrel does before each handshake, and where the files are rechecked.
        void Handshake() => https.OnAuthenticate!(null!, new SslServerAuthenticationOptions());
        bool Trusts(X509Certificate2 client) => https.ClientCertificateValidation!(client, null, SslPolicyErrors.None);

        foreach (var unusable in (string[])["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
        {
            File.WriteAllText(_certificates.CaPath, unusable);
            time.Advance(TimeSpan.FromSeconds(31));
            Handshake();
            time.Advance(TimeSpan.FromSeconds(31));
            Handshake();
            Assert.True(Trusts(_certificates.Client));
        }

        Assert.Equal(3, logger.Collector.Count);
        Assert.All(logger.Collector.GetSnapshot(), r => Assert.Equal(("TlsClientCaUnusable", LogLevel.Warning), (r.Id.Name, r.Level)));
        Assert.Contains(_certificates.CaPath, logger.Collector.LatestRecord.Message, StringComparison.Ordinal);

        File.Copy(rotated.CaPath, _certificates.CaPath, overwrite: true);
        time.Advance(TimeSpan.FromSeconds(31));
        Handshake();
        Assert.True(Trusts(rotated.Client));
        Assert.False(Trusts(_certificates.Client));
        Assert.Equal("TlsClientCaReloaded", logger.Collector.LatestRecord.Id.Name);
    }

    [Theory]
    [InlineData("certificate from another key", "Legate:GrpcTls:CertificatePath")]
    [InlineData("certificate not PEM", "Legate:GrpcTls:CertificatePath")]
    [InlineData("client CA not PEM", "Legate:GrpcTls:ClientCaPath")]
    public async Task UnusableTlsFiles_AreAStartRefusedNamingTheKey(string problem, string key)
    {
        using var other = new TestCertificates();
        var settings = Tls(mutual: true);
        switch (problem)
        {
            case "certificate from another key":
                File.Copy(other.ServerCertificatePath, _certificates.ServerCertificatePath, overwrite: true);
                break;
            case "certificate not PEM":
                File.WriteAllText(_certificates.ServerCertificatePath, "not a certificate");
                break;
            default:
                File.WriteAllText(_certificates.CaPath, "not a certificate");
                break;
        }

        var error = await Assert.ThrowsAnyAsync<Exception>(() => TestHost.StartAsync(settings));

        // What LegateProgram turns into exit code 1 and one line, rather than an abort with a stack trace.
        Assert.True(LegateProgram.IsRefusedInput(error), error.ToString());
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GrpcListener_SendsTheIntermediatesOfTheCertificateFile()
    {
        // cert-manager and most CAs issue from an intermediate: a client that trusts only the root needs it sent.
        var now = DateTimeOffset.UtcNow;
        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = new CertificateRequest("CN=Legate Test Intermediate", intermediateKey, HashAlgorithmName.SHA256);
        intermediateRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        intermediateRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var intermediatePublic = intermediateRequest.Create(_certificates.Ca, now.AddDays(-1), now.AddDays(29), RandomNumberGenerator.GetBytes(16));
        using var intermediate = intermediatePublic.CopyWithPrivateKey(intermediateKey);
        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest("CN=localhost", leafKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        leafRequest.CertificateExtensions.Add(names.Build());
        using var leaf = leafRequest.Create(intermediate, now.AddDays(-1), now.AddDays(28), RandomNumberGenerator.GetBytes(16));
        File.WriteAllText(_certificates.ServerCertificatePath, leaf.ExportCertificatePem() + "\n" + intermediate.ExportCertificatePem() + "\n");
        File.WriteAllText(_certificates.ServerKeyPath, leafKey.ExportPkcs8PrivateKeyPem());
        await using var host = await TestHost.StartAsync(Tls(mutual: false));

        var status = await CheckHealthAsync(host, clientCertificate: null);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);
    }

    [Fact]
    public async Task MutualTls_AClientChainThroughAnIntermediateItSends_IsAccepted()
    {
        // The CA bundle holds the root only, as a client CA usually does; Envoy sends its certificate's intermediates.
        var (intermediate, client) = IssueThroughIntermediate(_certificates.Ca, accessUrl: null);
        using (intermediate)
        using (client)
        {
            await using var host = await TestHost.StartAsync(Tls(mutual: true));

            var status = await CheckHealthAsync(host, SslStreamCertificateContext.Create(client, [intermediate], offline: true));

            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);
        }
    }

    [Fact]
    public async Task MutualTls_AMissingIntermediate_IsNotFetchedFromTheAddressTheClientCertificateNames()
    {
        // A client certificate may name where its issuer can be downloaded (authority information access). Fetching it
        // would let any caller make the service send requests wherever it likes, and wait on them mid-handshake.
        using var issuerServer = new TcpListener(IPAddress.Loopback, 0);
        issuerServer.Start();
        var url = $"http://127.0.0.1:{((IPEndPoint)issuerServer.LocalEndpoint).Port}/issuer.cer";
        var (intermediate, client) = IssueThroughIntermediate(_certificates.Ca, url);
        using (intermediate)
        using (client)
        {
            var requests = 0;
            using var serving = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var serve = ServeIssuerAsync(issuerServer, intermediate.RawData, () => Interlocked.Increment(ref requests), serving.Token);
            await using var host = await TestHost.StartAsync(Tls(mutual: true));

            var error = await Assert.ThrowsAsync<RpcException>(() => CheckHealthAsync(host, SslStreamCertificateContext.Create(client, [], offline: true)));

            Assert.Contains(error.StatusCode, RefusedConnection);
            Assert.Equal(0, Volatile.Read(ref requests));
            await serving.CancelAsync();
            await serve;
        }
    }

    // An intermediate CA under the given root, and a client certificate it issued, naming accessUrl as its issuer's
    // download address when given.
    private static (X509Certificate2 Intermediate, X509Certificate2 Client) IssueThroughIntermediate(X509Certificate2 root, string? accessUrl)
    {
        var now = DateTimeOffset.UtcNow;
        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        // A name of its own: .NET keeps the issuers it downloads in the user's CA store, where one of an earlier run
        // with this name (another key) would be taken for this one.
        var intermediateRequest = new CertificateRequest($"CN=Legate Test Client Intermediate {Guid.NewGuid():N}", intermediateKey, HashAlgorithmName.SHA256);
        intermediateRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        intermediateRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        using var intermediatePublic = intermediateRequest.Create(root, now.AddDays(-1), now.AddDays(29), RandomNumberGenerator.GetBytes(16));
        var intermediate = intermediatePublic.CopyWithPrivateKey(intermediateKey);
        using var clientKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var clientRequest = new CertificateRequest("CN=envoy", clientKey, HashAlgorithmName.SHA256);
        clientRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        clientRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        if (accessUrl is not null)
            clientRequest.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension(null, [accessUrl]));
        using var clientPublic = clientRequest.Create(intermediate, now.AddDays(-1), now.AddDays(28), RandomNumberGenerator.GetBytes(16));
        return (intermediate, clientPublic.CopyWithPrivateKey(clientKey));
    }

    // A bare HTTP server answering every request with the issuer's certificate, counting the requests.
    private static async Task ServeIssuerAsync(TcpListener listener, byte[] certificate, Action counted, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                using var connection = await listener.AcceptTcpClientAsync(stop);
                counted();
                var stream = connection.GetStream();
                _ = await stream.ReadAsync(new byte[4096], stop);  // the request, whatever it asks
                var header = $"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-cert\r\nContent-Length: {certificate.Length}\r\nConnection: close\r\n\r\n";
                await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(header), stop);
                await stream.WriteAsync(certificate, stop);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void SecretVersion(string dir, string name, TestCertificates certificates)
    {
        var version = Path.Combine(dir, name);
        Directory.CreateDirectory(version);
        File.Copy(certificates.ServerCertificatePath, Path.Combine(version, "tls.crt"));
        File.Copy(certificates.ServerKeyPath, Path.Combine(version, "tls.key"));
    }

    private Dictionary<string, string?> Tls(bool mutual)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Legate:GrpcTls:CertificatePath"] = _certificates.ServerCertificatePath,
            ["Legate:GrpcTls:KeyPath"] = _certificates.ServerKeyPath,
        };
        if (mutual)
            settings["Legate:GrpcTls:ClientCaPath"] = _certificates.CaPath;
        return settings;
    }

    private Task<HealthCheckResponse.Types.ServingStatus> CheckHealthAsync(TestHost host, SslStreamCertificateContext clientChain) =>
        CheckHealthAsync(host, handler => handler.SslOptions.ClientCertificateContext = clientChain, ca: null);

    private Task<HealthCheckResponse.Types.ServingStatus> CheckHealthAsync(TestHost host, X509Certificate2? clientCertificate, X509Certificate2? ca = null) =>
        CheckHealthAsync(host, handler =>
        {
            if (clientCertificate is not null)
                handler.SslOptions.ClientCertificates = [clientCertificate];
        }, ca);

    private async Task<HealthCheckResponse.Types.ServingStatus> CheckHealthAsync(TestHost host, Action<SocketsHttpHandler> presentCertificate, X509Certificate2? ca)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, _) => TrustedByTestCa(certificate, chain, ca);
        presentCertificate(handler);
        using var channel = GrpcChannel.ForAddress(host.Endpoints.Grpc, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
        var reply = await new HealthClient(channel).CheckAsync(new HealthCheckRequest(), cancellationToken: Ct);
        return reply.Status;
    }

    // Only the test CA (or the one given) is trusted; any intermediate must come from the server, as the handshake's
    // chain carries it.
    private bool TrustedByTestCa(X509Certificate? certificate, X509Chain? sent, X509Certificate2? ca = null)
    {
        if (certificate is null)
            return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca ?? _certificates.Ca);
        if (sent is not null)
            chain.ChainPolicy.ExtraStore.AddRange(sent.ChainPolicy.ExtraStore);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var server = new X509Certificate2(certificate);
        return chain.Build(server);
    }

    public void Dispose() => _certificates.Dispose();
}
