using System.Buffers.Text;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Legate.Authz.Jwt;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Legate.Authz.Tests.Jwt;

/// <summary>Keys, JWKS documents and hand-built compact tokens (so tests can forge any header).</summary>
internal static class JwtTestKit
{
    public const string Issuer = "https://issuer.example.com";
    public const string Audience = "orders-api";

    public static readonly DateTimeOffset Now = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    // RSA key generation is slow: one set per test run.
    public static readonly RSA Rsa1 = RSA.Create(2048);
    public static readonly RSA Rsa2 = RSA.Create(2048);
    public static readonly RSA Attacker = RSA.Create(2048);
    public static readonly ECDsa Ec1 = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public static string B64(ReadOnlySpan<byte> bytes) => Base64Url.EncodeToString(bytes);

    public static string B64(string text) => B64(Encoding.UTF8.GetBytes(text));

    public static long Unix(DateTimeOffset time) => time.ToUnixTimeSeconds();

    public static Dictionary<string, object?> Rsa(RSA rsa, string? kid, string? alg = "RS256", string? use = "sig")
    {
        var p = rsa.ExportParameters(false);
        var jwk = new Dictionary<string, object?> { ["kty"] = "RSA", ["n"] = B64(p.Modulus), ["e"] = B64(p.Exponent) };
        if (kid is not null) jwk["kid"] = kid;
        if (alg is not null) jwk["alg"] = alg;
        if (use is not null) jwk["use"] = use;
        return jwk;
    }

    public static Dictionary<string, object?> Ec(ECDsa ec, string? kid)
    {
        var p = ec.ExportParameters(false);
        var jwk = new Dictionary<string, object?> { ["kty"] = "EC", ["crv"] = "P-256", ["x"] = B64(p.Q.X), ["y"] = B64(p.Q.Y), ["use"] = "sig" };
        if (kid is not null) jwk["kid"] = kid;
        return jwk;
    }

    public static string Jwks(params Dictionary<string, object?>[] keys) => JsonSerializer.Serialize(new { keys });

    public static Dictionary<string, object?> Claims(DateTimeOffset now, TimeSpan? life = null)
    {
        var lifetime = life ?? TimeSpan.FromMinutes(10);
        return new Dictionary<string, object?>
        {
            ["iss"] = Issuer,
            ["aud"] = Audience,
            ["sub"] = "alice",
            ["iat"] = Unix(now),
            ["nbf"] = Unix(now),
            ["exp"] = Unix(now + lifetime),
            ["scope"] = "orders:read orders:write",
        };
    }

    public static string Header(string alg, string? kid, Action<Dictionary<string, object?>>? edit = null)
    {
        var header = new Dictionary<string, object?> { ["alg"] = alg, ["typ"] = "JWT" };
        if (kid is not null) header["kid"] = kid;
        edit?.Invoke(header);
        return JsonSerializer.Serialize(header);
    }

    public static string Payload(DateTimeOffset now, Action<Dictionary<string, object?>>? edit = null)
    {
        var claims = Claims(now);
        edit?.Invoke(claims);
        return JsonSerializer.Serialize(claims);
    }

    public static string SignRsa(RSA rsa, string headerJson, string payloadJson, RSASignaturePadding? padding = null, HashAlgorithmName? hash = null)
    {
        var input = B64(headerJson) + "." + B64(payloadJson);
        var signature = rsa.SignData(Encoding.ASCII.GetBytes(input), hash ?? HashAlgorithmName.SHA256, padding ?? RSASignaturePadding.Pkcs1);
        return input + "." + B64(signature);
    }

    public static string SignEc(ECDsa ec, string headerJson, string payloadJson)
    {
        var input = B64(headerJson) + "." + B64(payloadJson);
        return input + "." + B64(ec.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256));
    }

    public static string SignHmac(byte[] secret, string headerJson, string payloadJson)
    {
        var input = B64(headerJson) + "." + B64(payloadJson);
        return input + "." + B64(HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(input)));
    }

    /// <summary>A valid RS256 token from <see cref="Rsa1"/> (kid k1), with optional edits.</summary>
    public static string Token(DateTimeOffset now, Action<Dictionary<string, object?>>? claims = null, Action<Dictionary<string, object?>>? header = null,
        RSA? key = null, string? kid = "k1")
        => SignRsa(key ?? Rsa1, Header("RS256", kid, header), Payload(now, claims));

    public static JwtProviderOptions Options(string jwks) => new()
    {
        Name = "test",
        Issuer = Issuer,
        Audiences = [Audience, "admin-api"],
        Algorithms = ["RS256", "ES256"],
        InlineJwks = jwks,
    };

    public static JwtProvider Provider(JwtProviderOptions options, TimeProvider time, HttpClient? http = null)
        => new(options, new JwksSource(options, http, time));

    public static string DefaultJwks => Jwks(Rsa(Rsa1, "k1"), Ec(Ec1, "e1"));
}

/// <summary>A real JWKS / OIDC discovery endpoint on 127.0.0.1 (Kestrel, port 0) whose answer a test can change.</summary>
internal sealed class JwksServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private JwksServer(WebApplication app) => _app = app;

    public string Jwks { get; set; } = JwtTestKit.DefaultJwks;

    public HttpStatusCode Status { get; set; } = HttpStatusCode.OK;

    public string DiscoveryIssuer { get; set; } = JwtTestKit.Issuer;

    public TimeSpan Delay { get; set; }

    public int JwksRequests => Volatile.Read(ref _requests);

    public Uri BaseUri { get; private set; } = null!;

    public Uri JwksUri => new(BaseUri, "/jwks.json");

    public Uri DiscoveryUri => new(BaseUri, "/.well-known/openid-configuration");

    public static async Task<JwksServer> StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new JwksServer(app);
        app.MapGet("/jwks.json", async context =>
        {
            Interlocked.Increment(ref server._requests);
            if (server.Delay > TimeSpan.Zero)
                await Task.Delay(server.Delay, context.RequestAborted);
            context.Response.StatusCode = (int)server.Status;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(server.Jwks, context.RequestAborted);
        });
        app.MapGet("/.well-known/openid-configuration", context =>
        {
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(JsonSerializer.Serialize(new { issuer = server.DiscoveryIssuer, jwks_uri = server.JwksUri.ToString() }), context.RequestAborted);
        });
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseUri = new Uri(address);
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Counts outbound requests and the hosts they went to (J7: no request ever goes where a token points).</summary>
internal sealed class RecordingHandler(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
{
    private readonly List<Uri> _requests = [];

    public IReadOnlyList<Uri> Requests
    {
        get
        {
            lock (_requests)
                return [.. _requests];
        }
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        lock (_requests)
            _requests.Add(request.RequestUri!);
        return Task.FromResult(answer(request));
    }
}
