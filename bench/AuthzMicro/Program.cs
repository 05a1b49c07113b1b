using System.Buffers.Text;
using Google.Protobuf;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Legate.Authz.Jwt;

// Rates of the JWT validation path, each also as a ratio of the bare RSA-2048 verify measured in the same run
// (so a busy machine shifts both). Usage: legate-bench-authz-micro [seconds per measurement, default 3]
var seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 3;

using var rsa = RSA.Create(2048);
var p = rsa.ExportParameters(false);
var jwks = JsonSerializer.Serialize(new { keys = new[] { new { kty = "RSA", kid = "k1", alg = "RS256", use = "sig", n = Base64Url.EncodeToString(p.Modulus), e = Base64Url.EncodeToString(p.Exponent) } } });
var now = DateTimeOffset.UtcNow;
var header = Base64Url.EncodeToString(Encoding.UTF8.GetBytes("""{"alg":"RS256","typ":"JWT","kid":"k1"}"""));
var payload = Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
{
    ["iss"] = "https://issuer.example.com", ["aud"] = "orders-api", ["sub"] = "alice", ["scope"] = "orders:read orders:write",
    ["iat"] = now.ToUnixTimeSeconds(), ["nbf"] = now.ToUnixTimeSeconds(), ["exp"] = now.AddHours(1).ToUnixTimeSeconds(),
}));
var signingInput = header + "." + payload;
var signature = rsa.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
var token = signingInput + "." + Base64Url.EncodeToString(signature);

var options = new JwtProviderOptions
{
    Name = "bench", Issuer = "https://issuer.example.com", Audiences = ["orders-api"], Algorithms = ["RS256"], InlineJwks = jwks,
};
var provider = new JwtProvider(options, new JwksSource(options, null, TimeProvider.System));
var uncached = new JwtValidator(TimeProvider.System);
var uncachedManaged = new JwtValidator(TimeProvider.System, nativeRsa: false);
var cached = new JwtValidator(TimeProvider.System, new ValidatedTokenCache(TimeProvider.System));
if (!Validate(uncached))
    throw new InvalidOperationException("the bench token does not validate");

using var pub = RSA.Create();
pub.ImportParameters(p);
var hash = SHA256.HashData(Encoding.ASCII.GetBytes(signingInput));

