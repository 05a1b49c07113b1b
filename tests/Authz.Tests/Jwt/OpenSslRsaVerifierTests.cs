using System.Security.Cryptography;
using System.Text;
using Legate.Authz.Jwt;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

/// <summary>
/// RS256/RS384/RS512 through OpenSSL with reused contexts (<see cref="OpenSslRsaVerifier"/>): the same answers as .NET's
/// RSA on every input, contexts shared safely between threads and across a key's disposal, and .NET's RSA whenever
/// OpenSSL errs or is turned off.
/// </summary>
public sealed class OpenSslRsaVerifierTests
{
    private static readonly string[] RsaAlgorithms = ["RS256", "RS384", "RS512"];

    // One key per size for the whole class (4096-bit generation takes a while).
    private static readonly Lazy<RSA[]> Keys = new(() => [RSA.Create(2048), RSA.Create(3072), RSA.Create(4096)]);

    private readonly FakeTimeProvider _time = new(Now);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static HashAlgorithmName HashOf(string alg) => alg switch
    {
        "RS256" => HashAlgorithmName.SHA256,
        "RS384" => HashAlgorithmName.SHA384,
        _ => HashAlgorithmName.SHA512,
    };

    private static OpenSslRsaVerifier Create(RSA rsa, bool initialiseContexts = true)
    {
        if (!OpenSslRsaVerifier.IsSupported)
            Assert.Skip("libcrypto.so.3 (OpenSSL 3) is not usable here");
        var verifier = OpenSslRsaVerifier.TryCreate(rsa, initialiseContexts);
        Assert.NotNull(verifier);
        return verifier;
    }

    private static byte[] Sign(RSA rsa, byte[] input, string alg) => rsa.SignData(input, HashOf(alg), RSASignaturePadding.Pkcs1);

    private static bool Managed(RSA rsa, byte[] input, byte[] signature, string alg) => rsa.VerifyData(input, signature, HashOf(alg), RSASignaturePadding.Pkcs1);

    [Fact]
    public void IsSupported_WhereDotNetItselfRunsOnOpenSsl3()
    {
        // .NET's crypto on Linux loads the same libcrypto: where it reports OpenSSL 3, the native path must be usable,
        // or every other test here would skip unnoticed.
        if (!OperatingSystem.IsLinux() || SafeEvpPKeyHandle.OpenSslVersion < 0x3000_0000)
            Assert.Skip(".NET does not run on OpenSSL 3 here");
        Assert.True(OpenSslRsaVerifier.IsSupported);
        Assert.True(new JwtValidator(_time).NativeRsa);
        Assert.False(new JwtValidator(_time, nativeRsa: false).NativeRsa);
    }

    [Fact]
    public void Differential_AgreesWithDotNet_OnValidAndTamperedSignatures()
    {
        var random = new Random(4711);
        foreach (var rsa in Keys.Value)
        {
            using var verifier = Create(rsa);
            Assert.Equal(rsa.KeySize / 8, verifier.SignatureLength);
            var other = Keys.Value.First(k => k != rsa);
            foreach (var alg in RsaAlgorithms)
            {
                var hash = OpenSslRsaVerifier.HashOf(alg);
                var wrongHash = (hash + 1) % 3;
                for (var i = 0; i < 20; i++)
                {
                    var input = new byte[random.Next(1, 600)];
                    random.NextBytes(input);
                    var signature = Sign(rsa, input, alg);
                    Check(rsa, verifier, hash, alg, input, signature, expected: true);

                    var tamperedInput = (byte[])input.Clone();
                    tamperedInput[random.Next(tamperedInput.Length)] ^= (byte)(1 << random.Next(8));
                    Check(rsa, verifier, hash, alg, tamperedInput, signature, expected: false);

                    var flipped = (byte[])signature.Clone();
                    flipped[random.Next(flipped.Length)] ^= (byte)(1 << random.Next(8));
                    Check(rsa, verifier, hash, alg, input, flipped, expected: false);

                    Check(rsa, verifier, hash, alg, input, signature[..^1], expected: false);
                    Check(rsa, verifier, hash, alg, input, [.. signature, 0], expected: false);
                    Check(rsa, verifier, hash, alg, input, [0, .. signature], expected: false);
                    Check(rsa, verifier, hash, alg, input, new byte[signature.Length], expected: false);
                    Check(rsa, verifier, hash, alg, input, Enumerable.Repeat((byte)0xFF, signature.Length).ToArray(), expected: false);

                    // Signed with the same hash by a key of another size, and by this key with another hash.
                    var foreign = Sign(other, input, alg);
                    Assert.Equal(NativeVerifyResult.Invalid, verifier.Verify(hash, input, foreign));
                    Assert.Equal(NativeVerifyResult.Invalid, verifier.Verify(wrongHash, input, signature));
                    Assert.False(Managed(rsa, input, signature, RsaAlgorithms[wrongHash]));
                }
            }
            // Three digests, each context reused for all of its 20 x 10 calls (valid and invalid alike).
            Assert.Equal(3, verifier.ContextsCreated);
        }
    }

