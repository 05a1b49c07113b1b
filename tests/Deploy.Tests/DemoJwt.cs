using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>What deploy/examples/mint-jwt.sh mints, in C#: a demo token signed with deploy/examples/demo-idp.key.pem.</summary>
internal static class DemoJwt
{
    public const string Issuer = "https://idp.acme.example";
    public const string Audience = "orders-api";
    public const string KeyId = "acme-demo-1";

    public static string Mint(TimeProvider? time = null)
    {
        var now = (time ?? TimeProvider.System).GetUtcNow().ToUnixTimeSeconds();
        var header = Encode(JsonSerializer.SerializeToUtf8Bytes(new { alg = "RS256", typ = "JWT", kid = KeyId }));
        var payload = Encode(JsonSerializer.SerializeToUtf8Bytes(new
        {
            iss = Issuer, aud = Audience, sub = "alice", azp = "demo-app", scope = "orders:read orders:write",
            iat = now, nbf = now, exp = now + 900,
        }));
        using var rsa = RSA.Create();
        rsa.ImportFromPem(File.ReadAllText(Path.Combine(RepoPaths.Root, "deploy", "examples", "demo-idp.key.pem")));
        var signature = rsa.SignData(Encoding.ASCII.GetBytes(header + "." + payload), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return $"{header}.{payload}.{Encode(signature)}";
    }

    public static string Encode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Decode(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '='));
    }
}