double rsaRate = 0;
rsaRate = Measure("RSA.VerifyHash (reused key, in-run baseline)", () => pub.VerifyHash(hash, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
// The OpenSSL verifier JwtValidator uses for RS256 (its Verify also hashes the signing input; VerifyHash above does not).
var inputBytes = Encoding.ASCII.GetBytes(signingInput);
using var native = OpenSslRsaVerifier.TryCreate(pub);
if (native is not null)
    Measure("OpenSslRsaVerifier (reused EVP_PKEY_CTX, + SHA-256)", () => native.Verify(0, inputBytes, signature) == NativeVerifyResult.Valid);
else
    Console.WriteLine("(libcrypto.so.3 not usable here: no OpenSslRsaVerifier row, JwtValidator uses .NET's RSA)");
var signatureProvider = provider.Keys.Current!.Keys[0].Key.CryptoProviderFactory.CreateForVerifying(provider.Keys.Current!.Keys[0].Key, "RS256");
Measure("IdentityModel SignatureProvider.Verify (cached)", () => signatureProvider.Verify(inputBytes, signature));
var handler = new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler { MapInboundClaims = false };
var parameters = new Microsoft.IdentityModel.Tokens.TokenValidationParameters
{
    ValidIssuer = options.Issuer, ValidAudiences = options.Audiences, ValidAlgorithms = options.Algorithms,
    IssuerSigningKey = provider.Keys.Current!.Keys[0].Key, LifetimeValidator = static (_, expires, _, _) => expires.HasValue,
};
Measure("JsonWebTokenHandler.ValidateTokenAsync alone", () => handler.ValidateTokenAsync(token, parameters).GetAwaiter().GetResult().IsValid);
Measure("JwtValidator, cache off, NativeRsa off (.NET RSA)", () => Validate(uncachedManaged));
Measure("JwtValidator, cache off (distinct-token path)", () => Validate(uncached));
Measure("JwtValidator, cache hit", () => Validate(cached));
// The token cache on (the default) with a token never seen before on every call: 1,000 tokens signed up front,
// the cache emptied each time they come round again (a production cache drops old entries too).
var distinctTokens = Enumerable.Range(0, 1000).Select(i =>
{
    var claims = Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
    {
        ["iss"] = "https://issuer.example.com", ["aud"] = "orders-api", ["sub"] = "user-" + i, ["scope"] = "orders:read orders:write",
        ["iat"] = now.ToUnixTimeSeconds(), ["nbf"] = now.ToUnixTimeSeconds(), ["exp"] = now.AddHours(1).ToUnixTimeSeconds(),
    }));
    var input = header + "." + claims;
    return input + "." + Base64Url.EncodeToString(rsa.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
}).ToArray();
var distinctCache = new ValidatedTokenCache(TimeProvider.System);
var cachedDistinct = new JwtValidator(TimeProvider.System, distinctCache);
var distinctInputs = distinctTokens.Select(t => Encoding.ASCII.GetBytes(t[..t.LastIndexOf('.')])).ToArray();
var distinctSignatures = distinctTokens.Select(t => Base64Url.DecodeFromChars(t.AsSpan(t.LastIndexOf('.') + 1))).ToArray();
int next = 0, nextVerified = 0;
bool ValidateNext(JwtValidator validator, bool wrap)
{
    if (next == distinctTokens.Length)
    {
        next = 0;
        if (wrap)
            distinctCache.Clear();
    }
    var pending = validator.ValidateAsync(provider, distinctTokens[next++], default);
    return (pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult()).Succeeded;
}
bool VerifyNext()
{
    nextVerified = nextVerified == distinctTokens.Length ? 0 : nextVerified;
    var i = nextVerified++;
    return native is null || native.Verify(0, distinctInputs[i], distinctSignatures[i]) == NativeVerifyResult.Valid;
}
Measure("JwtValidator, cache on, a new token every call", () => ValidateNext(cachedDistinct, wrap: true));
if (native is not null)
{
    MeasureBeyond("JwtValidator, cache off, distinct tokens", "their OpenSSL verify", VerifyNext, () => ValidateNext(uncached, wrap: false));
    MeasureBeyond("JwtValidator, cache on, a new token every call", "its OpenSSL verify", VerifyNext, () => ValidateNext(cachedDistinct, wrap: true));
}
Measure("TokenCacheKey-sized work: SHA-256 of the token", () => SHA256.HashData(Encoding.UTF8.GetBytes(token)).Length == 32);

// The whole decision in process on the harness's own policy and payloads (bench/run.sh authz writes them to bench/out),
// beside the decider's cheapest answer, so gRPC and Kestrel are out of the picture.
var outDir = Path.Combine(AppContext.BaseDirectory, "../../../../out");
if (File.Exists(Path.Combine(outDir, "authz-jwt.pb")))
{
    var policy = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../rules/authz/policies.yaml"));
    var registry = Prometheus.Metrics.NewCustomRegistry();
    var factory = Prometheus.Metrics.WithCustomRegistry(registry);
    using var loader = new Legate.Authz.Policies.AuthzPolicyLoader(TimeProvider.System);
    using var rules = new Legate.Hosting.Rules.RulesProvider<Legate.Authz.Policies.AuthzPolicySet>("authz",
        new Legate.Hosting.Rules.RulesOptions { Path = policy }, loader, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, factory);
    await ((Microsoft.Extensions.Hosting.IHostedLifecycleService)rules).StartingAsync(default);
    var metrics = new Legate.Authz.Policies.AuthzMetrics(factory);
    var logger = Microsoft.Extensions.Logging.Abstractions.NullLogger<Legate.Authz.Policies.AuthorizationDecider>.Instance;
    var cachedDecider = new Legate.Authz.Policies.AuthorizationDecider(rules, cached, metrics, logger, TimeProvider.System);
    var uncachedDecider = new Legate.Authz.Policies.AuthorizationDecider(rules, uncached, metrics, logger, TimeProvider.System);
    var uncachedManagedDecider = new Legate.Authz.Policies.AuthorizationDecider(rules, uncachedManaged, metrics, logger, TimeProvider.System);
    Envoy.Service.Auth.V3.CheckRequest Load(string name) => Envoy.Service.Auth.V3.CheckRequest.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(outDir, name)));
    var check = Load("authz-check.pb");
    var jwt = Load("authz-jwt.pb");
    // The API-key request: the JWT one with the key from authz-apikey.txt instead of the token (the .pb is written
    // only when the apikey scenario runs, so it may be older than the keys file).
    var apiKey = jwt.Clone();
    var headers = apiKey.Attributes.Request.Http.Headers;
    headers.Remove("authorization");
    headers["x-api-key"] = System.Text.RegularExpressions.Regex.Match(File.ReadAllText(Path.Combine(outDir, "authz-apikey.txt")),
        "key: \"x-api-key\" value: \"([^\"]+)\"").Groups[1].Value;
    // The decision alone: each request is read into the view once here (the rows below time that reading), so a
    // header the decider looks up is decoded on the first call only.
    var views = new Dictionary<Envoy.Service.Auth.V3.CheckRequest, Legate.Authz.Wire.CheckRequestView>(ReferenceEqualityComparer.Instance)
    {
        [check] = Legate.Authz.Wire.CheckRequestView.From(check), [jwt] = Legate.Authz.Wire.CheckRequestView.From(jwt),
        [apiKey] = Legate.Authz.Wire.CheckRequestView.From(apiKey),
    };
    bool Decide(Legate.Authz.Policies.AuthorizationDecider decider, Envoy.Service.Auth.V3.CheckRequest request, bool allow)
        => (decider.CheckAsync(views[request], default).GetAwaiter().GetResult().Status.Code == 0) == allow;
    Measure("Decider, authz-check payload (no credentials: deny)", () => Decide(cachedDecider, check, allow: false));
    Measure("Decider, API key", () => Decide(cachedDecider, apiKey, allow: true));
    Measure("Decider, JWT cached", () => Decide(cachedDecider, jwt, allow: true));
    Measure("Decider, JWT distinct (cache off), NativeRsa off", () => Decide(uncachedManagedDecider, jwt, allow: true));
    Measure("Decider, JWT distinct (cache off)", () => Decide(uncachedDecider, jwt, allow: true));

    // The wire work around a decision: reading the request (the generated parser, which the noop still pays, against
    // the view authz reads through, with the copy of gRPC's buffer it keeps) and serialising the allow answer (what a
    // kept answer's encoding saves on every repeated call).
    var apiKeyBytes = apiKey.ToByteArray();
    MeasureMicros("CheckRequest, generated parser (API-key request)", () => Envoy.Service.Auth.V3.CheckRequest.Parser.ParseFrom(apiKeyBytes).Attributes is not null);
    MeasureMicros("CheckRequestView.Parse of a copy (API-key request)", () => Legate.Authz.Wire.CheckRequestView.Parse(apiKeyBytes.AsSpan().ToArray()).HasHttp);
    var allowAnswer = cachedDecider.DecideAsync(Legate.Authz.Wire.CheckRequestView.From(apiKey), default).GetAwaiter().GetResult().Response;
    var answerBuffer = new byte[allowAnswer.CalculateSize()];
    MeasureMicros("Allow answer (API key), serialised", () =>
    {
        allowAnswer.WriteTo(answerBuffer.AsSpan(0, allowAnswer.CalculateSize()));
        return true;
    });

    // What a distinct-token call costs beyond its signature check: the same key's OpenSSL verify of the same token,
    // timed in blocks alternating with the decider's calls so that both see the same (noisy) machine.
    var benchProvider = rules.Current.Tenants["bench"].JwtProviders[0];
    var benchToken = jwt.Attributes.Request.Http.Headers["authorization"]["Bearer ".Length..];
    var benchDots = (First: benchToken.IndexOf('.', StringComparison.Ordinal), Last: benchToken.LastIndexOf('.'));
    var benchInput = Encoding.ASCII.GetBytes(benchToken[..benchDots.Last]);
    var benchSignature = Base64Url.DecodeFromChars(benchToken.AsSpan(benchDots.Last + 1));
    var benchPayload = benchToken[(benchDots.First + 1)..benchDots.Last];
    MeasureMicros("JwtValidator.ReadPayload alone (harness token)", () => uncached.ReadPayload(benchProvider, benchPayload).Succeeded);
    MeasureMicros("Decider, JWT cached", () => Decide(cachedDecider, jwt, allow: true));
    if (benchProvider.Keys.Current?.Keys[0].NativeRsaVerifier() is { } benchNative)
    {
        bool Verify() => benchNative.Verify(0, benchInput, benchSignature) == NativeVerifyResult.Valid;
        MeasureBeyond("JwtValidator, cache off, harness token", "its OpenSSL verify", Verify, () =>
        {
            var pending = uncached.ValidateAsync(benchProvider, benchToken, default);
            return (pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult()).Succeeded;
        });
        MeasureBeyond("Decider, JWT distinct (cache off)", "its OpenSSL verify", Verify, () => Decide(uncachedDecider, jwt, allow: true));
    }
}
else
{
    Console.WriteLine("(no bench/out/authz-jwt.pb: run an authz scenario of bench/run.sh first for the decider rows)");
}