    private static void Check(RSA rsa, OpenSslRsaVerifier verifier, int hash, string alg, byte[] input, byte[] signature, bool expected)
    {
        Assert.Equal(expected, Managed(rsa, input, signature, alg));
        Assert.Equal(expected ? NativeVerifyResult.Valid : NativeVerifyResult.Invalid, verifier.Verify(hash, input, signature));
    }

    [Fact]
    public async Task Differential_ThroughTheValidator_NativeAndManagedGiveTheSameAnswers()
    {
        var rsa = Keys.Value;
        var jwks = Jwks(Rsa(rsa[0], "k2048", alg: null), Rsa(rsa[1], "k3072", alg: null), Rsa(rsa[2], "k4096", alg: null));
        var kids = new[] { "k2048", "k3072", "k4096" };
        var options = Options(jwks) with { Algorithms = RsaAlgorithms };
        var provider = Provider(options, _time);
        var native = new JwtValidator(_time);
        var managed = new JwtValidator(_time, nativeRsa: false);
        if (!native.NativeRsa)
            Assert.Skip("libcrypto.so.3 (OpenSSL 3) is not usable here");

        var random = new Random(1234);
        var outcomes = new int[2];
        for (var i = 0; i < 300; i++)
        {
            var k = random.Next(3);
            var alg = RsaAlgorithms[random.Next(3)];
            var payload = Payload(Now, c => c["sub"] = "user-" + random.Next());
            var mutation = random.Next(7);
            string token;
            switch (mutation)
            {
                case 1: // signed by another key under this kid
                    token = SignRsa(rsa[(k + 1) % 3], Header(alg, kids[k]), payload, hash: HashOf(alg));
                    break;
                case 2: // header says one hash, signature made with another
                    token = SignRsa(rsa[k], Header(alg, kids[k]), payload, hash: HashOf(RsaAlgorithms[(Array.IndexOf(RsaAlgorithms, alg) + 1) % 3]));
                    break;
                default:
                    token = SignRsa(rsa[k], Header(alg, kids[k]), payload, hash: HashOf(alg));
                    break;
            }
            var dot = token.LastIndexOf('.');
            var signature = System.Buffers.Text.Base64Url.DecodeFromChars(token.AsSpan(dot + 1));
            token = mutation switch
            {
                3 => token[..(dot - 3)] + (token[dot - 3] == 'A' ? 'B' : 'A') + token[(dot - 2)..], // payload character
                4 => token[..(dot + 1)] + B64(Flip(signature, random)),
                5 => token[..(dot + 1)] + B64(signature.AsSpan(0, signature.Length - 1)),
                6 => token[..(dot + 1)] + B64([.. signature, (byte)random.Next(256)]),
                _ => token,
            };

            var fromNative = await native.ValidateAsync(provider, token, Ct);
            var fromManaged = await managed.ValidateAsync(provider, token, Ct);
            Assert.Equal(fromManaged.Failure, fromNative.Failure);
            if (mutation == 0)
            {
                Assert.True(fromNative.Succeeded, $"{alg} with {kids[k]}: {fromNative}");
                Assert.Equal(fromManaged.Identity!.Subject, fromNative.Identity!.Subject);
            }
            else
            {
                // A changed payload character may break the JSON or base64 before the signature is checked.
                Assert.Contains(fromNative.Failure, mutation == 3
                    ? new[] { JwtFailureReason.BadSignature, JwtFailureReason.Malformed }
                    : new[] { JwtFailureReason.BadSignature });
            }
            outcomes[fromNative.Succeeded ? 0 : 1]++;
        }
        Assert.True(outcomes[0] > 20 && outcomes[1] > 100, $"valid {outcomes[0]}, invalid {outcomes[1]}");
        // The native validator really went to OpenSSL, and never needed the managed fallback.
        Assert.All(provider.Keys.Current!.Keys, key => Assert.True(key.NativeRsaVerifier()!.ContextsCreated > 0));
        Assert.Equal(0, native.NativeRsaFallbacks);
    }

    private static byte[] Flip(byte[] signature, Random random)
    {
        var flipped = (byte[])signature.Clone();
        flipped[random.Next(flipped.Length)] ^= (byte)(1 << random.Next(8));
        return flipped;
    }

