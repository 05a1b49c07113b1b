using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Legate.Hosting.Tls;

/// <summary>
/// Builds the TLS settings of the gRPC listener from PEM files. The server certificate and the client CA bundle are
/// read again when their files' contents change (checked at most every 30 s), so a rotation (cert-manager, Vault)
/// needs no restart.
/// </summary>
internal sealed class CertificateFiles
{
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(30);

    // Kestrel's default, set here because disposing what a rotation replaced relies on it: Kestrel starts this timeout
    // before OnAuthenticate hands a handshake the certificate in force, and abandons the handshake when it passes.
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    // How long a certificate or CA bundle that a rotation replaced is kept before it is disposed. A handshake handed it
    // just before the rotation still reads it (SslStream hashes the certificate and its intermediates to find its
    // cached OpenSSL context, our validation builds chains on the bundle) until that handshake ends, within
    // HandshakeTimeout; the established connection then holds OpenSSL's own references, not these objects. Disposing
    // at once could fail such a handshake; six handshake timeouts later nothing can be using them.
    private static readonly TimeSpan RetiredFor = TimeSpan.FromMinutes(1);

    private readonly TlsOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private SslStreamCertificateContext _certificate;
    private byte[] _certificateHash;
    private DateTimeOffset _nextCheck;
    private readonly ILogger _logger;
    private byte[]? _unusableHash;
    private volatile X509Certificate2Collection? _clientCas;
    private byte[]? _clientCaHash;
    private byte[]? _unusableClientCaHash;
    private readonly List<(DateTimeOffset Since, X509Certificate2[] Certificates)> _retired = [];

    public CertificateFiles(TlsOptions options, TimeProvider time, ILogger? logger = null)
    {
        _options = options;
        _time = time;
        _logger = logger ?? NullLogger.Instance;
        var files = ReadFiles();
        (_certificate, _certificateHash) = (LoadCertificate(files), Hash(files));
        _nextCheck = time.GetUtcNow() + RecheckInterval;
        if (!string.IsNullOrEmpty(options.ClientCaPath))
        {
            var bundle = File.ReadAllText(options.ClientCaPath);
            (_clientCas, _clientCaHash) = (LoadClientCas(bundle), Hash(bundle));
            if (_clientCas.Count == 0)
                throw new InvalidOperationException($"{LegateServerOptions.SectionName}:GrpcTls:ClientCaPath: no certificate in '{options.ClientCaPath}'.");
        }
    }

    public HttpsConnectionAdapterOptions ToHttpsOptions()
    {
        var https = new HttpsConnectionAdapterOptions
        {
            HandshakeTimeout = HandshakeTimeout,
            ServerCertificateSelector = (_, _) => Current().TargetCertificate,
            // A context rather than the selector's bare certificate: the handshake then sends the intermediates of the
            // certificate file, which a client trusting only the root needs. Kestrel calls this before each handshake.
            OnAuthenticate = (_, ssl) =>
            {
                ssl.ServerCertificateSelectionCallback = null;
                ssl.ServerCertificateContext = Current();
                // The chain the handshake builds for a client certificate, before ValidateClient: without this policy
                // it fetches a missing issuer from the address the client's certificate names (see ValidateClient).
                ssl.CertificateChainPolicy = ClientChainPolicy;
            },
        };
        if (_clientCas is not null)
        {
            https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            https.ClientCertificateValidation = ValidateClient;
        }
        return https;
    }

