using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>The demo credentials of deploy/examples: the JWTs the walk-through mints verify against the example JWKS.</summary>
public sealed class ExamplesTests
{
    private static readonly string Examples = Path.Combine(RepoPaths.Root, "deploy", "examples");

    private static bool Verifies(string token)
    {
        var parts = token.Split('.');
        Assert.Equal(3, parts.Length);
        using var jwks = JsonDocument.Parse(File.ReadAllText(Path.Combine(Examples, "idp.jwks.json")));
        var key = jwks.RootElement.GetProperty("keys").EnumerateArray().Single();
        using var header = JsonDocument.Parse(DemoJwt.Decode(parts[0]));
        Assert.Equal(key.GetProperty("kid").GetString(), header.RootElement.GetProperty("kid").GetString());
        Assert.Equal("RS256", header.RootElement.GetProperty("alg").GetString());
        using var rsa = RSA.Create(new RSAParameters
        {
            Modulus = DemoJwt.Decode(key.GetProperty("n").GetString()!),
            Exponent = DemoJwt.Decode(key.GetProperty("e").GetString()!),
        });
        return rsa.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), DemoJwt.Decode(parts[2]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
    }

    [Fact]
    public async Task MintJwtScript_MintsATokenTheExampleJwksVerifies()
    {
        var (exitCode, stdout, stderr) = await DeployTools.RunAsync("bash", [Path.Combine(Examples, "mint-jwt.sh")]);

        Assert.True(exitCode == 0, stderr);
        var token = stdout.Trim();
        Assert.True(Verifies(token));
        using var claims = JsonDocument.Parse(DemoJwt.Decode(token.Split('.')[1]));
        Assert.Equal(DemoJwt.Issuer, claims.RootElement.GetProperty("iss").GetString());
        Assert.Equal(DemoJwt.Audience, claims.RootElement.GetProperty("aud").GetString());
        var lifetime = claims.RootElement.GetProperty("exp").GetInt64() - claims.RootElement.GetProperty("iat").GetInt64();
        Assert.InRange(lifetime, 1, 3600);
    }

    [Fact]
    public void DemoJwt_MintsWhatTheScriptMints_AndATamperedTokenFails()
    {
        var token = DemoJwt.Mint();

        Assert.True(Verifies(token));
        var parts = token.Split('.');
        var tampered = DemoJwt.Encode(Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(DemoJwt.Decode(parts[1])).Replace("alice", "mallory", StringComparison.Ordinal)));
        Assert.False(Verifies($"{parts[0]}.{tampered}.{parts[2]}"));
    }

    [Fact]
    public void KeysFile_HoldsTheSameDemoKeyAsTheAuthzSample()
    {
        static string Records(string path) => string.Join('\n', File.ReadAllLines(path).Where(l => !l.StartsWith('#')));

        Assert.Equal(Records(Path.Combine(RepoPaths.Root, "authz", "rules", "keys.yaml")), Records(Path.Combine(Examples, "keys.yaml")));
    }

    [Fact]
    public void ExampleGateway_TrustsTheDemoIssuer_AndNamesTheDemoKeyStore()
    {
        var gateway = Yaml.Load(Path.Combine(Examples, "gateway.yaml"));

        var provider = gateway.Map("jwt_providers", gateway.Strs("tenants", "acme", "jwt").Single());
        Assert.Equal(DemoJwt.Issuer, provider.Str("issuer"));
        Assert.Contains(DemoJwt.Audience, provider.Strs("audiences"));
        Assert.Equal("idp.jwks.json", provider.Str("jwks_file"));
        Assert.Equal("keys.yaml", gateway.Str("api_keys", "file"));
        Assert.Contains("localhost", gateway.Strs("tenants", "acme", "hosts"));
    }
}
