using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Legate.Hosting.Tls;

/// <summary>
/// Builds the TLS settings of the gRPC listener from PEM files. The server certificate is read again when its
/// files change (checked at most every 30 s), so a rotated certificate (cert-manager, Vault) needs no restart.
/// </summary>
internal sealed class CertificateFiles
{
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(30);

    private readonly TlsOptions _options;
    private readonly TimeProvider _time;
    private readonly X509Certificate2Collection? _clientCas;
    private readonly Lock _gate = new();
    private X509Certificate2 _certificate;
    private DateTime _certificateWritten;
    private DateTimeOffset _nextCheck;

    public CertificateFiles(TlsOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
        (_certificate, _certificateWritten) = LoadCertificate();
        _nextCheck = time.GetUtcNow() + RecheckInterval;
        if (!string.IsNullOrEmpty(options.ClientCaPath))
        {
            _clientCas = [];
            _clientCas.ImportFromPemFile(options.ClientCaPath);
            if (_clientCas.Count == 0)
                throw new InvalidOperationException($"{LegateServerOptions.SectionName}:GrpcTls:ClientCaPath: no certificate in '{options.ClientCaPath}'.");
        }
    }

    public HttpsConnectionAdapterOptions ToHttpsOptions()
    {
        var https = new HttpsConnectionAdapterOptions { ServerCertificateSelector = (_, _) => Current() };
        if (_clientCas is not null)
        {
            https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            https.ClientCertificateValidation = ValidateClient;
        }
        return https;
    }

    private X509Certificate2 Current()
    {
        var now = _time.GetUtcNow();
        if (now < _nextCheck)
            return _certificate;
        lock (_gate)
        {
            if (now >= _nextCheck)
            {
                _nextCheck = now + RecheckInterval;
                var written = LastWritten();
                if (written != _certificateWritten)
                {
                    try
                    {
                        (_certificate, _certificateWritten) = LoadCertificate();
                    }
                    // ArgumentException: a certificate that does not match the key, as when a rotation has written the
                    // new certificate but not yet its key. Thrown here it would fail the handshake it was checked for.
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException
                        or System.Security.Cryptography.CryptographicException)
                    {
                        // A half-written rotation: keep serving the certificate we have and look again later.
                    }
                }
            }
            return _certificate;
        }
    }

    private (X509Certificate2, DateTime) LoadCertificate()
    {
        var written = LastWritten();
        var certificate = X509Certificate2.CreateFromPemFile(_options.CertificatePath!, _options.KeyPath);
        return (certificate, written);
    }

    private DateTime LastWritten() =>
        new[] { File.GetLastWriteTimeUtc(_options.CertificatePath!), File.GetLastWriteTimeUtc(_options.KeyPath!) }.Max();

    // Client certificates must chain to the configured CAs, and only to them: the system trust store is not consulted.
    private bool ValidateClient(X509Certificate2 certificate, X509Chain? _, SslPolicyErrors __)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_clientCas!);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        return chain.Build(certificate);
    }
}
