using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Legate.Hosting.Rules;
using Legate.RateLimit.Config;
using Legate.RateLimit.Stores;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Prometheus;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// A <see cref="RateLimiter"/> deciding on a store under test, with rules for the domain <c>edge</c> and a clock fixed at
/// the start of a day (so every window of a test is one window, whatever the wall clock does).
/// </summary>
public sealed class StoreLimiter : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("legate-rl-store-").FullName;
    private readonly RulesProvider<RateLimitConfig> _rules;

    public StoreLimiter(ICounterStore store, string rules, string keyPrefix, bool countRejectedHits)
    {
        File.WriteAllText(Path.Combine(_dir, "edge.yaml"), rules);
        var metrics = Metrics.WithCustomRegistry(Metrics.NewCustomRegistry());
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        _rules = new RulesProvider<RateLimitConfig>("ratelimit", new RulesOptions { Path = _dir, Watch = false }, new RateLimitConfigLoader(), time, NullLogger.Instance, metrics);
        _rules.LoadInitial();
        var options = new RateLimitOptions { KeyPrefix = keyPrefix, CountRejectedHits = countRejectedHits, StoreTimeout = TimeSpan.FromSeconds(10) };
        Limiter = new RateLimiter(_rules, store, time, Microsoft.Extensions.Options.Options.Create(options), new RateLimitMetrics(metrics));
    }

    public RateLimiter Limiter { get; }

    /// <summary>One call; each descriptor is (key, value, hits_addend or null for the request's).</summary>
    public async Task<RateLimitResponse> CallAsync(CancellationToken cancellationToken, params (string Key, string Value, ulong? Hits)[] descriptors)
    {
        var request = new RateLimitRequest { Domain = "edge" };
        foreach (var (key, value, hits) in descriptors)
        {
            var descriptor = new RateLimitDescriptor { Entries = { new RateLimitDescriptor.Types.Entry { Key = key, Value = value } } };
            if (hits is { } h)
                descriptor.HitsAddend = h;
            request.Descriptors.Add(descriptor);
        }
        return await Limiter.ShouldRateLimitAsync(request, cancellationToken);
    }

    public void Dispose()
    {
        _rules.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