bool Validate(JwtValidator validator)
{
    var pending = validator.ValidateAsync(provider, token, default);
    return (pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult()).Succeeded;
}

// Blocks of 50 calls of each in turn; prints the median µs per call of both and of their difference per pair of blocks
// (a block the machine preempted is an outlier, not a shift of the mean), and the bytes the call allocates.
void MeasureBeyond(string name, string baselineName, Func<bool> baseline, Func<bool> call)
{
    for (var i = 0; i < 200; i++)
    {
        baseline();
        call();
    }
    List<double> baselines = [], calls = [], differences = [];
    long n = 0, bytes = 0;
    var watch = Stopwatch.StartNew();
    while (watch.Elapsed.TotalSeconds < 2 * seconds)
    {
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < 50; i++)
        {
            if (!baseline())
                throw new InvalidOperationException(baselineName + " failed");
        }
        var middle = Stopwatch.GetTimestamp();
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 50; i++)
        {
            if (!call())
                throw new InvalidOperationException(name + " failed");
        }
        var end = Stopwatch.GetTimestamp();
        bytes += GC.GetAllocatedBytesForCurrentThread() - allocated;
        n += 50;
        baselines.Add((middle - start) * 1e6 / Stopwatch.Frequency / 50);
        calls.Add((end - middle) * 1e6 / Stopwatch.Frequency / 50);
        differences.Add(calls[^1] - baselines[^1]);
    }
    Console.WriteLine($"{name + ", beyond " + baselineName,-52} {Median(calls),8:F2} µs - {Median(baselines),6:F2} µs, median difference {Median(differences),6:F2} µs/call {bytes / (double)n,8:N0} B/call");
}

