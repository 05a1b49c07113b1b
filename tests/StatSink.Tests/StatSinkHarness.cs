using System.Globalization;
using Envoy.Service.Metrics.V3;
using Grpc.Core;
using Legate.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MetricsClient = Envoy.Service.Metrics.V3.MetricsService.MetricsServiceClient;

namespace Legate.StatSink.Tests;

/// <summary>statsink in process with a fake clock, Envoy streams into it, and its <c>/metrics</c> parsed.</summary>
public sealed class StatSinkHarness : IDisposable
{
    public StatSinkHarness(IDictionary<string, string?>? settings = null)
    {
        Service = new LegateServiceFactory<Program>(settings, services => services.AddSingleton<TimeProvider>(Time));
        Client = new MetricsClient(Service.Channel);
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public LegateServiceFactory<Program> Service { get; }

    public MetricsClient Client { get; }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>One stream that sends <paramref name="messages"/> and closes, as an Envoy shutting down would.</summary>
    public async Task SendAsync(params StreamMetricsMessage[] messages)
    {
        using var call = Client.StreamMetrics(cancellationToken: Ct);
        try
        {
            foreach (var message in messages)
                await call.RequestStream.WriteAsync(message, Ct);
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException && !Ct.IsCancellationRequested)
        {
            // The server ended the call while this side was still writing (a refused message): a write then fails
            // with whatever the transport saw, often CANCELLED. The server's own status comes with the response.
        }
        await call.ResponseAsync;
    }

    /// <summary>The Envoy's next flush on a stream of its own (so it carries the node identifier).</summary>
    public Task SendFlushAsync(EnvoyFlushGenerator envoy)
    {
        envoy.NewStream();
        return SendAsync(envoy.Flush());
    }

    /// <summary>A stream left open, as Envoy keeps it.</summary>
    public EnvoyConnection Open() => new(Client.StreamMetrics(cancellationToken: Ct));

    public async Task<string> ScrapeTextAsync(bool openMetrics = false)
    {
        using var client = Service.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        if (openMetrics)
            request.Headers.TryAddWithoutValidation("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
        using var response = await client.SendAsync(request, Ct);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync(Ct);
    }

    /// <summary>Samples by their series as written (<c>name{labels}</c>); type lines by family.</summary>
    public async Task<Scrape> ScrapeAsync(bool openMetrics = false) => Scrape.Parse(await ScrapeTextAsync(openMetrics));

    /// <summary>Waits until the service has applied <paramref name="total"/> messages since it started (bounded by count and time).</summary>
    public async Task WaitForMessagesAsync(int total)
    {
        for (var i = 0; i < 500; i++)
        {
            var scrape = await ScrapeAsync();
            if (scrape["legate_statsink_messages_total"] >= total)
                return;
            await Task.Delay(10, Ct);
        }
        Assert.Fail($"statsink did not apply {total} messages");
    }

    /// <summary>Moves the clock and lets the sweeper run.</summary>
    public void Advance(TimeSpan by) => Time.Advance(by);

    public void Dispose() => Service.Dispose();
}

/// <summary>An open Envoy stream.</summary>
public sealed class EnvoyConnection(AsyncClientStreamingCall<StreamMetricsMessage, StreamMetricsResponse> call) : IAsyncDisposable
{
    public async Task SendAsync(StreamMetricsMessage message) => await call.RequestStream.WriteAsync(message, TestContext.Current.CancellationToken);

    public async Task SendAllAsync(IEnumerable<StreamMetricsMessage> messages)
    {
        foreach (var message in messages)
            await SendAsync(message);
    }

    public async Task CloseAsync()
    {
        await call.RequestStream.CompleteAsync();
        await call.ResponseAsync;
    }

    public ValueTask DisposeAsync()
    {
        call.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A parsed exposition.</summary>
public sealed class Scrape
{
    private Scrape(string text, Dictionary<string, string> samples, Dictionary<string, string> types)
    {
        Text = text;
        Samples = samples;
        Types = types;
    }

    public string Text { get; }

    /// <summary>Value text by series as written, e.g. <c>envoy_x{envoy_node_id="a"}</c> → <c>3</c>.</summary>
    public Dictionary<string, string> Samples { get; }

    /// <summary><c># TYPE</c> by family name.</summary>
    public Dictionary<string, string> Types { get; }

    public double this[string series] => Samples.TryGetValue(series, out var value)
        ? double.Parse(value.Replace("+Inf", "Infinity", StringComparison.Ordinal).Replace("-Inf", "-Infinity", StringComparison.Ordinal), CultureInfo.InvariantCulture)
        : throw new KeyNotFoundException($"No series {series} in:\n{string.Join('\n', Samples.Keys.Where(k => k.StartsWith("envoy_", StringComparison.Ordinal)).Take(60))}");

    public bool Has(string series) => Samples.ContainsKey(series);

    public IEnumerable<string> SeriesOf(string name) =>
        Samples.Keys.Where(k => k == name || k.StartsWith(name + "{", StringComparison.Ordinal));

    public static Scrape Parse(string text)
    {
        var samples = new Dictionary<string, string>(StringComparer.Ordinal);
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.False(types.ContainsKey(parts[2]), $"family {parts[2]} declared twice");
                types[parts[2]] = parts[3];
                continue;
            }
            if (line.Length == 0 || line[0] == '#')
                continue;
            var space = line.LastIndexOf(' ');
            var series = line[..space];
            Assert.False(samples.ContainsKey(series), $"series {series} written twice");
            samples[series] = line[(space + 1)..];
        }
        return new Scrape(text, samples, types);
    }
}