    private SslStreamCertificateContext Current()
    {
        var now = _time.GetUtcNow();
        if (now < _nextCheck)
            return _certificate;
        lock (_gate)
        {
            if (now >= _nextCheck)
            {
                _nextCheck = now + RecheckInterval;
                DisposeRetired(now);
                byte[]? hash = null;
                try
                {
                    var files = ReadFiles();
                    hash = Hash(files);
                    if (!hash.AsSpan().SequenceEqual(_certificateHash))
                    {
                        var replaced = _certificate;
                        (_certificate, _certificateHash) = (LoadCertificate(files), hash);
                        _retired.Add((now, [replaced.TargetCertificate, .. replaced.IntermediateCertificates]));
                        _unusableHash = null;
                        HostingLog.TlsCertificateReloaded(_logger, _options.CertificatePath!);
                    }
                }
                // ArgumentException: a certificate that does not match the key, as when a rotation has written the
                // new certificate but not yet its key. Thrown here it would fail the handshake it was checked for.
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or CryptographicException)
                {
                    // A half-written rotation: keep serving the certificate we have and look again later. Said once
                    // per content (not every 30 s), and by the exception's type: its message could quote the files.
                    if (hash is null || _unusableHash is null || !hash.AsSpan().SequenceEqual(_unusableHash))
                        HostingLog.TlsCertificateUnusable(_logger, _options.CertificatePath!, e.GetType().Name);
                    _unusableHash = hash;
                }
                if (_clientCas is not null)
                    RecheckClientCas(now);
            }
            return _certificate;
        }
    }

    // Like the certificate: a new bundle that cannot be used (unreadable, not PEM, no certificate in it) leaves the
    // one loaded before in force, and is said once per content.
    private void RecheckClientCas(DateTimeOffset now)
    {
        byte[]? hash = null;
        try
        {
            var bundle = File.ReadAllText(_options.ClientCaPath!);
            hash = Hash(bundle);
            if (hash.AsSpan().SequenceEqual(_clientCaHash))
                return;
            var cas = LoadClientCas(bundle);
            if (cas.Count == 0)
                throw new CryptographicException("no certificate in the file");
            _retired.Add((now, [.. _clientCas!]));
            (_clientCas, _clientCaHash) = (cas, hash);
            _unusableClientCaHash = null;
            HostingLog.TlsClientCaReloaded(_logger, _options.ClientCaPath!);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            if (hash is null || _unusableClientCaHash is null || !hash.AsSpan().SequenceEqual(_unusableClientCaHash))
                HostingLog.TlsClientCaUnusable(_logger, _options.ClientCaPath!, e.GetType().Name);
            _unusableClientCaHash = hash;
        }
    }

    private void DisposeRetired(DateTimeOffset now)
    {
        foreach (var (_, certificates) in _retired.Where(r => now - r.Since >= RetiredFor))
        {
            foreach (var certificate in certificates)
                certificate.Dispose();
        }
        _retired.RemoveAll(r => now - r.Since >= RetiredFor);
    }

    private static X509Certificate2Collection LoadClientCas(string bundle)
    {
        var cas = new X509Certificate2Collection();
        cas.ImportFromPem(bundle);
        return cas;
    }

    private static SslStreamCertificateContext LoadCertificate((string Certificate, string Key) files)
    {
        var certificate = X509Certificate2.CreateFromPem(files.Certificate, files.Key);
        // The certificates after the first in the file are its chain.
        var chain = new X509Certificate2Collection();
        try
        {
            chain.ImportFromPem(files.Certificate);
            chain[0].Dispose();
            chain.RemoveAt(0);
            return SslStreamCertificateContext.Create(certificate, chain, offline: true);
        }
        catch
        {
            certificate.Dispose();
            throw;
        }
        finally
        {
            // The context has certificates of its own for the intermediates it sends (the chain it builds from these).
            foreach (var intermediate in chain)
                intermediate.Dispose();
        }
    }

    // Contents, not modification times: in a Kubernetes Secret volume the configured paths are symlinks through
    // ..data, which a rotation repoints, and a link's own time (what .NET reads) never changes.
    private (string Certificate, string Key) ReadFiles() =>
        (File.ReadAllText(_options.CertificatePath!), File.ReadAllText(_options.KeyPath!));

    private static byte[] Hash((string Certificate, string Key) files) => Hash(files.Certificate + "\0" + files.Key);

    private static byte[] Hash(string contents) => SHA256.HashData(Encoding.UTF8.GetBytes(contents));

    // Client certificates must chain to the configured CAs, and only to them: the system trust store is not consulted.
    // The bundle in force is rechecked with the certificate, before each handshake (OnAuthenticate).
    private static X509ChainPolicy ClientChainPolicy => new()
    {
        DisableCertificateDownloads = true,
        RevocationMode = X509RevocationMode.NoCheck,
    };

    private bool ValidateClient(X509Certificate2 certificate, X509Chain? sent, SslPolicyErrors _)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_clientCas!);
        // The intermediates the client sent (the handshake's chain holds them), as Envoy sends its certificate file's.
        if (sent is not null)
            chain.ChainPolicy.ExtraStore.AddRange(sent.ChainPolicy.ExtraStore);
        // Never fetch a missing issuer from the address a client's certificate names: any caller could make the
        // service send requests wherever it likes, and hold the handshake while they run.
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        return chain.Build(certificate);
    }
}