    [Fact]
    public void PsAndEsAlgorithms_AreNotHandled()
    {
        Assert.Equal(-1, OpenSslRsaVerifier.HashOf("PS256"));
        Assert.Equal(-1, OpenSslRsaVerifier.HashOf("ES256"));
        Assert.Equal(-1, OpenSslRsaVerifier.HashOf("HS256"));
        Assert.Equal(-1, OpenSslRsaVerifier.HashOf("rs256"));
        Assert.Throws<ArgumentOutOfRangeException>(() => Create(Rsa1).Verify(3, [1], new byte[256]));
    }

    [Fact]
    public async Task PsToken_OnAnRsaKey_StillVerifiesThroughDotNet()
    {
        var provider = Provider(Options(Jwks(Rsa(Rsa1, "k1", alg: null))) with { Algorithms = ["PS256", "RS256"] }, _time);
        var validator = new JwtValidator(_time);
        var ps = SignRsa(Rsa1, Header("PS256", "k1"), Payload(Now), RSASignaturePadding.Pss);
        Assert.True((await validator.ValidateAsync(provider, ps, Ct)).Succeeded);
        // A PKCS#1 v1.5 signature under a PS256 header is not accepted by either path.
        var mislabelled = SignRsa(Rsa1, Header("PS256", "k1"), Payload(Now));
        Assert.Equal(JwtFailureReason.BadSignature, (await validator.ValidateAsync(provider, mislabelled, Ct)).Failure);
        var pssUnderRs = SignRsa(Rsa1, Header("RS256", "k1"), Payload(Now), RSASignaturePadding.Pss);
        Assert.Equal(JwtFailureReason.BadSignature, (await validator.ValidateAsync(provider, pssUnderRs, Ct)).Failure);
    }

    [Fact]
    public void Concurrent_ManyThreadsOnOneKey_EveryAnswerIsRight()
    {
        using var verifier = Create(Rsa1);
        var input = Encoding.ASCII.GetBytes("header.payload");
        var valid = Sign(Rsa1, input, "RS256");
        var invalid = Flip(valid, new Random(7));
        const int Threads = 8, PerThread = 400;
        var wrong = 0;
        var answered = 0;
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                var good = (i + t) % 3 != 0;
                var result = verifier.Verify(OpenSslRsaVerifier.HashOf("RS256"), input, good ? valid : invalid);
                if (result != (good ? NativeVerifyResult.Valid : NativeVerifyResult.Invalid))
                    Interlocked.Increment(ref wrong);
                Interlocked.Increment(ref answered);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.Equal(Threads * PerThread, answered);
        Assert.Equal(0, wrong);
        // Contexts are reused, not made per call: at most one per thread (the pool has room for 16 or more).
        Assert.InRange(verifier.ContextsCreated, 1, Threads);
    }

