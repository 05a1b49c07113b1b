using Envoy.Config.Core.V3;
using Envoy.Service.Ratelimit.V3;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Legate.Hosting;
using Legate.Hosting.Rules;
using Legate.RateLimit.Config;
using Legate.RateLimit.Stores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Legate.RateLimit;

/// <summary>
/// Decides a <c>ShouldRateLimit</c> call as envoyproxy/ratelimit does: each descriptor is matched against the rules,
/// counted in its window, and answered with its own status; the overall answer is OVER_LIMIT when any counted
/// descriptor is over (quota-mode descriptors only when all of them are). Descriptors without a limit never reach
/// the store, and a call whose descriptors all lack one completes without any await.
/// </summary>
public sealed partial class RateLimiter
{
    // Window unit codes in counter keys, by LimitUnit: s, m, h, d, M(onth), y, w.
    private static readonly string[] UnitCodes = ["?", "s", "m", "h", "d", "M", "y", "w"];

    private static readonly RlsStatus NoLimit = new(Code.Ok);
    private static readonly RlsStatus Unlimited = new(Code.Ok, LimitRemaining: uint.MaxValue);

    // UpdateIndex of a descriptor answered without the store (see the update loop).
    private const int Blocked = -1;

    /// <summary>
    /// The most hits one descriptor counts in one call: 2^32, one more than the highest limit (requests_per_unit and a
    /// request's limit override are uint32). A descriptor's hits_addend is a uint64 that a route may take from a header;
    /// unbounded, one call could drive a counter to 2^63, where Redis refuses every later INCRBY. More than 2^32 hits
    /// are over any limit on their own, so the cap changes no fixed-window decision; in a sliding window such a call
    /// weighs into the next window as 2^32 hits (over any limit L while the weight is above L / 2^32).
    /// </summary>
    public const ulong MaxHitsPerDescriptor = 1UL << 32;

    private readonly RulesProvider<RateLimitConfig> _rules;
    private readonly ICounterStore _store;
    private readonly TimeProvider _time;
    private readonly RateLimitOptions _options;
    private readonly RateLimitMetrics _metrics;
    private readonly ILogger _logger;

    // Store failures are logged at most once per interval, each line with how many calls failed since the one before:
    // during an outage every call fails, and a line per call would be thousands a second (the metrics count them all).
    private readonly EventThrottle _failures;

    // Calls for an unknown domain go unlimited, so they are worth a line; throttled like the failures, since a
    // misconfigured Envoy sends one on every call. The metric keeps few domain names (see RateLimitMetrics), the log the latest.
    private readonly EventThrottle _unknownDomains;

    public RateLimiter(RulesProvider<RateLimitConfig> rules, ICounterStore store, TimeProvider time, IOptions<RateLimitOptions> options, RateLimitMetrics metrics, ILogger<RateLimiter>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _rules = rules;
        _store = store;
        _time = time;
        _options = options.Value;
        _metrics = metrics;
        _logger = logger ?? NullLogger<RateLimiter>.Instance;
        _failures = new EventThrottle(time);
        _unknownDomains = new EventThrottle(time);
    }

    /// <summary>The counter store in use.</summary>
    public ICounterStore Store => _store;

    /// <summary>Decides one call given and answered as generated messages (the JSON endpoint): see <see cref="ShouldRateLimitAsync(RlsRequest, CancellationToken)"/>.</summary>
    public async ValueTask<RateLimitResponse> ShouldRateLimitAsync(RateLimitRequest request, CancellationToken cancellationToken) =>
        (await ShouldRateLimitAsync(RlsRequest.From(request), cancellationToken)).ToProto();

    /// <summary>Decides one call. Throws <see cref="RpcException"/>: INVALID_ARGUMENT for a malformed request, UNAVAILABLE when the store cannot answer in time.</summary>
    public ValueTask<RlsResponse> ShouldRateLimitAsync(RlsRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Domain.Length == 0)
            throw Invalid("rate limit domain must not be empty");
        var descriptors = request.Descriptors;
        if (descriptors.Length == 0)
            throw Invalid("rate limit descriptor list must not be empty");

