using System.Net;
using System.Text;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Grpc.Core;
using Legate.RateLimit.Stores;
using Legate.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;
using RateLimitClient = Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceClient;
using Unit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Legate.RateLimit.Tests;

/// <summary>Decisions through a real gRPC client, on rules written for each test and a clock the test moves.</summary>
public sealed class RateLimiterTests : IDisposable
{
    // 10:00:00.000 UTC: the start of every window from a second to a day.
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 10, 0, 0, TimeSpan.Zero);

    private const string Rules = """
        domain: edge
        descriptors:
          - key: tenant
            rate_limit: { unit: minute, requests_per_unit: 5 }
            descriptors:
              - key: client
                rate_limit: { unit: second, requests_per_unit: 2 }
          - key: tenant
            value: acme
            rate_limit: { unit: minute, requests_per_unit: 100, name: acme-tenant }
          - key: open
            value: yes
          - key: vip
            rate_limit: { unlimited: true }
          - key: shadow
            shadow_mode: true
            rate_limit: { unit: second, requests_per_unit: 1 }
          - key: quota
            quota_mode: true
            rate_limit: { unit: second, requests_per_unit: 1 }
          - key: plan
            value: free
            rate_limit: { unit: second, requests_per_unit: 1, name: free-plan }
          - key: plan
            value: gold
            rate_limit: { unit: second, requests_per_unit: 10, replaces: [ { name: free-plan } ] }
          - key: sliding
            rate_limit: { unit: minute, requests_per_unit: 10, algorithm: sliding_window }
          - key: blocked
            rate_limit: { unit: second, requests_per_unit: 0 }
          - key: tagged
            metadata: { team: payments, tier: 2 }
            rate_limit: { unit: second, requests_per_unit: 5 }
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("legate-rl-").FullName;
    private readonly FakeTimeProvider _time = new(Start);
    private readonly List<LegateServiceFactory<Program>> _services = [];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private LegateServiceFactory<Program> Service(IDictionary<string, string?>? settings = null, string rules = Rules, Action<IServiceCollection>? configure = null)
    {
        File.WriteAllText(Path.Combine(_dir, "edge.yaml"), rules);
        var all = new Dictionary<string, string?> { ["Legate:Rules:ratelimit:Path"] = _dir, ["Legate:Rules:ratelimit:Watch"] = "false" };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            all[key] = value;
        var service = new LegateServiceFactory<Program>(all, services =>
        {
            services.AddSingleton<TimeProvider>(_time);
            configure?.Invoke(services);
        });
        _services.Add(service);
        return service;
    }

    /// <summary>Moves the clock until the call fails (however long it takes to reach the store), bounded in steps and time.</summary>
    private async Task<RpcException> FailsAfterTheDeadlineAsync<T>(Task<T> call)
    {
        for (var i = 0; i < 500 && !call.IsCompleted; i++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(10));
            await Task.Delay(5, Ct);
        }
        return await Assert.ThrowsAsync<RpcException>(() => call.WaitAsync(TimeSpan.FromSeconds(10), Ct));
    }

    private static RateLimitDescriptor D(params string[] keyValues)
    {
        var descriptor = new RateLimitDescriptor();
        for (var i = 0; i < keyValues.Length; i += 2)
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = keyValues[i], Value = keyValues[i + 1] });
        return descriptor;
    }

    private static RateLimitRequest Request(params RateLimitDescriptor[] descriptors)
    {
        var request = new RateLimitRequest { Domain = "edge" };
        request.Descriptors.AddRange(descriptors);
        return request;
    }

    private static async Task<RateLimitResponse> CallAsync(LegateServiceFactory<Program> service, RateLimitRequest request) =>
        await new RateLimitClient(service.Channel).ShouldRateLimitAsync(request, cancellationToken: Ct);

    [Fact]
    public async Task TenantQuota_AdmitsTheLimitThenSaysOverLimit()
    {
        var service = Service();
        var codes = new List<Code>();
        var remaining = new List<uint>();

        for (var i = 0; i < 6; i++)
        {
            var response = await CallAsync(service, Request(D("tenant", "globex")));
            codes.Add(response.OverallCode);
            remaining.Add(response.Statuses[0].LimitRemaining);
        }

        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.Ok, Code.Ok, Code.OverLimit], codes);
        Assert.Equal([4u, 3u, 2u, 1u, 0u, 0u], remaining);
    }

    [Fact]
    public async Task Status_CarriesTheLimitAndTheTimeToReset()
    {
        var service = Service();
        _time.Advance(TimeSpan.FromSeconds(42.5));

        var status = (await CallAsync(service, Request(D("tenant", "acme")))).Statuses[0];

        Assert.Equal(Code.Ok, status.Code);
        Assert.Equal(100u, status.CurrentLimit.RequestsPerUnit);
        Assert.Equal(Unit.Minute, status.CurrentLimit.Unit);
        Assert.Equal("acme-tenant", status.CurrentLimit.Name);
        Assert.Equal(99u, status.LimitRemaining);
        Assert.Equal(18, status.DurationUntilReset.Seconds);
    }

    [Fact]
    public async Task EachDescriptor_GetsItsOwnStatusInRequestOrder()
    {
        var service = Service();

        var response = await CallAsync(service, Request(D("tenant", "acme"), D("nothing", "here"), D("vip", "x"), D("tenant", "globex", "client", "c1")));

        Assert.Equal(4, response.Statuses.Count);
        Assert.Equal(99u, response.Statuses[0].LimitRemaining);
        Assert.Null(response.Statuses[1].CurrentLimit);
        Assert.Equal(0u, response.Statuses[1].LimitRemaining);
        Assert.Equal(uint.MaxValue, response.Statuses[2].LimitRemaining);
        Assert.Null(response.Statuses[2].CurrentLimit);
        Assert.Equal(1u, response.Statuses[3].LimitRemaining);
        Assert.Equal(Code.Ok, response.OverallCode);
    }

    [Fact]
    public async Task NewWindow_StartsFromZero()
    {
        var service = Service();
        for (var i = 0; i < 3; i++)
            await CallAsync(service, Request(D("tenant", "globex", "client", "c1")));
        var over = await CallAsync(service, Request(D("tenant", "globex", "client", "c1")));

        _time.Advance(TimeSpan.FromSeconds(1));
        var next = await CallAsync(service, Request(D("tenant", "globex", "client", "c1")));

        Assert.Equal(Code.OverLimit, over.OverallCode);
        Assert.Equal(Code.Ok, next.OverallCode);
        Assert.Equal(1u, next.Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task UnknownDomain_IsUnderNoLimit()
    {
        var service = Service();

        var response = await CallAsync(service, new RateLimitRequest { Domain = "nope", Descriptors = { D("tenant", "acme") } });

        Assert.Equal(Code.Ok, response.OverallCode);
        Assert.Null(Assert.Single(response.Statuses).CurrentLimit);
        Assert.Contains("legate_ratelimit_domain_not_found_total{domain=\"nope\"} 1", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task HitsAddend_RequestLevelAndPerDescriptor()
    {
        var service = Service();
        var request = Request(D("tenant", "globex"));
        request.HitsAddend = 3;
        var checkOnly = D("tenant", "globex");
        checkOnly.HitsAddend = 0;

        var first = await CallAsync(service, request);
        var peek = await CallAsync(service, Request(checkOnly));
        var second = await CallAsync(service, request);

        Assert.Equal(2u, first.Statuses[0].LimitRemaining);
        Assert.Equal(2u, peek.Statuses[0].LimitRemaining);
        Assert.Equal(Code.OverLimit, second.OverallCode);
    }

    [Fact]
    public async Task LimitOverride_ReplacesTheConfiguredLimit()
    {
        var service = Service();
        var descriptor = D("tenant", "acme");
        descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 1, Unit = Envoy.Type.V3.RateLimitUnit.Hour };

        var first = await CallAsync(service, Request(descriptor));
        var second = await CallAsync(service, Request(descriptor));

        Assert.Equal(Unit.Hour, first.Statuses[0].CurrentLimit.Unit);
        Assert.Equal(Code.Ok, first.OverallCode);
        Assert.Equal(Code.OverLimit, second.OverallCode);
    }

    [Fact]
    public async Task LimitOverrides_WithDistinctValues_ShareOneSeriesPerKeySet()
    {
        var service = Service();
        for (var i = 0; i < 50; i++)
        {
            var descriptor = D("tenant", "globex", "client", "key-" + i);
            descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 100, Unit = Envoy.Type.V3.RateLimitUnit.Minute };
            await CallAsync(service, Request(descriptor));
        }

        var series = Series(await service.ScrapeAsync(Ct), "legate_ratelimit_total_hits_total{");
        Assert.Equal(["legate_ratelimit_total_hits_total{domain=\"edge\",rule=\"edge.tenant.client\"} 50"], series);
    }

    [Fact]
    public async Task LimitOverrides_WithEndlessKeySets_MakeABoundedNumberOfSeries()
    {
        var service = Service();
        const int Extra = 40;
        for (var i = 0; i < RateLimitMetrics.MaxOverrideRules + Extra; i++)
        {
            var descriptor = D("junk-" + i, "v");
            descriptor.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 100, Unit = Envoy.Type.V3.RateLimitUnit.Minute };
            await CallAsync(service, Request(descriptor));
        }

        var series = Series(await service.ScrapeAsync(Ct), "legate_ratelimit_total_hits_total{");
        Assert.Equal(RateLimitMetrics.MaxOverrideRules + 1, series.Count);
        Assert.Contains($"legate_ratelimit_total_hits_total{{domain=\"edge\",rule=\"edge.(other)\"}} {Extra}", series);
    }

    [Fact]
    public async Task UnknownDomains_MakeABoundedNumberOfSeries_AndAThrottledLogLine()
    {
        var logs = new FakeLogCollector();
        var service = Service(configure: services => services.AddLogging(logging => logging.AddProvider(new FakeLoggerProvider(logs))));
        const int Calls = 100;
        for (var i = 0; i < Calls; i++)
            await CallAsync(service, new RateLimitRequest { Domain = "junk-" + i, Descriptors = { D("tenant", "acme") } });

        var series = Series(await service.ScrapeAsync(Ct), "legate_ratelimit_domain_not_found_total{");
        Assert.Equal(RateLimitMetrics.MaxUnknownDomains + 1, series.Count);
        Assert.Contains("legate_ratelimit_domain_not_found_total{domain=\"junk-0\"} 1", series);
        Assert.Contains($"legate_ratelimit_domain_not_found_total{{domain=\"(other)\"}} {Calls - RateLimitMetrics.MaxUnknownDomains}", series);
        var line = Assert.Single(logs.GetSnapshot(), r => r.Id.Name == "RateLimitDomainNotFound");
        Assert.Contains("'junk-0'", line.Message, StringComparison.Ordinal);

        _time.Advance(TimeSpan.FromSeconds(10));
        await CallAsync(service, new RateLimitRequest { Domain = "junk-last", Descriptors = { D("tenant", "acme") } });
        var lines = logs.GetSnapshot().Where(r => r.Id.Name == "RateLimitDomainNotFound").ToList();
        Assert.Equal(2, lines.Count);
        Assert.Contains($"{Calls} call(s)", lines[1].Message, StringComparison.Ordinal); // 99 throttled and this one
        Assert.Contains("'junk-last'", lines[1].Message, StringComparison.Ordinal);
    }

    private static List<string> Series(string scrape, string prefix) =>
        [.. scrape.Split('\n').Where(line => line.StartsWith(prefix, StringComparison.Ordinal))];

    [Fact]
    public async Task ZeroRequestsPerUnit_BlocksEverything()
    {
        var service = Service();

        var response = await CallAsync(service, Request(D("blocked", "10.0.0.1")));

        Assert.Equal(Code.OverLimit, response.OverallCode);
    }

    [Fact]
    public async Task ZeroRequestsPerUnit_IsAnsweredWithoutTheStore_ButCountedInMetrics()
    {
        var store = new CountingStore(new MemoryCounterStore(_time));
        var service = Service(configure: services => services.AddSingleton<ICounterStore>(store));

        var codes = new List<Code>();
        for (var i = 0; i < 3; i++)
            codes.Add((await CallAsync(service, Request(D("blocked", "10.0.0.1")))).OverallCode);
        var withOther = await CallAsync(service, Request(D("blocked", "10.0.0.1"), D("tenant", "acme")));

        Assert.Equal([Code.OverLimit, Code.OverLimit, Code.OverLimit], codes);
        Assert.Equal([Code.OverLimit, Code.Ok], withOther.Statuses.Select(s => s.Code));
        Assert.Equal(0u, withOther.Statuses[0].LimitRemaining);
        Assert.Equal(1, store.Updates); // only the tenant descriptor's counter
        Assert.Contains("legate_ratelimit_over_limit_total{domain=\"edge\",rule=\"edge.blocked\"} 4", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ShadowModeRule_AnswersOkButCountsWhatWouldHaveBeenLimited()
    {
        var service = Service();

        await CallAsync(service, Request(D("shadow", "a")));
        var second = await CallAsync(service, Request(D("shadow", "a")));

        Assert.Equal(Code.Ok, second.OverallCode);
        Assert.Equal(Code.Ok, second.Statuses[0].Code);
        Assert.Contains("legate_ratelimit_shadow_mode_total{domain=\"edge\",rule=\"edge.shadow\"} 1", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GlobalShadowMode_AnswersOkOverallButTellsPerDescriptor()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:ShadowMode"] = "true" });

        await CallAsync(service, Request(D("blocked", "x")));
        var response = await CallAsync(service, Request(D("blocked", "x")));
        await CallAsync(service, Request(D("tenant", "acme")));

        Assert.Equal(Code.Ok, response.OverallCode);
        Assert.Equal(Code.OverLimit, response.Statuses[0].Code);
        // Counted per call it let through, as the reference's global_shadow_mode stat; the call within its limit is not.
        Assert.Contains("legate_ratelimit_global_shadow_mode_total 2", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task QuotaMode_LimitsOnlyWhenEveryQuotaIsExhausted()
    {
        var service = Service();
        await CallAsync(service, Request(D("quota", "a")));

        var oneOver = await CallAsync(service, Request(D("quota", "a"), D("quota", "b")));
        var bothOver = await CallAsync(service, Request(D("quota", "a"), D("quota", "b")));

        Assert.Equal(Code.Ok, oneOver.OverallCode);
        Assert.Equal(Code.OverLimit, oneOver.Statuses[0].Code);
        Assert.Equal(Code.OverLimit, bothOver.OverallCode);
    }

    [Fact]
    public async Task Replaces_DropsTheNamedRuleForThatRequest()
    {
        var service = Service();
        await CallAsync(service, Request(D("plan", "free")));

        var alone = await CallAsync(service, Request(D("plan", "free")));
        var replaced = await CallAsync(service, Request(D("plan", "free"), D("plan", "gold")));

        Assert.Equal(Code.OverLimit, alone.OverallCode);
        Assert.Equal(Code.Ok, replaced.OverallCode);
        Assert.Null(replaced.Statuses[0].CurrentLimit);
    }

    [Fact]
    public async Task RejectedHits_DoNotCountWhenConfiguredSo()
    {
        var counting = Service();
        var notCounting = Service(new Dictionary<string, string?> { ["Legate:RateLimit:CountRejectedHits"] = "false" });
        var request = Request(D("tenant", "globex", "client", "c1"));
        var peek = D("tenant", "globex", "client", "c1");
        peek.HitsAddend = 0;

        for (var i = 0; i < 5; i++)
        {
            await CallAsync(counting, request);
            await CallAsync(notCounting, request);
        }

        Assert.Equal(Code.OverLimit, (await CallAsync(counting, Request(peek))).Statuses[0].Code);
        Assert.Equal(Code.Ok, (await CallAsync(notCounting, Request(peek))).Statuses[0].Code);
    }

    [Fact]
    public async Task RejectedHits_NotCounting_AShadowModeQuotaDescriptorOverItsLimit_StopsNoAdmittedRequestFromCounting()
    {
        // watch: quota and shadow mode, 1 a minute; tenant: 5. A shadow-mode descriptor answers OK, so watch over its
        // limit rejects nothing: the requests it lets through count on tenant, which refuses the sixth.
        const string rules = """
            domain: edge
            descriptors:
              - key: watch
                quota_mode: true
                shadow_mode: true
                rate_limit: { unit: minute, requests_per_unit: 1 }
              - key: tenant
                rate_limit: { unit: minute, requests_per_unit: 5 }
            """;
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:CountRejectedHits"] = "false" }, rules);
        var codes = new List<Code>();
        for (var i = 0; i < 7; i++)
            codes.Add((await CallAsync(service, Request(D("watch", "w"), D("tenant", "t")))).OverallCode);

        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.Ok, Code.Ok, Code.OverLimit, Code.OverLimit], codes);
    }

    [Fact]
    public async Task RejectedHits_NotCounting_ARequestWithOneCounter_TakesOneStoreUpdate_AndTheOverLimitCacheAnswersIt()
    {
        // tenant: 5 a minute. With one counter its conditional add alone decides: five admitted calls reach the store
        // once each, the sixth is refused there and remembered, and the cache answers the three after it.
        var store = new CountingStore(new MemoryCounterStore(_time));
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:CountRejectedHits"] = "false" },
            configure: services => services.AddSingleton<ICounterStore>(new OverLimitCachingStore(store, _time)));
        var codes = new List<Code>();
        for (var i = 0; i < 9; i++)
            codes.Add((await CallAsync(service, Request(D("tenant", "globex")))).OverallCode);

        Assert.Equal([.. Enumerable.Repeat(Code.Ok, 5), .. Enumerable.Repeat(Code.OverLimit, 4)], codes);
        Assert.Equal(6, store.Updates);
    }

    [Fact]
    public async Task RejectedHits_NotCounting_ALoneCounterBesideABlockedDescriptor_CountsNothing()
    {
        // blocked (a limit of 0) rejects every request that names it: tenant, the one counter sent, must not count them.
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:CountRejectedHits"] = "false" });
        for (var i = 0; i < 3; i++)
            Assert.Equal(Code.OverLimit, (await CallAsync(service, Request(D("tenant", "globex"), D("blocked", "x")))).OverallCode);

        Assert.Equal(4u, (await CallAsync(service, Request(D("tenant", "globex")))).Statuses[0].LimitRemaining);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RejectedHits_NotCounting_TheReadingAndCountingPassesShareTheCallsDeadline(bool storeBoundsItself)
    {
        // 50 ms for the call; each store call takes 30: the reading pass fits, the counting pass would end at 60 ms.
        var store = new SlowStore(new MemoryCounterStore(_time), _time, TimeSpan.FromMilliseconds(30), storeBoundsItself ? TimeSpan.FromMilliseconds(50) : null);
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:CountRejectedHits"] = "false", ["Legate:RateLimit:StoreTimeout"] = "00:00:00.050" },
            configure: services => services.AddSingleton<ICounterStore>(store));
        var client = new RateLimitClient(service.Channel);

        var call = client.ShouldRateLimitAsync(Request(D("tenant", "acme"), D("tenant", "globex")), cancellationToken: Ct).ResponseAsync;
        var error = await FailsAfterTheDeadlineAsync(call);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("legate_ratelimit_store_errors_total{kind=\"timeout\"} 1", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlidingWindow_WeighsThePreviousWindow()
    {
        var service = Service();
        var request = Request(D("sliding", "s1"));
        for (var i = 0; i < 10; i++)
            await CallAsync(service, request);

        // A quarter into the next minute, three quarters of the previous 10 hits still count: 7 + 1 ≤ 10 ...
        _time.Advance(TimeSpan.FromSeconds(75));
        var codes = new List<Code>();
        for (var i = 0; i < 4; i++)
            codes.Add((await CallAsync(service, request)).OverallCode);

        // ... three more fit, the fourth does not.
        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.OverLimit], codes);
    }

    [Fact]
    public async Task ResponseHeaders_ReportTheTightestDescriptor()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:ResponseHeaders"] = "true" });
        _time.Advance(TimeSpan.FromSeconds(2));

        var response = await CallAsync(service, Request(D("tenant", "acme"), D("tenant", "globex")));

        var headers = response.ResponseHeadersToAdd.ToDictionary(h => h.Key, h => h.Value);
        Assert.Equal("5", headers["RateLimit-Limit"]);
        Assert.Equal("4", headers["RateLimit-Remaining"]);
        Assert.Equal("58", headers["RateLimit-Reset"]);
    }

    [Fact]
    public async Task DynamicMetadata_DescribesTheCallAndCarriesRuleMetadata()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:ResponseDynamicMetadata"] = "true" });

        var response = await CallAsync(service, Request(D("tagged", "x"), D("tenant", "acme")));

        var fields = response.DynamicMetadata.Fields;
        Assert.Equal("edge", fields["domain"].StringValue);
        Assert.Equal("tagged=x", fields["descriptors"].ListValue.Values[0].StructValue.Fields["entries"].ListValue.Values[0].StringValue);
        Assert.Equal("payments", fields["metadata"].StructValue.Fields["team"].StringValue);
        Assert.Equal(2, fields["metadata"].StructValue.Fields["tier"].NumberValue);
    }

    private const string MetadataRules = """
        domain: edge
        descriptors:
          - key: hot
            metadata: { team: search, pool: hot, route: { fallback: b } }
            rate_limit: { unit: second, requests_per_unit: 1 }
          - key: tagged
            metadata: { team: payments, route: { primary: a } }
            rate_limit: { unit: second, requests_per_unit: 5 }
          - key: free
            metadata: { free: granted }
            rate_limit: { unlimited: true }
          - key: shadowed
            shadow_mode: true
            metadata: { shadow: seen }
            rate_limit: { unit: second, requests_per_unit: 0 }
        """;

    [Fact]
    public async Task DynamicMetadata_MergesOnlyTheRulesOfDescriptorsThatPassed()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:ResponseDynamicMetadata"] = "true" }, MetadataRules);

        var bothPass = (await CallAsync(service, Request(D("hot", "x"), D("tagged", "x")))).DynamicMetadata.Fields["metadata"].StructValue.Fields;
        var hotOver = await CallAsync(service, Request(D("hot", "x"), D("tagged", "x")));

        // Both passed: the first descriptor's value wins, and maps merge key by key.
        Assert.Equal("search", bothPass["team"].StringValue);
        Assert.Equal("hot", bothPass["pool"].StringValue);
        Assert.Equal(["fallback", "primary"], bothPass["route"].StructValue.Fields.Keys.Order());
        // The hot rule is over its limit now: only the passing rule's metadata.
        Assert.Equal([Code.OverLimit, Code.Ok], hotOver.Statuses.Select(s => s.Code));
        var merged = hotOver.DynamicMetadata.Fields["metadata"].StructValue.Fields;
        Assert.Equal("payments", merged["team"].StringValue);
        Assert.False(merged.ContainsKey("pool"));
        Assert.Equal(["primary"], merged["route"].StructValue.Fields.Keys);
    }

    [Fact]
    public async Task DynamicMetadata_LeavesOutUnlimitedRules_AndKeepsAShadowedRuleThatWouldBeOver()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:ResponseDynamicMetadata"] = "true" }, MetadataRules);

        var response = await CallAsync(service, Request(D("free", "x"), D("shadowed", "x")));

        var merged = response.DynamicMetadata.Fields["metadata"].StructValue.Fields;
        Assert.Equal(["shadow"], merged.Keys);
        Assert.Equal("seen", merged["shadow"].StringValue);
    }

    [Fact]
    public async Task DynamicMetadata_DescribesEachDescriptorsOverrideAndHitsAddend_AsTheReference()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:ResponseDynamicMetadata"] = "true" }, MetadataRules);
        var withOverride = D("tagged", "x");
        withOverride.Limit = new RateLimitDescriptor.Types.RateLimitOverride { RequestsPerUnit = 3, Unit = Envoy.Type.V3.RateLimitUnit.Hour };
        withOverride.HitsAddend = 2;
        var request = Request(withOverride, D("hot", "y"));
        request.HitsAddend = 4;

        var fields = (await CallAsync(service, request)).DynamicMetadata.Fields;

        var described = fields["descriptors"].ListValue.Values.Select(v => v.StructValue.Fields).ToList();
        Assert.Equal("requests_per_unit:3 unit:HOUR", described[0]["limit"].StringValue);
        Assert.Equal(2, described[0]["hitsAddend"].NumberValue);
        Assert.Equal(["entries"], described[1].Keys);
        Assert.Equal(4, fields["hitsAddend"].NumberValue);
        // An override is no rule: no rule metadata; the hot rule is over (4 hits against 1).
        Assert.Equal(["descriptors", "domain", "hitsAddend"], fields.Keys.Order());
    }

    [Fact]
    public async Task Metrics_CountHitsPerRule()
    {
        var service = Service();
        for (var i = 0; i < 6; i++)
            await CallAsync(service, Request(D("tenant", "globex")));

        var scrape = await service.ScrapeAsync(Ct);

        Assert.Contains("legate_ratelimit_total_hits_total{domain=\"edge\",rule=\"edge.tenant\"} 6", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_over_limit_total{domain=\"edge\",rule=\"edge.tenant\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_within_limit_total{domain=\"edge\",rule=\"edge.tenant\"} 5", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_near_limit_total{domain=\"edge\",rule=\"edge.tenant\"} 1", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_ACallCrossingTheLimit_SplitsItsHitsAsTheReference()
    {
        // Limit 5, near threshold floor(5 × 0.8) = 4: 8 hits on a fresh counter are 3 over, 1 near and none within.
        var service = Service();
        var request = Request(D("tenant", "hooli"));
        request.HitsAddend = 8;

        Assert.Equal(Code.OverLimit, (await CallAsync(service, request)).OverallCode);

        var scrape = await service.ScrapeAsync(Ct);
        Assert.Contains("legate_ratelimit_total_hits_total{domain=\"edge\",rule=\"edge.tenant\"} 8", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_over_limit_total{domain=\"edge\",rule=\"edge.tenant\"} 3", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_near_limit_total{domain=\"edge\",rule=\"edge.tenant\"} 1", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_within_limit_total{domain=\"edge\",rule=\"edge.tenant\"} 0", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_HitsTheLocalOverLimitCacheAnswered_CountAlsoAsOverLimitWithLocalCache()
    {
        // tenant: 5 a minute. The sixth call goes to the store and is over; from then on the cache answers.
        var service = Service(configure: services => services.AddSingleton<ICounterStore>(new OverLimitCachingStore(new MemoryCounterStore(_time), _time)));
        for (var i = 0; i < 8; i++)
            await CallAsync(service, Request(D("tenant", "globex")));

        var scrape = await service.ScrapeAsync(Ct);
        Assert.Contains("legate_ratelimit_over_limit_total{domain=\"edge\",rule=\"edge.tenant\"} 3", scrape, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_over_limit_with_local_cache_total{domain=\"edge\",rule=\"edge.tenant\"} 2", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SlowStore_AnswersUnavailableWithinTheDeadline()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:StoreTimeout"] = "00:00:00.050" },
            configure: services => services.AddSingleton<ICounterStore>(new HangingStore()));
        var client = new RateLimitClient(service.Channel);

        var call = client.ShouldRateLimitAsync(Request(D("tenant", "acme")), cancellationToken: Ct).ResponseAsync;
        var error = await FailsAfterTheDeadlineAsync(call);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
    }

    [Fact]
    public async Task StoreThatTimesOutOnItsOwn_AnswersUnavailable_CountedAsTimeout()
    {
        var service = Service(configure: services => services.AddSingleton<ICounterStore>(new SelfTimingStore(TimeSpan.FromMilliseconds(5))));
        var client = new RateLimitClient(service.Channel);

        var error = await Assert.ThrowsAsync<RpcException>(() => client.ShouldRateLimitAsync(Request(D("tenant", "acme")), cancellationToken: Ct).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("legate_ratelimit_store_errors_total{kind=\"timeout\"} 1", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreFailures_AreLoggedAtMostOncePerTenSeconds_EachLineWithTheCallsFailedSinceTheLast()
    {
        var logs = new FakeLogCollector();
        var service = Service(configure: services =>
        {
            services.AddSingleton<ICounterStore>(new UnreachableStore());
            services.AddLogging(logging => logging.AddProvider(new FakeLoggerProvider(logs)));
        });
        var client = new RateLimitClient(service.Channel);
        async Task FailAsync(int calls)
        {
            for (var i = 0; i < calls; i++)
            {
                var error = await Assert.ThrowsAsync<RpcException>(() => client.ShouldRateLimitAsync(Request(D("tenant", "acme")), cancellationToken: Ct).ResponseAsync);
                Assert.Equal(StatusCode.Unavailable, error.StatusCode);
            }
        }
        List<FakeLogRecord> Lines() => [.. logs.GetSnapshot().Where(r => r.Id.Name == "RateLimitStoreFailing")];

        await ThrottledLogAssert.OncePerTenSecondsAsync(FailAsync, _time.Advance, () => [.. Lines().Select(r => r.Message)], n => $"failed {n} call(s)");
        var first = Lines()[0];
        Assert.Equal(LogLevel.Warning, first.Level);
        Assert.Contains("Redis is unreachable (UnableToConnect).", first.Message, StringComparison.Ordinal);
        Assert.Contains("legate_ratelimit_store_errors_total{kind=\"unavailable\"} 61", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreWhoseOwnBoundIsLongerThanTheDeadline_IsStillCutOffAtTheDeadline()
    {
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:StoreTimeout"] = "00:00:00.050" },
            configure: services => services.AddSingleton<ICounterStore>(new HangingStore(TimeSpan.FromHours(1))));
        var client = new RateLimitClient(service.Channel);

        var call = client.ShouldRateLimitAsync(Request(D("tenant", "acme")), cancellationToken: Ct).ResponseAsync;
        var error = await FailsAfterTheDeadlineAsync(call);

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("legate_ratelimit_store_errors_total{kind=\"timeout\"} 1", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreAnsweringAfterTheDeadline_DoesNotCorruptLaterCalls()
    {
        var store = new LateStore(new MemoryCounterStore(_time));
        var service = Service(new Dictionary<string, string?> { ["Legate:RateLimit:StoreTimeout"] = "00:00:00.050" },
            configure: services => services.AddSingleton<ICounterStore>(store));
        var limiter = service.Services.GetRequiredService<RateLimiter>();

        var first = limiter.ShouldRateLimitAsync(Request(D("tenant", "acme")), Ct).AsTask();
        var error = await FailsAfterTheDeadlineAsync(first);
        // Later calls on many threads (the abandoned call's arrays sit with whichever thread timed it out); the first
        // call's store writes its huge count late, during each of them.
        var later = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            var answers = new List<RateLimitResponse>();
            for (var i = 0; i < 10; i++)
                answers.Add(await limiter.ShouldRateLimitAsync(Request(D("tenant", "acme")), Ct));
            return answers;
        }, Ct)));
        var all = later.SelectMany(a => a).ToList();

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.True(store.LateWrites > 0);
        Assert.All(all, r => Assert.Equal(Code.Ok, r.OverallCode));
        Assert.Equal(Enumerable.Range(20, 80).Select(n => (uint)n), all.Select(r => r.Statuses[0].LimitRemaining).Order());
    }

    [Fact]
    public async Task JsonEndpoint_Answers200Or429LikeTheReference()
    {
        var service = Service();
        using var http = service.CreateClient();
        const string Body = """{"domain":"edge","descriptors":[{"entries":[{"key":"blocked","value":"x"}]}]}""";
        const string Allowed = """{"domain":"edge","descriptors":[{"entries":[{"key":"tenant","value":"acme"}]}]}""";

        using var over = await http.PostAsync(new Uri("/json", UriKind.Relative), new StringContent(Body, Encoding.UTF8, "application/json"), Ct);
        using var ok = await http.PostAsync(new Uri("/json", UriKind.Relative), new StringContent(Allowed, Encoding.UTF8, "application/json"), Ct);
        using var bad = await http.PostAsync(new Uri("/json", UriKind.Relative), new StringContent("{\"domain\":", Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
        Assert.Contains("OVER_LIMIT", await over.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }

    [Fact]
    public async Task ConfigDump_ShowsTheLoadedRules()
    {
        var service = Service();
        using var http = service.CreateClient();

        var dump = await http.GetStringAsync(new Uri("/rlconfig", UriKind.Relative), Ct);

        Assert.Contains("edge.tenant_acme: unit=MINUTE requests_per_unit=100", dump, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reload_AppliesNewLimitsAndKeepsTheLastGoodOnesOnABadFile()
    {
        var service = Service();
        var rules = service.Services.GetRequiredService<Legate.Hosting.Rules.RulesProvider<Legate.RateLimit.Config.RateLimitConfig>>();
        var file = Path.Combine(_dir, "edge.yaml");

        File.WriteAllText(file, Rules.Replace("requests_per_unit: 100, name: acme-tenant", "requests_per_unit: 7, name: acme-tenant", StringComparison.Ordinal));
        var reloaded = rules.Reload();
        var afterGood = await CallAsync(service, Request(D("tenant", "acme")));
        File.WriteAllText(file, "domain: edge\ndescriptors:\n  - key: tenant\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n");
        var rejected = rules.Reload();
        var afterBad = await CallAsync(service, Request(D("tenant", "acme")));

        Assert.True(reloaded);
        Assert.Equal(7u, afterGood.Statuses[0].CurrentLimit.RequestsPerUnit);
        Assert.False(rejected);
        Assert.Equal(7u, afterBad.Statuses[0].CurrentLimit.RequestsPerUnit);
        Assert.Contains("legate_rules_reloads_total{rules=\"ratelimit\",result=\"failure\"} 1", await service.ScrapeAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SampleConfig_GivesTenantsTheirQuotas()
    {
        var sample = File.ReadAllText(Path.Combine(RepoPaths.Root, "ratelimit", "rules", "edge.yaml"));
        var service = Service(rules: sample);

        var acme = await CallAsync(service, Request(D("tenant", "acme"), D("tenant", "acme", "client", "key-1")));
        var other = await CallAsync(service, Request(D("tenant", "initech"), D("tenant", "initech", "client", "key-2")));

        Assert.Equal([6000u, 100u], acme.Statuses.Select(s => s.CurrentLimit.RequestsPerUnit));
        Assert.Equal([600u, 20u], other.Statuses.Select(s => s.CurrentLimit.RequestsPerUnit));
    }

    public void Dispose()
    {
        foreach (var service in _services)
            service.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private sealed class CountingStore(ICounterStore inner) : ICounterStore
    {
        private int _updates;

        public int Updates => _updates;

        public string Name => inner.Name;

        public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            Interlocked.Add(ref _updates, updates.Length);
            return inner.UpdateAsync(updates, results, cancellationToken);
        }
    }

    /// <summary>Answers through <paramref name="inner"/> after <paramref name="delay"/> on <paramref name="time"/>; claims <paramref name="deadline"/> as its own bound.</summary>
    private sealed class SlowStore(ICounterStore inner, TimeProvider time, TimeSpan delay, TimeSpan? deadline) : ICounterStore
    {
        public string Name => "slow";

        public TimeSpan? Deadline => deadline;

        public async ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            await Task.Delay(delay, time, cancellationToken);
            await inner.UpdateAsync(updates, results, cancellationToken);
        }
    }

    /// <summary>
    /// Never answers its first update; on every later one, after answering it, writes an over-limit count into the
    /// first one's result slots, as a store answering after the caller's deadline would.
    /// </summary>
    private sealed class LateStore(ICounterStore inner) : ICounterStore
    {
        private Memory<CounterResult> _abandoned;
        private int _calls;

        private int _lateWrites;

        public int LateWrites => Volatile.Read(ref _lateWrites);

        public string Name => "late";

        public async ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _calls) == 1)
            {
                _abandoned = results;
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            await inner.UpdateAsync(updates, results, cancellationToken);
            _abandoned.Span.Fill(new CounterResult(ulong.MaxValue, 0, true));
            Interlocked.Increment(ref _lateWrites);
        }
    }

    /// <summary>Bounds its own calls (as the Redis store does) and fails each one as timed out, after a hop.</summary>
    private sealed class SelfTimingStore(TimeSpan deadline) : ICounterStore
    {
        public string Name => "self-timing";

        public TimeSpan? Deadline => deadline;

        public async ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
        {
            await Task.Yield();
            throw new CounterStoreException("the store gave up") { TimedOut = true };
        }
    }

    /// <summary>Fails every call at once, as the Redis store does while the multiplexer has no connection.</summary>
    private sealed class UnreachableStore : ICounterStore
    {
        public string Name => "redis";

        public TimeSpan? Deadline => null;

        public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken) =>
            throw new CounterStoreException("Redis is unreachable (UnableToConnect).");
    }

    private sealed class HangingStore(TimeSpan? deadline = null) : ICounterStore
    {
        public string Name => "hanging";

        public TimeSpan? Deadline => deadline;

        public async ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken) =>
            await Task.Delay(Timeout.Infinite, cancellationToken);
    }
}