    [Fact]
    public void Disposed_WhileThreadsVerify_AnswersStayRightOrStepAside_NeverCrash()
    {
        var verifier = Create(Rsa1);
        var input = Encoding.ASCII.GetBytes("header.payload");
        var valid = Sign(Rsa1, input, "RS256");
        var invalid = Flip(valid, new Random(11));
        // Each thread runs until it has seen the disposal (bounded by count, never by time).
        const int Threads = 6, MaxPerThread = 50_000;
        var wrong = 0;
        var sawDisposal = 0;
        using var started = new CountdownEvent(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            for (var i = 0; i < MaxPerThread; i++)
            {
                if (i == 5)
                    started.Signal();
                var good = i % 2 == 0;
                switch (verifier.Verify(0, input, good ? valid : invalid))
                {
                    case NativeVerifyResult.Valid when good:
                    case NativeVerifyResult.Invalid when !good:
                        break;
                    case NativeVerifyResult.Unavailable when i > 5:
                        Interlocked.Increment(ref sawDisposal);
                        return;
                    default:
                        Interlocked.Increment(ref wrong);
                        break;
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.True(started.Wait(TimeSpan.FromSeconds(30), Ct));
        verifier.Dispose(); // the key rotates out while calls are running
        threads.ForEach(t => t.Join());

        Assert.Equal(0, wrong);
        Assert.Equal(NativeVerifyResult.Unavailable, verifier.Verify(0, input, valid));
        Assert.Equal(NativeVerifyResult.Unavailable, verifier.Verify(0, input, invalid));
        verifier.Dispose(); // twice is harmless
        Assert.Equal(Threads, sawDisposal);
    }

    [Fact]
    public async Task KeyWithDisposedVerifier_IsVerifiedByDotNet()
    {
        var provider = Provider(Options(Jwks(Rsa(Rsa1, "k1"))), _time);
        var validator = new JwtValidator(_time);
        var key = provider.Keys.Current!.Keys[0];
        Assert.True((await validator.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        key.NativeRsaVerifier()?.Dispose();

        Assert.True((await validator.ValidateAsync(provider, Token(Now, c => c["sub"] = "bob"), Ct)).Succeeded);
        Assert.Equal(JwtFailureReason.BadSignature, (await validator.ValidateAsync(provider, Token(Now, key: Attacker), Ct)).Failure);
        Assert.Equal(0, validator.NativeRsaFallbacks); // a rotation is not an OpenSSL failure
    }

    [Fact]
    public async Task OpenSslError_FallsBackToDotNet_NeverAllows_LogsOnce()
    {
        // Contexts never initialised for verifying: EVP_PKEY_verify answers -1 (an error, not "bad signature").
        using var broken = Create(Rsa1, initialiseContexts: false);
        var input = Encoding.ASCII.GetBytes("header.payload");
        Assert.Equal(NativeVerifyResult.Error, broken.Verify(0, input, Sign(Rsa1, input, "RS256")));
        Assert.Equal(NativeVerifyResult.Error, broken.Verify(0, input, new byte[256]));

        var provider = Provider(Options(Jwks(Rsa(Rsa1, "k1"))), _time);
        Assert.True(provider.Keys.Current!.Keys[0].UseNativeRsa(broken));
        var logger = new FakeLogger<JwtValidator>();
        var validator = new JwtValidator(_time, logger: logger);

        Assert.True((await validator.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        Assert.Equal(JwtFailureReason.BadSignature, (await validator.ValidateAsync(provider, Token(Now, key: Attacker), Ct)).Failure);
        var flipped = Token(Now, c => c["sub"] = "carol");
        flipped = flipped[..^2] + (flipped[^2] == 'A' ? 'B' : 'A') + flipped[^1];
        Assert.Equal(JwtFailureReason.BadSignature, (await validator.ValidateAsync(provider, flipped, Ct)).Failure);

        Assert.Equal(3, validator.NativeRsaFallbacks);
        var record = Assert.Single(logger.Collector.GetSnapshot());
        Assert.Equal("NativeRsaFailed", record.Id.Name);
    }

    [Fact]
    public async Task TurnedOff_TheKeysOpenSslVerifierIsNeverAsked()
    {
        var provider = Provider(Options(Jwks(Rsa(Rsa1, "k1"))), _time);
        // A verifier that can only err: if the validator asked it, the fallback counter would move.
        Assert.True(provider.Keys.Current!.Keys[0].UseNativeRsa(Create(Rsa1, initialiseContexts: false)));
        var off = new JwtValidator(_time, nativeRsa: false);
        Assert.False(off.NativeRsa);

        Assert.True((await off.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        Assert.Equal(JwtFailureReason.BadSignature, (await off.ValidateAsync(provider, Token(Now, key: Attacker), Ct)).Failure);
        Assert.Equal(0, off.NativeRsaFallbacks);

        var on = new JwtValidator(_time);
        Assert.True((await on.ValidateAsync(provider, Token(Now), Ct)).Succeeded);
        Assert.Equal(1, on.NativeRsaFallbacks);
    }
}

/// <summary><c>Legate:Authz:NativeRsa</c>: OpenSSL verification on (default) or off, validated at start.</summary>
public sealed class NativeRsaSettingTests
{
    [Theory]
    [InlineData(null, true)]
    [InlineData("false", false)]
    [InlineData("True", true)]
    public async Task Setting_TurnsTheOpenSslPathOnOrOff(string? value, bool native)
    {
        if (!OpenSslRsaVerifier.IsSupported)
            Assert.Skip("libcrypto.so.3 (OpenSSL 3) is not usable here");
        var settings = new Dictionary<string, string?>();
        if (value is not null)
            settings[Microsoft.Extensions.Hosting.AuthzExtensions.NativeRsaKey] = value;
        using var host = new Policies.AuthzTestHost(settings: settings);
        var request = Policies.AuthzTestHost.Request(headers: new Dictionary<string, string> { ["authorization"] = "Bearer " + Policies.AuthzTestHost.Token() });

        Assert.Equal(0, (await host.CheckAsync(request)).Status.Code);
        var validator = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<JwtValidator>(host.Service.Services);
        Assert.Equal(native, validator.NativeRsa);
        Assert.Equal(0, validator.NativeRsaFallbacks);
    }

    [Fact]
    public void NotABoolean_StopsTheStart()
    {
        using var host = new Policies.AuthzTestHost(settings: new Dictionary<string, string?> { ["Legate:Authz:NativeRsa"] = "sometimes" });
        var error = Assert.ThrowsAny<Exception>(() => host.Service.Services);
        Assert.Contains("Legate:Authz:NativeRsa must be true or false", error.ToString(), StringComparison.Ordinal);
    }
}
