using System.Buffers;
using System.Diagnostics;
using Envoy.Service.Ratelimit.V3;
using Google.Protobuf;
using Legate.Hosting.Rules;
using Legate.RateLimit;
using Legate.RateLimit.Config;
using Legate.RateLimit.Stores;
using Microsoft.Extensions.Logging.Abstractions;

// Per-call cost of a ShouldRateLimit decision in process (no gRPC, no Kestrel): the harness's payloads
// (bench/run.sh writes bench/out/ratelimit-{1,3}.pb) against bench/rules/ratelimit/within.yaml with the in-memory
// store, each request read and each answer serialised as the gRPC marshallers do, beside the no-op server's work (the
// generated parser, a constant answer); the parse and serialise rows time those steps alone.
// Usage: legate-bench-ratelimit-micro [seconds per measurement, default 3]
var seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 3;
var bench = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../.."));
var registry = Prometheus.Metrics.NewCustomRegistry();
var factory = Prometheus.Metrics.WithCustomRegistry(registry);
factory.ExemplarBehavior = Prometheus.ExemplarBehavior.NoExemplars();
var options = Microsoft.Extensions.Options.Options.Create(new RateLimitOptions());
using var rules = new RulesProvider<RateLimitConfig>("ratelimit", new RulesOptions { Path = Path.Combine(bench, "rules/ratelimit/within.yaml") },
    new RateLimitConfigLoader(mergeDomains: false), TimeProvider.System, NullLogger.Instance, factory);
await ((Microsoft.Extensions.Hosting.IHostedLifecycleService)rules).StartingAsync(default);
using var store = new MemoryCounterStore(TimeProvider.System);
var limiter = new RateLimiter(rules, store, TimeProvider.System, options, new RateLimitMetrics(factory));
var buffer = new ArrayBufferWriter<byte>(4096);

foreach (var name in (string[])["ratelimit-1", "ratelimit-3"])
{
    var file = Path.Combine(bench, "out", name + ".pb");
    if (!File.Exists(file))
    {
        Console.WriteLine($"(no {file}: run a ratelimit-memory scenario of bench/run.sh first)");
        continue;
    }
    var bytes = File.ReadAllBytes(file);
    var request = Read(bytes);
    var noop = new RateLimitResponse { OverallCode = RateLimitResponse.Types.Code.Ok };
    for (var i = 0; i < request.Descriptors.Length; i++)
        noop.Statuses.Add(new RateLimitResponse.Types.DescriptorStatus { Code = RateLimitResponse.Types.Code.Ok });
    var answer = Decide(request);
    Measure($"{name}: parse, generated parser", () => Parse(bytes).Descriptors.Count > 0);
    Measure($"{name}: parse, RlsRequestReader", () => Read(bytes).Descriptors.Length > 0);
    Measure($"{name}: serialise answer", () => Serialize(answer));
    Measure($"{name}: no-op: parse + answer", () => SerializeProto(Parse(bytes) is not null ? noop : noop));
    Measure($"{name}: parse + decide + serialise", () => Serialize(Decide(Read(bytes))));
    Measure($"{name}: decide only (parsed once)", () => Decide(request).OverallCode == RateLimitResponse.Types.Code.Ok);
    Measure($"{name}: generated answer: build + serialise", () => SerializeProto(answer.ToProto()));
}

// As the gRPC marshallers read: the payload as a ReadOnlySequence (the no-op: the generated parser; the service: RlsRequestReader).
RateLimitRequest Parse(byte[] bytes) => RateLimitRequest.Parser.ParseFrom(new ReadOnlySequence<byte>(bytes));

RlsRequest Read(byte[] bytes) => RlsRequestReader.Read(new ReadOnlySequence<byte>(bytes));

RlsResponse Decide(RlsRequest request)
{
    var pending = limiter.ShouldRateLimitAsync(request, default);
    return pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
}

// As the service's marshaller writes its answers.
bool Serialize(RlsResponse response)
{
    buffer.ResetWrittenCount();
    var size = response.CalculateSize();
    response.WriteTo(buffer.GetSpan(size)[..size]);
    buffer.Advance(size);
    return response.OverallCode == RateLimitResponse.Types.Code.Ok;
}

// As the generated marshaller writes a message (the no-op's answer).
bool SerializeProto(RateLimitResponse response)
{
    buffer.ResetWrittenCount();
    _ = response.CalculateSize();
    response.WriteTo(buffer);
    return response.OverallCode == RateLimitResponse.Types.Code.Ok;
}

void Measure(string name, Func<bool> call)
{
    for (var i = 0; i < 20_000; i++)
        call();
    var before = GC.GetAllocatedBytesForCurrentThread();
    var watch = Stopwatch.StartNew();
    long n = 0;
    while (watch.Elapsed.TotalSeconds < seconds)
    {
        for (var i = 0; i < 1000; i++)
        {
            if (!call())
                throw new InvalidOperationException(name + " failed");
        }
        n += 1000;
    }
    var nsPerCall = watch.Elapsed.TotalMilliseconds * 1e6 / n;
    var bytesPerCall = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)n;
    Console.WriteLine($"{name,-45} {nsPerCall,9:N0} ns/call {bytesPerCall,8:N0} B/call");
}