        var config = _rules.Current;
        if (!config.HasDomain(request.Domain))
        {
            _metrics.DomainNotFound(request.Domain);
            if (_unknownDomains.TryReport(out var calls))
                LogDomainNotFound(_logger, calls, _unknownDomains.Interval.TotalSeconds, Truncate(request.Domain, 128));
            return new ValueTask<RlsResponse>(AllWithoutLimit(descriptors.Length));
        }

        var call = Call.Rent(descriptors.Length);
        var requestHits = Math.Max(1u, request.HitsAddend);
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        for (var i = 0; i < descriptors.Length; i++)
        {
            ref readonly var descriptor = ref descriptors[i];
            DescriptorMatch? match;
            try
            {
                match = config.Match(request.Domain, descriptor);
            }
            catch (ArgumentException e)
            {
                call.Return();
                throw Invalid($"descriptor {i}: {e.Message}");
            }
            call.Matches[i] = match;
            call.Hits[i] = Math.Min(descriptor.HitsAddend ?? requestHits, MaxHitsPerDescriptor);
        }
        if (config.HasReplaces)
            ApplyReplaces(call.Matches.AsSpan(0, descriptors.Length));

        var updates = 0;
        for (var i = 0; i < descriptors.Length; i++)
        {
            if (call.Matches[i] is not { } match || match.Policy.Unlimited)
                continue;
            if (match.Policy.RequestsPerUnit == 0 && call.Hits[i] > 0)
            {
                // A limit of 0 refuses every hit whatever the counter holds: a blocked client costs no store call.
                call.UpdateIndex[i] = Blocked;
                continue;
            }
            call.UpdateIndex[i] = updates;
            call.Updates[updates++] = BuildUpdate(request.Domain, descriptors[i], match, call.Hits[i], nowMs);
        }
        if (updates == 0)
            return new ValueTask<RlsResponse>(Respond(request, call, nowMs, updates));