// µs per call, the median of blocks of 100 calls: for small costs on a busy machine.
void MeasureMicros(string name, Func<bool> call)
{
    for (var i = 0; i < 1000; i++)
        call();
    List<double> blocks = [];
    long n = 0;
    var before = GC.GetAllocatedBytesForCurrentThread();
    var watch = Stopwatch.StartNew();
    while (watch.Elapsed.TotalSeconds < seconds)
    {
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < 100; i++)
        {
            if (!call())
                throw new InvalidOperationException(name + " failed");
        }
        blocks.Add((Stopwatch.GetTimestamp() - start) * 1e6 / Stopwatch.Frequency / 100);
        n += 100;
    }
    var bytes = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)n;
    Console.WriteLine($"{name,-52} {Median(blocks),8:F2} µs/call (median of {blocks.Count} blocks) {bytes,8:N0} B/call");
}

static double Median(List<double> values)
{
    values.Sort();
    return values[values.Count / 2];
}

double Measure(string name, Func<bool> call)
{
    for (var i = 0; i < 200; i++)
        call();
    var before = GC.GetAllocatedBytesForCurrentThread();
    var watch = Stopwatch.StartNew();
    long n = 0;
    while (watch.Elapsed.TotalSeconds < seconds)
    {
        for (var i = 0; i < 100; i++)
        {
            if (!call())
                throw new InvalidOperationException(name + " failed");
        }
        n += 100;
    }
    var rate = n / watch.Elapsed.TotalSeconds;
    var bytes = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)n;
    var ratio = rsaRate > 0 ? $"{rate / rsaRate,6:F2}x RSA" : "";
    Console.WriteLine($"{name,-52} {rate,12:N0}/s {bytes,8:N0} B/call {ratio}");
    return rate;
}
