using System.Diagnostics;
using System.Globalization;
using Envoy.Service.Metrics.V3;
using Google.Protobuf;
using Grpc.Net.Client;
using Legate.Bench.StatSink;

// usage: legate-bench-statsink MODE --grpc URL --http URL --pid PID [--envoys 50] [--stats 5000] [--interval 5] [--duration 30] [--warmup 20]
//   fleet   the Envoys stream a flush every interval, spread over it, for the duration: statsink's CPU share and memory
//   peak    the Envoys resend their flush back to back for the duration: samples applied per second
//   scrape  one flush from every Envoy, then /metrics fetched 5 times in each format: time and size
//   parse   (no statsink) Google.Protobuf's time to parse one Envoy's flush
var mode = args.Length > 0 ? args[0] : "";
string Arg(string name, string fallback)
{
    var i = Array.IndexOf(args, "--" + name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
var grpc = new Uri(Arg("grpc", "http://127.0.0.1:20051"));
var http = new Uri(Arg("http", "http://127.0.0.1:20052"));
var pid = int.Parse(Arg("pid", "0"), CultureInfo.InvariantCulture);
var envoyCount = int.Parse(Arg("envoys", "50"), CultureInfo.InvariantCulture);
var stats = int.Parse(Arg("stats", "5000"), CultureInfo.InvariantCulture);
var interval = TimeSpan.FromSeconds(double.Parse(Arg("interval", "5"), CultureInfo.InvariantCulture));
var duration = TimeSpan.FromSeconds(double.Parse(Arg("duration", "30"), CultureInfo.InvariantCulture));
var warmup = TimeSpan.FromSeconds(double.Parse(Arg("warmup", "20"), CultureInfo.InvariantCulture));
if (mode == "parse")
{
    // How long Google.Protobuf takes to parse one Envoy's flush: the floor under statsink's ingest cost.
    var bytes = new SimulatedEnvoy(0, stats).Flush().ToByteArray();
    var watch = Stopwatch.StartNew();
    var rounds = 0;
    while (watch.Elapsed < TimeSpan.FromSeconds(5) || rounds < 10)
    {
        StreamMetricsMessage.Parser.ParseFrom(bytes);
        rounds++;
    }
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"parse: {bytes.Length} bytes, {stats} stats: {watch.Elapsed.TotalMilliseconds / rounds:F2} ms a flush = {rounds * (double)stats / watch.Elapsed.TotalSeconds:F0} stats/s"));
    return 0;
}
if (mode is not ("fleet" or "peak" or "scrape") || pid <= 0)
{
    Console.Error.WriteLine("usage: legate-bench-statsink fleet|peak|scrape --grpc URL --http URL --pid PID [--envoys N] [--stats N] [--interval S] [--duration S]");
    return 2;
}

using var channel = GrpcChannel.ForAddress(grpc, new GrpcChannelOptions { MaxSendMessageSize = null });
using var web = new HttpClient { BaseAddress = http, Timeout = TimeSpan.FromMinutes(2) };
var client = new MetricsService.MetricsServiceClient(channel);
var envoys = Enumerable.Range(0, envoyCount).Select(i => new SimulatedEnvoy(i, stats)).ToArray();
var calls = envoys.Select(_ => client.StreamMetrics()).ToArray();
var perFlush = envoys.Sum(e => e.Stats);

// Every Envoy's first flush creates its series; measuring starts once statsink has applied them all.
var first = await Samples();
await Task.WhenAll(envoys.Select((e, i) => calls[i].RequestStream.WriteAsync(e.Flush())));
await WaitForSamples(first + perFlush);
var served = await Metric("legate_statsink_series");
Console.WriteLine($"setup: {envoyCount} Envoys x {envoys[0].Stats} stats = {perFlush} stats; series served: {served}");

