namespace Legate.Hosting.Tests;

public sealed class OptionsValidationTests
{
    private static List<string> Errors(LegateServerOptions options) =>
        new LegateServerOptionsValidator().Validate(null, options).Failures?.ToList() ?? [];

    [Fact]
    public void Defaults_AreValid() => Assert.Empty(Errors(new LegateServerOptions()));

    [Fact]
    public void SamePortTwice_IsRejected() =>
        Assert.Contains(Errors(new LegateServerOptions { GrpcPort = 9000, HttpPort = 9000 }), e => e.Contains("must differ", StringComparison.Ordinal));

    [Fact]
    public void BadBindAddress_IsRejected() =>
        Assert.Contains(Errors(new LegateServerOptions { BindAddress = "not-an-ip" }), e => e.StartsWith("Legate:BindAddress", StringComparison.Ordinal));

    [Fact]
    public void UnknownLogFormat_IsRejected() =>
        Assert.Contains(Errors(new LegateServerOptions { LogFormat = "xml" }), e => e.StartsWith("Legate:LogFormat", StringComparison.Ordinal));

    [Fact]
    public void TlsCertificateWithoutKey_IsRejected()
    {
        using var certificates = new Legate.Testing.TestCertificates();
        var errors = Errors(new LegateServerOptions { GrpcTls = new TlsOptions { CertificatePath = certificates.ServerCertificatePath } });
        Assert.Equal(["Legate:GrpcTls:KeyPath is required when Legate:GrpcTls:CertificatePath is set."], errors);
    }

    [Fact]
    public void MissingCertificateFile_IsNamed()
    {
        var errors = Errors(new LegateServerOptions { GrpcTls = new TlsOptions { CertificatePath = "/nonexistent/cert.pem", KeyPath = "/nonexistent/key.pem" } });
        Assert.Contains("Legate:GrpcTls:CertificatePath: file '/nonexistent/cert.pem' does not exist.", errors);
        Assert.Contains("Legate:GrpcTls:KeyPath: file '/nonexistent/key.pem' does not exist.", errors);
    }

    [Fact]
    public void ClientCaWithoutCertificate_IsRejected() =>
        Assert.Contains(Errors(new LegateServerOptions { GrpcTls = new TlsOptions { ClientCaPath = "/x" } }), e => e.Contains("CertificatePath is required", StringComparison.Ordinal));
}
