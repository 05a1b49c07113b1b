using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;

namespace Legate.Hosting;

/// <summary>Where a Legate service listens and how it stops. Bound from the <c>Legate</c> configuration section.</summary>
public sealed class LegateServerOptions
{
    public const string SectionName = "Legate";

    /// <summary>Address both listeners bind to: an IP address, or <c>*</c> for all interfaces.</summary>
    public string BindAddress { get; set; } = "*";

    /// <summary>Port of the gRPC listener (HTTP/2 only: h2c, or TLS when <see cref="GrpcTls"/> is set). 0 picks a free port.</summary>
    public int GrpcPort { get; set; }

    /// <summary>Port of the HTTP listener serving <c>/metrics</c>, <c>/healthz</c> and <c>/readyz</c>. 0 picks a free port.</summary>
    public int HttpPort { get; set; }

    /// <summary>TLS for the gRPC listener; mTLS when a client CA is named.</summary>
    public TlsOptions GrpcTls { get; set; } = new();

    /// <summary>Largest gRPC message accepted, in bytes.</summary>
    public int MaxReceiveMessageSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>Concurrent HTTP/2 streams per connection. Envoy multiplexes many calls on few connections.</summary>
    public int MaxStreamsPerConnection { get; set; } = 1024;

    /// <summary>After SIGTERM: how long the service reports not-ready while still serving, so callers stop sending.</summary>
    public TimeSpan DrainDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>After the drain delay: how long in-flight calls may take before the process exits anyway.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>Console log format: <c>json</c> (default, one object a line) or <c>text</c>.</summary>
    public string LogFormat { get; set; } = "json";

    internal IPAddress ParsedBindAddress =>
        BindAddress is "*" or "" ? IPAddress.IPv6Any
        : BindAddress == "localhost" ? IPAddress.Loopback
        : IPAddress.Parse(BindAddress);
}

/// <summary>Certificate files (PEM) for a TLS listener.</summary>
public sealed class TlsOptions
{
    /// <summary>Server certificate chain, PEM. TLS is on when this is set.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>Private key of the server certificate, PEM.</summary>
    public string? KeyPath { get; set; }

    /// <summary>CA certificates (PEM) that client certificates must chain to. When set, clients must present one (mTLS).</summary>
    public string? ClientCaPath { get; set; }

    internal bool Enabled => !string.IsNullOrEmpty(CertificatePath);
}

internal sealed class LegateServerOptionsValidator : IValidateOptions<LegateServerOptions>
{
    public ValidateOptionsResult Validate(string? name, LegateServerOptions options)
    {
        var errors = new List<string>();
        const string S = LegateServerOptions.SectionName;
        if (options.BindAddress is not ("*" or "" or "localhost") && !IPAddress.TryParse(options.BindAddress, out _))
            errors.Add($"{S}:BindAddress '{options.BindAddress}' is not an IP address, '*' or 'localhost'.");
        CheckPort(errors, $"{S}:GrpcPort", options.GrpcPort);
        CheckPort(errors, $"{S}:HttpPort", options.HttpPort);
        if (options.GrpcPort != 0 && options.GrpcPort == options.HttpPort)
            errors.Add($"{S}:GrpcPort and {S}:HttpPort are both {options.GrpcPort}; they must differ.");
        if (options.MaxReceiveMessageSize < 1024)
            errors.Add($"{S}:MaxReceiveMessageSize must be at least 1024 bytes (was {options.MaxReceiveMessageSize}).");
        if (options.MaxStreamsPerConnection < 1)
            errors.Add($"{S}:MaxStreamsPerConnection must be at least 1 (was {options.MaxStreamsPerConnection}).");
        if (options.DrainDelay < TimeSpan.Zero)
            errors.Add($"{S}:DrainDelay must not be negative (was {options.DrainDelay}).");
        if (options.ShutdownTimeout <= TimeSpan.Zero)
            errors.Add($"{S}:ShutdownTimeout must be positive (was {options.ShutdownTimeout}).");
        if (options.LogFormat is not ("json" or "text"))
            errors.Add($"{S}:LogFormat must be 'json' or 'text' (was '{options.LogFormat}').");

        var tls = options.GrpcTls;
        if (tls.Enabled)
        {
            CheckFile(errors, $"{S}:GrpcTls:CertificatePath", tls.CertificatePath);
            if (string.IsNullOrEmpty(tls.KeyPath))
                errors.Add($"{S}:GrpcTls:KeyPath is required when {S}:GrpcTls:CertificatePath is set.");
            else
                CheckFile(errors, $"{S}:GrpcTls:KeyPath", tls.KeyPath);
            if (!string.IsNullOrEmpty(tls.ClientCaPath))
                CheckFile(errors, $"{S}:GrpcTls:ClientCaPath", tls.ClientCaPath);
            if (errors.Count == 0)
                CheckTlsFiles(errors, tls);
        }
        else if (!string.IsNullOrEmpty(tls.KeyPath) || !string.IsNullOrEmpty(tls.ClientCaPath))
        {
            errors.Add($"{S}:GrpcTls:CertificatePath is required when a key or client CA is set.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void CheckPort(List<string> errors, string key, int port)
    {
        if (port is < 0 or > 65535)
            errors.Add($"{key} must be between 0 and 65535 (was {port}).");
    }

    // Loaded here so that an unusable file is a refused start naming its key, not an exception out of Kestrel's start.
    private static void CheckTlsFiles(List<string> errors, TlsOptions tls)
    {
        const string S = LegateServerOptions.SectionName;
        try
        {
            using var certificate = X509Certificate2.CreateFromPemFile(tls.CertificatePath!, tls.KeyPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or CryptographicException)
        {
            errors.Add($"{S}:GrpcTls:CertificatePath: '{tls.CertificatePath}' with the key '{tls.KeyPath}' is not a usable certificate: {e.Message}");
        }
        if (string.IsNullOrEmpty(tls.ClientCaPath))
            return;
        var cas = new X509Certificate2Collection();
        try
        {
            cas.ImportFromPemFile(tls.ClientCaPath);
            if (cas.Count == 0)
                errors.Add($"{S}:GrpcTls:ClientCaPath: no certificate in '{tls.ClientCaPath}'.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            errors.Add($"{S}:GrpcTls:ClientCaPath: '{tls.ClientCaPath}' is not a usable CA bundle: {e.Message}");
        }
        finally
        {
            foreach (var ca in cas)
                ca.Dispose();
        }
    }

    private static void CheckFile(List<string> errors, string key, string? path)
    {
        if (!File.Exists(path))
            errors.Add($"{key}: file '{path}' does not exist.");
    }
}