switch (mode)
{
    case "fleet":
    {
        // Envoys flush on their own timers: spread the fleet evenly over the interval, as real ones drift apart.
        // The first rounds only warm statsink up (its JIT tiers up on the ingest path), then the measured ones.
        await Rounds(warmup);
        var (cpu0, clock) = (Cpu(), Stopwatch.StartNew());
        var samples0 = await Samples();
        var flushes = await Rounds(duration);
        await WaitForSamples(samples0 + (double)flushes * envoys[0].Stats);
        var seconds = clock.Elapsed.TotalSeconds;
        var cpu = (Cpu() - cpu0) / seconds;
        var heap = await Metric("dotnet_total_memory_bytes");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"fleet: {flushes} flushes in {seconds:F0} s ({flushes * (double)envoys[0].Stats / seconds:F0} samples/s) after {warmup.TotalSeconds:F0} s of warmup; statsink CPU {cpu * 100:F1}% of one core; RSS {Rss() / 1048576.0:F0} MiB; managed heap {heap / 1048576.0:F0} MiB"));
        break;
    }
    case "peak":
    {
        // Timestamps off, so statsink does not take the resent flush for a repeated delivery.
        var payloads = envoys.Select(e => e.Flush(timestamps: false)).ToArray();
        var (cpu0, clock) = (Cpu(), Stopwatch.StartNew());
        var samples0 = await Samples();
        var sent = 0L;
        await Task.WhenAll(envoys.Select(async (e, i) =>
        {
            while (clock.Elapsed < duration)
            {
                await calls[i].RequestStream.WriteAsync(payloads[i]);
                Interlocked.Add(ref sent, e.Stats);
            }
        }));
        await WaitForSamples(samples0 + sent);
        var seconds = clock.Elapsed.TotalSeconds;
        var applied = await Samples() - samples0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"peak: {applied:F0} samples in {seconds:F1} s = {applied / seconds:F0} samples/s; statsink CPU {(Cpu() - cpu0) / seconds * 100:F0}% of one core"));
        break;
    }
    default:
    {
        foreach (var openMetrics in new[] { false, true })
        {
            var times = new List<double>();
            long bytes = 0;
            var cpuBefore = Cpu();
            for (var i = 0; i < 5; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
                if (openMetrics)
                    request.Headers.TryAddWithoutValidation("Accept", "application/openmetrics-text;version=1.0.0");
                var clock = Stopwatch.StartNew();
                using var response = await web.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                await using var body = await response.Content.ReadAsStreamAsync();
                var buffer = new byte[1 << 16];
                bytes = 0;
                int n;
                while ((n = await body.ReadAsync(buffer)) > 0)
                    bytes += n;
                times.Add(clock.Elapsed.TotalMilliseconds);
            }
            var cpuPerScrape = (Cpu() - cpuBefore) / times.Count * 1000;
            times.Sort();
            var series = await Metric("legate_statsink_series");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"scrape ({(openMetrics ? "OpenMetrics" : "text 0.0.4")}): {series:F0} series, {bytes / 1048576.0:F1} MiB; min {times[0]:F0} ms, median {times[2]:F0} ms, max {times[^1]:F0} ms; statsink CPU {cpuPerScrape:F0} ms a scrape"));
        }
        break;
    }
}

foreach (var call in calls)
{
    await call.RequestStream.CompleteAsync();
    await call.ResponseAsync;
    call.Dispose();
}
return 0;

async Task<int> Rounds(TimeSpan length)
{
    var clock = Stopwatch.StartNew();
    var flushes = 0;
    for (var round = 0; clock.Elapsed < length; round++)
    {
        for (var i = 0; i < envoys.Length; i++)
        {
            var due = interval * round + interval * i / envoys.Length;
            if (clock.Elapsed < due)
                await Task.Delay(due - clock.Elapsed);
            await calls[i].RequestStream.WriteAsync(envoys[i].Flush());
            flushes++;
        }
    }
    return flushes;
}

// statsink's CPU seconds so far (user + system), from /proc.
double Cpu()
{
    var fields = File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
    return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
}

long Rss()
{
    var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}

async Task<double> Metric(string name)
{
    var text = await web.GetStringAsync(new Uri("/metrics?envoy=false", UriKind.Relative));
    var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + " ", StringComparison.Ordinal));
    return line is null ? double.NaN : double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
}

Task<double> Samples() => Metric("legate_statsink_samples_total");

async Task WaitForSamples(double total)
{
    for (var i = 0; i < 600; i++)
    {
        if (await Samples() >= total)
            return;
        await Task.Delay(100);
    }
    throw new TimeoutException($"statsink did not apply {total} samples within a minute");
}