        // With CountRejectedHits off, a first pass only reads the request's counters; see RejectedByCheck.
        var checking = !_options.CountRejectedHits && NeedsReadingPass(call, descriptors.Length, updates);
        // The call's one store deadline runs from its first pass; the default path reads the clock only if it waits.
        var started = 0L;
        if (checking)
        {
            SetHits(call, descriptors.Length, checking: true);
            started = _time.GetTimestamp();
        }
        var pending = StartStore(call, updates, cancellationToken);
        if (!pending.IsCompletedSuccessfully)
            return new ValueTask<RlsResponse>(AwaitStore(pending, request, call, nowMs, updates, checking, checking ? started : _time.GetTimestamp(), cancellationToken));
        pending.GetAwaiter().GetResult();
        if (!checking || RejectedByCheck(call, descriptors.Length, nowMs))
            return new ValueTask<RlsResponse>(Respond(request, call, nowMs, updates));
        SetHits(call, descriptors.Length, checking: false);
        return new ValueTask<RlsResponse>(AwaitStore(StartStore(call, updates, cancellationToken), request, call, nowMs, updates, checking: false, started, cancellationToken));
    }

    private ValueTask StartStore(Call call, int updates, CancellationToken cancellationToken)
    {
        try
        {
            return _store.UpdateAsync(call.Updates.AsMemory(0, updates), call.Results.AsMemory(0, updates), cancellationToken);
        }
        catch (CounterStoreException e)
        {
            call.Return();
            throw StoreFailed(e.TimedOut ? "timeout" : "unavailable", e.Message);
        }
    }

    /// <summary>
    /// Whether CountRejectedHits=false needs its reading pass: only when one counter could take hits while something
    /// else rejects the request. A lone counter, no descriptor blocked by a limit of 0 beside it, needs none: its
    /// conditional add refuses the hits exactly when the reading pass would reject them (the reference, too, reads
    /// only for several keys). Such a call, the most common, then costs one round trip, and the over-limit cache can
    /// answer it (a read, with no hits, never finds a counter held at its limit over it).
    /// </summary>
    private static bool NeedsReadingPass(Call call, int descriptors, int updates)
    {
        if (updates > 1)
            return true;
        for (var i = 0; i < descriptors; i++)
        {
            if (call.Matches[i] is { } match && !match.Policy.Unlimited && call.UpdateIndex[i] == Blocked)
                return true;
        }
        return false;
    }

    /// <summary>
    /// Each update's hits: none for the reading pass (a check-only update returns the counter as it stands), or the
    /// descriptor's own for the counting pass.
    /// </summary>
    private static void SetHits(Call call, int descriptors, bool checking)
    {
        for (var i = 0; i < descriptors; i++)
        {
            if (call.Matches[i] is not { } match || match.Policy.Unlimited || call.UpdateIndex[i] == Blocked)
                continue;
            ref var update = ref call.Updates[call.UpdateIndex[i]];
            update = update with { Hits = checking ? 0 : call.Hits[i] };
        }
    }

    /// <summary>
    /// After the reading pass of CountRejectedHits=false: whether the request would be rejected (a descriptor not in
    /// shadow mode over its limit with this request's hits, or every quota-mode one, none of them in shadow mode), as
    /// envoyproxy/ratelimit's STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT decides before it increments anything. Then
    /// nothing is counted, and the results are set for the answer (see below). Otherwise the counting pass adds the
    /// hits, each still conditional on its own limit. The race this leaves, as in the reference: a counter that fills
    /// between the two passes refuses its hits while the request's other counters take theirs (a strict over-count);
    /// no counter ever admits past its limit, and no count ever goes down (which the over-limit cache and write-behind
    /// rely on). It costs one more store round trip per call that needs it (see NeedsReadingPass), only with the
    /// option off.
    /// </summary>
    private static bool RejectedByCheck(Call call, int descriptors, long nowMs)
    {
        var anyOver = false;
        var quotaTotal = 0;
        var quotaOver = 0;
        for (var i = 0; i < descriptors; i++)
        {
            if (call.Matches[i] is not { } match || match.Policy.Unlimited)
                continue;
            var policy = match.Policy;
            // As Respond decides: a shadow-mode descriptor answers OK, so it rejects nothing, in quota mode too.
            var over = !policy.ShadowMode
                && (call.UpdateIndex[i] == Blocked || After(policy, Projected(call, i), nowMs) > policy.RequestsPerUnit);
            if (policy.QuotaMode)
            {
                quotaTotal++;
                quotaOver += over ? 1 : 0;
            }
            else
            {
                anyOver |= over;
            }
        }
        if (!anyOver && (quotaTotal == 0 || quotaOver < quotaTotal))
            return false;
        // A descriptor over its limit is answered as a refused update (the count with its hits); the others as they
        // stand, since nothing was counted: their remaining is what it truly is.
        for (var i = 0; i < descriptors; i++)
        {
            if (call.Matches[i] is not { } match || match.Policy.Unlimited || call.UpdateIndex[i] == Blocked)
                continue;
            var projected = Projected(call, i);
            if (After(match.Policy, projected, nowMs) > match.Policy.RequestsPerUnit)
                call.Results[call.UpdateIndex[i]] = projected;
            else
                call.Results[call.UpdateIndex[i]] = call.Results[call.UpdateIndex[i]] with { Applied = false };
        }
        return true;
    }

    // The counter read by the reading pass, with the descriptor's hits as a refused update reports them.
    private static CounterResult Projected(Call call, int descriptor)
    {
        var read = call.Results[call.UpdateIndex[descriptor]];
        return read with { Count = CounterMath.Add(read.Count, call.Hits[descriptor]), Applied = false };
    }

    // A Task, not a ValueTask: gRPC wants a Task, and a ValueTask made from this one hands it over without a wrapper.
    private async Task<RlsResponse> AwaitStore(ValueTask pending, RlsRequest request, Call call, long nowMs, int updates, bool checking, long started, CancellationToken cancellationToken)
    {
        var passStarted = started;
        while (true)
        {
            // The call's one deadline: the counting pass of CountRejectedHits=false has what the reading pass left of it.
            var wait = _options.StoreTimeout - _time.GetElapsedTime(started, passStarted);
            try
            {
                // A store that bounds its own calls within our deadline (Redis does) needs no timer per call from us.
                if (_store.Deadline is { } bound && bound <= wait)
                    await pending;
                else
                    await pending.AsTask().WaitAsync(wait, _time, cancellationToken);
            }
            catch (TimeoutException)
            {
                // The store may still write this call's results after the deadline: its arrays must not go back to the pool.
                call.Abandon();
                throw StoreTimedOut();
            }
            catch (CounterStoreException e) when (e.TimedOut)
            {
                call.Abandon(); // as above: a store that gave up may not be done with the call's arrays
                throw StoreFailed("timeout", e.Message);
            }
            catch (CounterStoreException e)
            {
                call.Return();
                throw StoreFailed("unavailable", e.Message);
            }
            catch (OperationCanceledException)
            {
                // Envoy gave up on the call: nothing to answer (and, as on a timeout, the store may not be done with it).
                call.Abandon();
                throw;
            }
            finally
            {
                _metrics.StoreLatency(_time.GetElapsedTime(passStarted));
            }
            // The reading pass of CountRejectedHits=false is followed by the counting pass unless it rejects the request.
            if (!checking || RejectedByCheck(call, request.Descriptors.Length, nowMs))
                return Respond(request, call, nowMs, updates);
            checking = false;
            passStarted = _time.GetTimestamp();
            if (_time.GetElapsedTime(started, passStarted) >= _options.StoreTimeout)
            {
                call.Return(); // nothing counted yet, and the store is done with the arrays
                throw StoreTimedOut();
            }
            SetHits(call, request.Descriptors.Length, checking: false);
            pending = StartStore(call, updates, cancellationToken);
        }
    }

    private RpcException StoreTimedOut() =>
        StoreFailed("timeout", $"the {_store.Name} counter store did not answer within {_options.StoreTimeout.TotalMilliseconds} ms");

    private CounterUpdate BuildUpdate(string domain, in RlsDescriptor descriptor, DescriptorMatch match, ulong hits, long nowMs)
    {
        var policy = match.Policy;
        var unitSeconds = policy.Unit.Seconds();
        var unitMs = unitSeconds * 1000;
        var windowStart = nowMs / unitMs * unitSeconds;
        var remainingMs = unitMs - nowMs % unitMs;
        var unit = UnitCodes[(int)policy.Unit];
        var key = match.CounterEntries is { } shared
            ? CounterKey.Build(_options.KeyPrefix, domain, new ListEntries(shared), unit, windowStart)
            : CounterKey.Build(_options.KeyPrefix, domain, descriptor.Entries, unit, windowStart);
        var onlyIfWithin = !_options.CountRejectedHits;
        if (policy.Algorithm == LimitAlgorithm.SlidingWindow)
        {
            // The previous window still weighs by the share of it inside the sliding window; it must outlive its own window by one more.
            var previousKey = match.CounterEntries is { } sharedPrevious
                ? CounterKey.Build(_options.KeyPrefix, domain, new ListEntries(sharedPrevious), unit, windowStart - unitSeconds)
                : CounterKey.Build(_options.KeyPrefix, domain, descriptor.Entries, unit, windowStart - unitSeconds);
            var weight = (double)remainingMs / unitMs;
            return new CounterUpdate(key, hits, TimeSpan.FromMilliseconds(remainingMs + unitMs + 1000), policy.RequestsPerUnit, onlyIfWithin, previousKey, weight);
        }
        return new CounterUpdate(key, hits, TimeSpan.FromMilliseconds(remainingMs + 1000), policy.RequestsPerUnit, onlyIfWithin);
    }

    private RlsResponse Respond(RlsRequest request, Call call, long nowMs, int updates)
    {
        try
        {
            var count = request.Descriptors.Length;
            var statuses = new RlsStatus[count];
            var anyOver = false;
            var quotaTotal = 0;
            var quotaOver = 0;
            RlsStatus? tightest = null;
            for (var i = 0; i < count; i++)
            {
                RlsStatus status;
                if (call.Matches[i] is not { } match)
                {
                    status = NoLimit;
                }
                else if (match.Policy.Unlimited)
                {
                    status = Unlimited;
                }
                else
                {
                    var result = call.UpdateIndex[i] == Blocked ? new CounterResult(call.Hits[i], 0, Applied: false) : call.Results[call.UpdateIndex[i]];
                    status = Decide(match, call.Hits[i], result, nowMs);
                    var over = status.Code == Code.OverLimit;
                    if (match.Policy.QuotaMode)
                    {
                        quotaTotal++;
                        quotaOver += over ? 1 : 0;
                    }
                    else
                    {
                        anyOver |= over;
                    }
                    if (tightest is not { } t || status.LimitRemaining < t.LimitRemaining)
                        tightest = status;
                }
                statuses[i] = status;
            }
            var overall = anyOver || (quotaTotal > 0 && quotaOver == quotaTotal) ? Code.OverLimit : Code.Ok;
            if (overall == Code.OverLimit && _options.ShadowMode)
            {
                _metrics.GlobalShadowMode();
                overall = Code.Ok;
            }
            return new RlsResponse(
                overall,
                statuses,
                _options.ResponseHeaders && tightest is { } tightestStatus ? Headers(tightestStatus) : null,
                _options.ResponseDynamicMetadata ? Metadata(request, call, statuses) : null);
        }
        finally
        {
            call.Return();
        }
    }

    private RlsStatus Decide(DescriptorMatch match, ulong hits, CounterResult result, long nowMs)
    {
        var policy = match.Policy;
        var limit = (ulong)policy.RequestsPerUnit;
        var after = After(policy, result, nowMs);
        var over = after > limit;
        _metrics.Count(match, hits, after, limit, _options.NearLimitRatio, result.FromLocalCache);

        var unitSeconds = policy.Unit.Seconds();
        return new RlsStatus(
            over && !policy.ShadowMode ? Code.OverLimit : Code.Ok,
            policy,
            over ? 0 : (uint)(limit - after),
            unitSeconds - nowMs / 1000 % unitSeconds);
    }

    // The count a descriptor's hits brought its window to, a sliding window's weighted previous window included.
    private static ulong After(RateLimitPolicy policy, in CounterResult result, long nowMs)
    {
        var after = result.Count;
        if (policy.Algorithm == LimitAlgorithm.SlidingWindow && result.PreviousWindowCount > 0)
        {
            var unitMs = policy.Unit.Seconds() * 1000;
            var weight = (double)(unitMs - nowMs % unitMs) / unitMs;
            after = CounterMath.Add(after, CounterMath.Weighted(result.PreviousWindowCount, weight));
        }
        return after;
    }

    private HeaderValue[] Headers(RlsStatus tightest)
    {
        var remaining = tightest.Code == Code.OverLimit ? 0u : tightest.LimitRemaining;
        return
        [
            new HeaderValue { Key = _options.LimitHeader, Value = tightest.Limit!.RequestsPerUnit.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            new HeaderValue { Key = _options.RemainingHeader, Value = remaining.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            new HeaderValue { Key = _options.ResetHeader, Value = tightest.ResetSeconds!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        ];
    }

    // As envoyproxy/ratelimit's RESPONSE_DYNAMIC_METADATA: the domain, each descriptor's entries (with its limit
    // override and hits_addend when it has them), the request's hits_addend, and the merged metadata of the rules whose
    // descriptors passed. A rule over its limit (a shadow-mode rule answers OK, so it passes) adds nothing, nor do
    // unlimited and replaced rules, which the reference never sends to its cache. Where two rules name the same key
    // the first wins, except that two maps merge key by key, as the reference merges structs.
    private static Struct Metadata(RlsRequest request, Call call, RlsStatus[] statuses)
    {
        var descriptors = new ListValue();
        var merged = new Struct();
        foreach (var descriptor in request.Descriptors)
        {
            var entries = new ListValue();
            foreach (var entry in descriptor.Entries)
                entries.Values.Add(Value.ForString(entry.Key + "=" + entry.Value));
            var item = new Struct { Fields = { ["entries"] = Value.ForList([.. entries.Values]) } };
            if (descriptor.Limit is { } limit)
                item.Fields["limit"] = Value.ForString(OverrideText(limit));
            if (descriptor.HitsAddend is { } hits)
                item.Fields["hitsAddend"] = Value.ForNumber(hits);
            descriptors.Values.Add(Value.ForStruct(item));
        }
        var metadata = new Struct
        {
            Fields =
            {
                ["domain"] = Value.ForString(request.Domain),
                ["descriptors"] = Value.ForList([.. descriptors.Values]),
            },
        };
        if (request.HitsAddend > 0)
            metadata.Fields["hitsAddend"] = Value.ForNumber(request.HitsAddend);
        for (var i = 0; i < request.Descriptors.Length; i++)
        {
            if (call.Matches[i] is not { } match || match.Policy.Unlimited || statuses[i].Code == Code.OverLimit)
                continue;
            Merge(merged, match.Policy.Metadata);
        }
        if (merged.Fields.Count > 0)
            metadata.Fields["metadata"] = Value.ForStruct(merged);
        return metadata;
    }

    // The reference writes the override as Go's protobuf text (requests_per_unit:42 unit:HOUR, zero fields left out;
    // Go varies its spacing from build to build, so no client can rely on more than this shape).
    private static string OverrideText(RlsLimitOverride limit)
    {
        var parts = new List<string>(2);
        if (limit.RequestsPerUnit != 0)
            parts.Add("requests_per_unit:" + limit.RequestsPerUnit.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (limit.Unit != 0)
        {
            var unit = (int)limit.Unit is >= (int)LimitUnit.Second and <= (int)LimitUnit.Week
                ? ((LimitUnit)(int)limit.Unit).ToProtoName()
                : ((int)limit.Unit).ToString(System.Globalization.CultureInfo.InvariantCulture);
            parts.Add("unit:" + unit);
        }
        return string.Join(' ', parts);
    }

    private static void Merge(Struct into, IReadOnlyDictionary<string, object?> from)
    {
        foreach (var (key, value) in from)
        {
            if (!into.Fields.TryGetValue(key, out var existing))
                into.Fields[key] = ToValue(value);
            else if (existing.KindCase == Value.KindOneofCase.StructValue && value is IReadOnlyDictionary<string, object?> map)
                Merge(existing.StructValue, map);
        }
    }

    private static Value ToValue(object? value) => value switch
    {
        null => Value.ForNull(),
        string s => Value.ForString(s),
        bool b => Value.ForBool(b),
        long l => Value.ForNumber(l),
        int n => Value.ForNumber(n),
        double d => Value.ForNumber(d),
        IReadOnlyDictionary<string, object?> map => Value.ForStruct(ToStruct(map)),
        IEnumerable<object?> list => Value.ForList([.. list.Select(ToValue)]),
        _ => Value.ForString(value.ToString() ?? ""),
    };

    private static Struct ToStruct(IReadOnlyDictionary<string, object?> map)
    {
        var result = new Struct();
        foreach (var (key, value) in map)
            result.Fields[key] = ToValue(value);
        return result;
    }

    // A rule named in another matched rule's `replaces` stops applying to this request.
    private static void ApplyReplaces(Span<DescriptorMatch?> matches)
    {
        HashSet<string>? replaced = null;
        foreach (var match in matches)
        {
            if (match is { } m && m.Policy.Replaces.Count > 0)
            {
                replaced ??= new HashSet<string>(StringComparer.Ordinal);
                foreach (var name in m.Policy.Replaces)
                    replaced.Add(name);
            }
        }
        if (replaced is null)
            return;
        for (var i = 0; i < matches.Length; i++)
        {
            if (matches[i] is { } m && m.Policy.Name is { } name && replaced.Contains(name))
                matches[i] = null;
        }
    }

    private static RlsResponse AllWithoutLimit(int count)
    {
        var statuses = new RlsStatus[count];
        Array.Fill(statuses, NoLimit);
        return new RlsResponse(Code.Ok, statuses);
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    /// <summary>Counts a call the store failed, logs it unless a line went out within the interval, and returns the UNAVAILABLE to throw.</summary>
    private RpcException StoreFailed(string kind, string reason)
    {
        _metrics.StoreError(kind);
        if (_failures.TryReport(out var failed))
            LogStoreFailing(_logger, _store.Name, failed, _failures.Interval.TotalSeconds, reason);
        return new RpcException(new Status(StatusCode.Unavailable, reason));
    }

    // The reason is the store's own message, which never names a key (descriptor values may be API keys).
    [LoggerMessage(EventId = 110, EventName = "RateLimitStoreFailing", Level = LogLevel.Warning,
        Message = "The {Store} counter store failed {FailedCalls} call(s) since the last such line (at most one every {IntervalSeconds} s), answered UNAVAILABLE so that Envoy's failure_mode_deny decides; the latest: {Reason}")]
    private static partial void LogStoreFailing(ILogger logger, string store, long failedCalls, double intervalSeconds, string reason);

    [LoggerMessage(EventId = 111, EventName = "RateLimitDomainNotFound", Level = LogLevel.Warning,
        Message = "{Calls} call(s) named a domain no rules define since the last such line (at most one every {IntervalSeconds} s), answered OK without a limit; the latest: '{Domain}'")]
    private static partial void LogDomainNotFound(ILogger logger, long calls, double intervalSeconds, string domain);

    // A caller's string in a log line: bounded, so a junk request cannot make a huge line.
    private static string Truncate(string value, int max) => value.Length <= max ? value : string.Concat(value.AsSpan(0, max), "…");

    /// <summary>
    /// A call's scratch arrays. Each thread keeps the last one it returned, so a call on a warm thread allocates none;
    /// one that may still be written by the store after its caller gave up is abandoned to the GC instead.
    /// </summary>
    private sealed class Call
    {
        [ThreadStatic]
        private static Call? _spare;

        private int _used;
        private int _returned;

        private Call(int capacity)
        {
            Matches = new DescriptorMatch?[capacity];
            Hits = new ulong[capacity];
            UpdateIndex = new int[capacity];
            Updates = new CounterUpdate[capacity];
            Results = new CounterResult[capacity];
        }

        public DescriptorMatch?[] Matches { get; }

        public ulong[] Hits { get; }

        public int[] UpdateIndex { get; }

        public CounterUpdate[] Updates { get; }

        public CounterResult[] Results { get; }

        public static Call Rent(int count)
        {
            var call = _spare;
            if (call is not null && call.Matches.Length >= count)
                _spare = null;
            else
                call = new Call(Math.Max(count, 8));
            call._used = count;
            call._returned = 0;
            return call;
        }

        public void Return()
        {
            if (Interlocked.Exchange(ref _returned, 1) != 0)
                return;
            // Drop the references (rules, keys) so a spare keeps nothing alive; values need no clearing.
            Array.Clear(Matches, 0, _used);
            Array.Clear(Updates, 0, _used);
            if (Matches.Length <= 64)
                _spare = this;
        }

        public void Abandon() => Interlocked.Exchange(ref _returned, 1);
    }

    private readonly struct ListEntries(IReadOnlyList<KeyValuePair<string, string>> entries) : IReadOnlyList<KeyValuePair<string, string>>
    {
        public KeyValuePair<string, string> this[int index] => entries[index];

        public int Count => entries.Count;

        public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => entries.GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
