using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using Google.Protobuf.WellKnownTypes;
using Legate.Authz.ApiKeys;
using Legate.Authz.Jwt;
using Legate.Authz.Wire;
using Legate.Hosting;
using Legate.Hosting.Rules;
using Microsoft.Extensions.Logging;
using GrpcStatusCode = Grpc.Core.StatusCode;
using HttpStatusCode = Envoy.Type.V3.StatusCode;

namespace Legate.Authz.Policies;

/// <summary>
/// The ext_authz decision: tenant (context_extensions "tenant", else the normalised host), policy (context_extensions
/// "policy", else "default"), credentials (API key, JWT, or none), then scopes and methods. Fails closed: every path,
/// exceptions included, answers an explicit non-OK status unless the request is allowed.
/// </summary>
public sealed partial class AuthorizationDecider
{
    private const int MaxHeaderValueLength = 8 * 1024;
    private const string Unknown = "unknown";
    private const string Anonymous = "anonymous";

    private readonly RulesProvider<AuthzPolicySet> _rules;
    private readonly JwtValidator _jwt;
    private readonly AuthzMetrics _metrics;
    private readonly ILogger _logger;
    private readonly FailureThrottle _throttle;
    // A failure inside Check can repeat on every request of one shape: logged with a count, not once each.
    private readonly EventThrottle _internalErrors;
    // Every token of an issuer that writes its plan claim wrongly is refused: logged with a count, not once each.
    private readonly EventThrottle _invalidPlans;

    public AuthorizationDecider(RulesProvider<AuthzPolicySet> rules, JwtValidator jwt, AuthzMetrics metrics, ILogger<AuthorizationDecider> logger,
        TimeProvider time)
    {
        _throttle = new FailureThrottle(time);
        _internalErrors = new EventThrottle(time);
        _invalidPlans = new EventThrottle(time);
        _rules = rules;
        _jwt = jwt;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>Decides a generated request (tests, tools): read through its wire form, as a served request is.</summary>
    public Task<CheckResponse> CheckAsync(CheckRequest? request, CancellationToken cancellationToken)
        => CheckAsync(CheckRequestView.From(request), cancellationToken);

    public async Task<CheckResponse> CheckAsync(CheckRequestView request, CancellationToken cancellationToken)
        => (await DecideAsync(request, cancellationToken).ConfigureAwait(false)).Response;

    /// <summary>The decision for a served request: an answer kept for a repeated caller comes with its encoding.</summary>
    public async Task<CheckAnswer> DecideAsync(CheckRequestView request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        string tenantLabel = Unknown, policyLabel = Unknown;
        try
        {
            var set = _rules.Current;
            if (!request.HasHttp)
                return Deny(tenantLabel, policyLabel, Forbidden("no HTTP request attributes"), "bad_request");
            var extensions = request.ContextExtensions;

            TenantPolicy? tenant;
            if (extensions.TryGetValue("tenant", out var tenantName))
            {
                set.Tenants.TryGetValue(tenantName, out tenant);
            }
            else
            {
                var host = request.Host.Length > 0 ? request.Host : request.Headers.TryGetValue(":authority", out var authority) ? authority : "";
                set.TenantsByHost.TryGetValue(NormalizeHost(host), out tenant);
            }
            if (tenant is null)
                return Deny(tenantLabel, policyLabel, Forbidden("unknown tenant"), "unknown_tenant");
            tenantLabel = tenant.Name;

            var headers = request.Headers;
            var path = request.Path.Length > 0 ? request.Path : headers.GetValueOrDefault(":path");
            // Envoy's per-route policy wins; else the tenant's path rules (on a normalised path, E3); else "default".
            string policyName;
            if (extensions.TryGetValue("policy", out var p))
            {
                policyName = p;
            }
            else if (tenant.Routes.Count > 0)
            {
                if (RequestPath.Normalize(path) is not { } normalised)
                    return Deny(tenantLabel, policyLabel, BadRequest("ambiguous path"), "bad_path");
                policyName = "default";
                foreach (var (prefix, routePolicy) in tenant.Routes)
                {
                    if (RequestPath.IsUnder(normalised, prefix))
                    {
                        policyName = routePolicy;
                        break;
                    }
                }
            }
            else
            {
                policyName = "default";
            }
            if (!set.Policies.TryGetValue(policyName, out var policy))
                return Deny(tenantLabel, policyLabel, Forbidden("unknown policy"), "unknown_policy");
            policyLabel = policy.Name;

            if (policy.ClientCidrs.Count > 0 && !IsAllowedAddress(set.ClientAddress.Find(request, headers), policy.ClientCidrs))
                return Deny(tenantLabel, policyLabel, Forbidden("client address not allowed"), "client_address");
            // The WWW-Authenticate value, built only when a 401 needs it (not on the allow path).
            var challenge = new ChallengeSource(set, tenant, policy);

            // An address that sent too many bad credentials is refused before any lookup or signature check (K10).
            var throttle = set.FailureThrottle;
            var clientAddress = throttle is null ? null : set.ClientAddress.Find(request, headers);
            if (throttle is not null && _throttle.IsBlocked(clientAddress, throttle))
                return Deny(tenantLabel, policyLabel, TooManyFailures(), "throttled");

            // Credentials: look in every place the policy accepts; two kinds at once are refused, never guessed.
            var keys = policy.AllowApiKey && tenant.ApiKeys ? set.ApiKeys : null;
            var keyLocation = keys?.Locator.Locate(headers, path) ?? default;
            var tokenLookup = policy.AllowJwt && tenant.JwtProviders.Count > 0 ? tenant.Tokens.Locate(headers, path) : TokenLookup.Missing;
            var hasKey = keyLocation.Status != ApiKeyLocateStatus.Missing;
            var hasToken = tokenLookup.Status != TokenLookupStatus.Missing;

            Identity identity;
            if (hasKey && hasToken)
                return CredentialFailure(clientAddress, throttle, tenantLabel, policyLabel, Unauthorized(challenge, "more than one credential"), "ambiguous_credentials");
            if (hasKey)
            {
                if (keyLocation.Status != ApiKeyLocateStatus.Found)
                    return CredentialFailure(clientAddress, throttle, tenantLabel, policyLabel, Unauthorized(challenge, "invalid API key"), "invalid_api_key");
                var result = await keys!.Validator.ValidateAsync(keyLocation.Key!, cancellationToken, tenant.Name).ConfigureAwait(false);
                if (!result.Succeeded)
                {
                    return result.Failure switch
                    {
                        ApiKeyFailure.StoreUnavailable => Deny(tenantLabel, policyLabel, Unavailable("API key store unavailable"), "store_unavailable"),
                        ApiKeyFailure.WrongTenant => Deny(tenantLabel, policyLabel, Forbidden("API key not valid for this tenant"), "wrong_tenant"),
                        _ => CredentialFailure(clientAddress, throttle, tenantLabel, policyLabel, Unauthorized(challenge, "invalid API key"), "invalid_api_key"),
                    };
                }
                var record = result.Record!;
                identity = new Identity("api_key", null, record.ClientId, record.Scopes, null, record.Plan ?? tenant.Plan, keyLocation, record);
            }
            else if (hasToken)
            {
                if (tokenLookup.Status != TokenLookupStatus.Found)
                    return CredentialFailure(clientAddress, throttle, tenantLabel, policyLabel, Unauthorized(challenge, "invalid token"), "invalid_token");
                JwtResult? accepted = null;
                var acceptedBy = -1;
                // Providers whose keys could not be had, and those the token is plainly not from (refused before any key wait).
                var unavailable = 0;
                var otherIssuer = 0;
                // By index here and below: foreach over an IReadOnlyList allocates an enumerator on every call.
                for (var i = 0; i < tenant.JwtProviders.Count; i++)
                {
                    var result = await _jwt.ValidateAsync(tenant.JwtProviders[i], tokenLookup.Value, cancellationToken).ConfigureAwait(false);
                    if (result.Succeeded)
                    {
                        accepted = result;
                        acceptedBy = i;
                        break;
                    }
                    if (result.Failure == JwtFailureReason.KeysUnavailable)
                        unavailable++;
                    else if (result.Failure == JwtFailureReason.WrongIssuer)
                        otherIssuer++;
                }
                if (accepted?.Identity is not { } jwt)
                {
                    // 503 only when no provider could judge the token for want of its keys: the caller may retry.
                    return unavailable > 0 && unavailable + otherIssuer == tenant.JwtProviders.Count
                        ? Deny(tenantLabel, policyLabel, Unavailable("signing keys unavailable"), "keys_unavailable")
                        : CredentialFailure(clientAddress, throttle, tenantLabel, policyLabel, Unauthorized(challenge, "invalid token"), "invalid_token");
                }
                // A plan claim that is there but is no plan is refused, not read as "no plan": the tenant's plan could
                // be a larger quota than the one the issuer meant, and a fallback would hide the issuer's mistake.
                if (jwt.PlanInvalid)
                {
                    if (_invalidPlans.TryReport(out var refused))
                        LogInvalidPlanClaim(_logger, refused, _invalidPlans.Interval.TotalSeconds, tenant.JwtProviders[acceptedBy].Name, tenantLabel);
                    return Deny(tenantLabel, policyLabel, Forbidden("invalid plan claim"), "invalid_plan");
                }
                var client = jwt.Claims.GetValueOrDefault("azp") ?? jwt.Claims.GetValueOrDefault("client_id");
                identity = new Identity("jwt", jwt.Subject, client, jwt.Scopes, jwt.Claims, jwt.Plan ?? tenant.Plan, default, jwt);
            }
            else if (policy.AllowNone)
            {
                identity = new Identity("none", null, null, [], null, tenant.Plan, default, null);
            }
            else
            {
                return Deny(tenantLabel, policyLabel, Unauthorized(challenge, "credentials required"), "no_credentials");
            }

            var method = request.Method.Length > 0 ? request.Method : headers.GetValueOrDefault(":method") ?? "";
            if (policy.Methods.Count > 0 && !policy.Methods.Contains(method))
                return Deny(tenantLabel, policyLabel, Forbidden("method not allowed"), "method_not_allowed");
            for (var i = 0; i < policy.Scopes.Count; i++)
            {
                if (!HasScope(identity.Scopes, policy.Scopes[i]))
                    return Deny(tenantLabel, policyLabel, Forbidden("missing scope"), "missing_scope");
            }
            for (var i = 0; i < policy.Claims.Count; i++)
            {
                // A policy with claims accepts only JWTs (the loader sees to it), so the source is the validated token.
                if (identity.Source is not JwtIdentity token || !policy.Claims[i].IsMetBy(token))
                    return Deny(tenantLabel, policyLabel, Forbidden("missing claim"), "missing_claim");
            }

            _metrics.Decided(tenantLabel, policyLabel, allowed: true, identity.Kind == "none" ? Anonymous : "ok");
            return AllowCached(set, tenant, policy, identity, headers);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The call's deadline (Envoy's ext_authz timeout) passed while waiting, say for a key fetch, or Envoy went
            // away: Envoy has answered without us, and nothing went wrong here. Still an explicit deny.
            return Deny(tenantLabel, policyLabel, Unavailable("deadline exceeded"), "cancelled");
        }
#pragma warning disable CA1031 // Fail closed: whatever went wrong, Envoy gets an explicit deny, never an empty (= allow) answer.
        catch (Exception e)
#pragma warning restore CA1031
        {
            if (_internalErrors.TryReport(out var failed))
                LogInternalError(_logger, failed, _internalErrors.Interval.TotalSeconds, e.GetType().Name, tenantLabel, policyLabel);
            return Deny(tenantLabel, policyLabel, Forbidden("internal error"), "internal_error");
        }
    }

    /// <summary>Lower-case, without port and trailing dot; IPv6 literals keep their brackets.</summary>
    public static string NormalizeHost(string? host)
    {
        if (string.IsNullOrEmpty(host))
            return "";
        var h = host.Trim();
        if (h.StartsWith('['))
        {
            var end = h.IndexOf(']', StringComparison.Ordinal);
            h = end > 0 ? h[..(end + 1)] : h;
        }
        else
        {
            var colon = h.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
                h = h[..colon];
        }
        return h.TrimEnd('.').ToLowerInvariant();
    }

    /// <param name="Source">The API key record or validated token the identity comes from; the same object for every
    /// call with that key (until its store refreshes) or that cached token, so it can key the answer cache.</param>
    private readonly record struct Identity(string Kind, string? Subject, string? Client, IReadOnlyList<string> Scopes,
        IReadOnlyDictionary<string, string>? Claims, string? Plan, ApiKeyLocation Key, object? Source);

    /// <summary>The allow answer last built for one identity source, and what it was built from.</summary>
    private sealed record CachedAllow(AuthzPolicySet Set, TenantPolicy Tenant, AccessPolicy Policy, ApiKeySource KeySource, string? KeyName, CheckAnswer Answer);

    // An allow answer depends on the policy set, tenant, policy and identity only (not on the request), except when a
    // token is stripped from a cookie, so a repeated caller gets the answer built for it last time: nothing in it is
    // ever changed after it is built, and gRPC only serialises it. A validated token keeps its answer itself; API key
    // records (one per key, long-lived) are keys of a weak table, so entries go with their key.
    private readonly ConditionalWeakTable<object, CachedAllow> _allowed = [];

    private CheckAnswer AllowCached(AuthzPolicySet set, TenantPolicy tenant, AccessPolicy policy, in Identity identity, IReadOnlyDictionary<string, string> headers)
    {
        // A token's identity is reused only through the validated-token cache: without it, an answer kept on the identity
        // would never be read again.
        if (identity.Source is not { } source
            || (identity.Kind == "jwt" && (!_jwt.CachesTokens || (set.StripAuthorization && ReadsCookies(tenant)))))
            return CheckAnswer.Once(Allow(set, tenant, policy, identity, headers));
        var token = source as JwtIdentity;
        var cached = token is not null ? Volatile.Read(ref token.AnswerCache) as CachedAllow : _allowed.TryGetValue(source, out var found) ? found : null;
        if (cached is not null && ReferenceEquals(cached.Set, set) && ReferenceEquals(cached.Tenant, tenant)
            && ReferenceEquals(cached.Policy, policy) && cached.KeySource == identity.Key.Source && cached.KeyName == identity.Key.Name)
        {
            return cached.Answer;
        }
        var answer = CheckAnswer.Kept(Allow(set, tenant, policy, identity, headers));
        var entry = new CachedAllow(set, tenant, policy, identity.Key.Source, identity.Key.Name, answer);
        if (token is not null)
            Volatile.Write(ref token.AnswerCache, entry);
        else
            _allowed.AddOrUpdate(source, entry);
        return answer;
    }

    // By index: LINQ's Contains with a comparer enumerates through an allocated enumerator, as foreach over an IReadOnlyList does.
    private static bool HasScope(IReadOnlyList<string> scopes, string scope)
    {
        for (var i = 0; i < scopes.Count; i++)
        {
            if (string.Equals(scopes[i], scope, StringComparison.Ordinal))
                return true;
        }
        return false;
    }

    private static bool ReadsCookies(TenantPolicy tenant)
    {
        foreach (var source in tenant.TokenSources)
        {
            if (source.Kind == TokenSourceKind.Cookie)
                return true;
        }
        return false;
    }

    private static string Challenge(AuthzPolicySet set, TenantPolicy tenant, AccessPolicy policy)
    {
        var realm = $"realm=\"{tenant.Name}\"";
        var bearer = policy.AllowJwt && tenant.JwtProviders.Count > 0;
        var apiKey = policy.AllowApiKey && tenant.ApiKeys && set.ApiKeys is not null;
        return bearer && apiKey ? $"Bearer {realm}, ApiKey {realm}" : apiKey ? $"ApiKey {realm}" : $"Bearer {realm}";
    }

    private CheckResponse Allow(AuthzPolicySet set, TenantPolicy tenant, AccessPolicy policy, in Identity identity, IReadOnlyDictionary<string, string> headers)
    {
        var parts = PartsFor(set, tenant, policy);
        var ok = new OkHttpResponse();
        var names = set.IdentityHeaders;
        if (parts.TenantHeader is { } tenantHeader)
            ok.Headers.Add(tenantHeader);
        else
            ok.HeadersToRemove.Add(names.Tenant);
        SetOrRemove(ok, names.Subject, identity.Subject);
        SetOrRemove(ok, names.Client, identity.Client);
        for (var i = 0; i < names.Claims.Count; i++)
            SetOrRemove(ok, names.Claims[i].Value, identity.Claims?.GetValueOrDefault(names.Claims[i].Key));

        if (identity.Kind == "api_key" && set.StripCredentials)
        {
            if (identity.Key.Source == ApiKeySource.Header && identity.Key.Name is { } header)
                ok.HeadersToRemove.Add(header);
            else if (identity.Key.Source == ApiKeySource.QueryParameter && identity.Key.Name is { } parameter)
                ok.QueryParametersToRemove.Add(parameter);
        }
        if (identity.Kind == "jwt" && set.StripAuthorization)
            StripToken(ok, tenant.TokenSources, headers);

        // String values only: a missing or non-string value makes Envoy skip rate-limit descriptors (fail open, E9).
        var client = identity.Client is null ? AnonymousValue : Value.ForString(identity.Client);
        var metadata = new Struct();
        metadata.Fields["tenant"] = parts.Tenant;
        metadata.Fields["policy"] = parts.Policy;
        metadata.Fields["credential"] = CredentialValue(identity.Kind);
        metadata.Fields["client"] = client;
        metadata.Fields["subject"] = identity.Subject is null ? client : Value.ForString(identity.Subject);
        metadata.Fields["plan"] = ReferenceEquals(identity.Plan, tenant.Plan) ? parts.Plan : Value.ForString(identity.Plan ?? "default");
        return new CheckResponse
        {
            Status = OkStatus,
            OkResponse = ok,
            DynamicMetadata = metadata,
        };
    }

    // Parts shared by many allow answers. Protobuf messages are mutable, but nothing changes these once built and gRPC
    // only serialises them (as with the whole cached answers above), so one instance may sit in any number of answers.
    private static readonly Google.Rpc.Status OkStatus = new() { Code = (int)GrpcStatusCode.OK };
    private static readonly Value AnonymousValue = Value.ForString(Anonymous);
    private static readonly Value JwtValue = Value.ForString("jwt");
    private static readonly Value ApiKeyValue = Value.ForString("api_key");
    private static readonly Value NoneValue = Value.ForString("none");

    private static Value CredentialValue(string kind) => kind switch
    {
        "jwt" => JwtValue,
        "api_key" => ApiKeyValue,
        "none" => NoneValue,
        _ => Value.ForString(kind),
    };

    /// <summary>What an allow answer takes from the tenant and policy alone, built once per policy set, tenant and policy.</summary>
    /// <param name="TenantHeader">The tenant's identity header, or null when its name is no safe header value (then removed).</param>
    private sealed record AllowParts(HeaderValueOption? TenantHeader, Value Tenant, Value Policy, Value Plan);

    /// <summary>The parts built for one policy set (a reload starts a new table, so none outlives its set).</summary>
    private sealed class AllowPartsTable(AuthzPolicySet set)
    {
        public AuthzPolicySet Set { get; } = set;

        public ConcurrentDictionary<(TenantPolicy Tenant, AccessPolicy Policy), AllowParts> Parts { get; } = new(ByReference.Instance);
    }

    /// <summary>Tenant and policy by identity: records compare by value, which costs more and could merge two of them.</summary>
    private sealed class ByReference : IEqualityComparer<(TenantPolicy Tenant, AccessPolicy Policy)>
    {
        public static readonly ByReference Instance = new();

        public bool Equals((TenantPolicy Tenant, AccessPolicy Policy) x, (TenantPolicy Tenant, AccessPolicy Policy) y) =>
            ReferenceEquals(x.Tenant, y.Tenant) && ReferenceEquals(x.Policy, y.Policy);

        public int GetHashCode((TenantPolicy Tenant, AccessPolicy Policy) obj) =>
            HashCode.Combine(RuntimeHelpers.GetHashCode(obj.Tenant), RuntimeHelpers.GetHashCode(obj.Policy));
    }

    private AllowPartsTable? _parts;

    private AllowParts PartsFor(AuthzPolicySet set, TenantPolicy tenant, AccessPolicy policy)
    {
        var table = Volatile.Read(ref _parts);
        if (table is null || !ReferenceEquals(table.Set, set))
        {
            table = new AllowPartsTable(set);
            Volatile.Write(ref _parts, table);
        }
        if (table.Parts.TryGetValue((tenant, policy), out var parts))
            return parts;
        var names = set.IdentityHeaders;
        parts = new AllowParts(IsSafeIdentityValue(tenant.Name) ? Header(names.Tenant, tenant.Name) : null,
            Value.ForString(tenant.Name), Value.ForString(policy.Name), Value.ForString(tenant.Plan ?? "default"));
        return table.Parts.GetOrAdd((tenant, policy), parts);
    }

    /// <summary>Removes the token from every place the tenant reads tokens from, so no copy of it reaches the upstream.</summary>
    private static void StripToken(OkHttpResponse ok, IReadOnlyList<TokenSource> sources, IReadOnlyDictionary<string, string> headers)
    {
        headers.TryGetValue("cookie", out var cookie);
        var rest = cookie;
        foreach (var source in sources)
        {
            switch (source.Kind)
            {
                case TokenSourceKind.Bearer:
                    ok.HeadersToRemove.Add("authorization");
                    break;
                case TokenSourceKind.Header:
                    ok.HeadersToRemove.Add(source.Name);
                    break;
                case TokenSourceKind.Query:
                    ok.QueryParametersToRemove.Add(source.Name);
                    break;
                case TokenSourceKind.Cookie when rest is not null:
                    // Every cookie source strips from what the ones before left: one rewrite for all of them, as a
                    // second overwrite of the header would put back the cookies the first removed.
                    rest = WithoutCookie(rest, source.Name);
                    break;
            }
        }
        if (cookie is null || ReferenceEquals(rest, cookie))
            return;
        // ext_authz cannot remove one cookie: the header is rewritten without them (other cookies kept).
        if (rest!.Length == 0)
        {
            ok.HeadersToRemove.Add("cookie");
            return;
        }
        ok.Headers.Add(new HeaderValueOption
        {
            Header = new HeaderValue { Key = "cookie", Value = rest },
            AppendAction = HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd,
        });
    }

    /// <summary>The cookie header without the cookies named <paramref name="name"/> (pairs re-joined with "; ").</summary>
    public static string WithoutCookie(string cookie, string name)
    {
        var kept = new List<string>();
        var removed = false;
        foreach (var pair in cookie.Split([';', ','], StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals >= 0 && pair.AsSpan(0, equals).Trim(' ').SequenceEqual(name))
                removed = true;
            else
                kept.Add(pair);
        }
        return removed ? string.Join("; ", kept) : cookie;
    }

    /// <summary>Sets an identity header (overwriting what the client sent), or removes it when there is no safe value.</summary>
    private static void SetOrRemove(OkHttpResponse ok, string header, string? value)
    {
        if (IsSafeIdentityValue(value))
        {
            ok.Headers.Add(new HeaderValueOption
            {
                Header = new HeaderValue { Key = header, Value = value },
                AppendAction = HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd,
            });
        }
        else
        {
            ok.HeadersToRemove.Add(header);
        }
    }

    private static bool IsSafeIdentityValue([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] string? value) =>
        value is { Length: > 0 and <= MaxHeaderValueLength } && IsSafeHeaderValue(value);

    private static bool IsSafeHeaderValue(string value)
    {
        foreach (var c in value)
        {
            if (c < 0x20 && c != '\t' || c == 0x7f)
                return false;
        }
        return true;
    }

    private readonly record struct Denial(GrpcStatusCode Code, HttpStatusCode Http, string Error, string Reason, string? Challenge);

    private readonly record struct ChallengeSource(AuthzPolicySet Set, TenantPolicy Tenant, AccessPolicy Policy);

    private static Denial Unauthorized(in ChallengeSource challenge, string reason) =>
        new(GrpcStatusCode.Unauthenticated, HttpStatusCode.Unauthorized, "unauthorized", reason, Challenge(challenge.Set, challenge.Tenant, challenge.Policy));

    private static bool IsAllowedAddress(System.Net.IPAddress? address, IReadOnlyList<System.Net.IPNetwork> networks)
    {
        if (address is null)
            return false;
        foreach (var network in networks)
        {
            if (network.Contains(address))
                return true;
        }
        return false;
    }

    /// <summary>A 401 for an invalid credential, counted against the client's address when the throttle is on.</summary>
    private CheckAnswer CredentialFailure(System.Net.IPAddress? client, FailureThrottleSettings? throttle, string tenant, string policy,
        Denial denial, string metricReason)
    {
        if (throttle is not null)
            _throttle.Failed(client, throttle);
        return Deny(tenant, policy, denial, metricReason);
    }

    private static Denial TooManyFailures() =>
        new(GrpcStatusCode.ResourceExhausted, HttpStatusCode.TooManyRequests, "too_many_requests", "too many invalid credentials", null);

    private static Denial BadRequest(string reason) => new(GrpcStatusCode.InvalidArgument, HttpStatusCode.BadRequest, "bad_request", reason, null);

    private static Denial Forbidden(string reason) => new(GrpcStatusCode.PermissionDenied, HttpStatusCode.Forbidden, "forbidden", reason, null);

    private static Denial Unavailable(string reason) => new(GrpcStatusCode.Unavailable, HttpStatusCode.ServiceUnavailable, "unavailable", reason, null);

    private CheckAnswer Deny(string tenant, string policy, Denial denial, string metricReason)
    {
        _metrics.Decided(tenant, policy, allowed: false, metricReason);
        var denied = new DeniedHttpResponse
        {
            Status = new Envoy.Type.V3.HttpStatus { Code = denial.Http },
            Body = DenyBody(denial),
            Headers = { Header("content-type", "application/json") },
        };
        if (denial.Challenge is not null)
            denied.Headers.Add(Header("www-authenticate", denial.Challenge));
        return CheckAnswer.Once(new CheckResponse
        {
            Status = new Google.Rpc.Status { Code = (int)denial.Code, Message = denial.Reason },
            DeniedResponse = denied,
        });
    }

    // Errors and reasons are constants of this class: a body is serialised once per pair.
    private static readonly ConcurrentDictionary<(string Error, string Reason), string> DenyBodies = new();

    private static string DenyBody(in Denial denial) =>
        DenyBodies.TryGetValue((denial.Error, denial.Reason), out var body)
            ? body
            : DenyBodies.GetOrAdd((denial.Error, denial.Reason),
                static key => JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = key.Error, ["reason"] = key.Reason }));

    private static HeaderValueOption Header(string key, string value) => new()
    {
        Header = new HeaderValue { Key = key, Value = value },
        AppendAction = HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd,
    };

    [LoggerMessage(EventId = 4101, EventName = "LogInternalError", Level = LogLevel.Error,
        Message = "{FailedChecks} authz check(s) failed internally and were denied since the last such line (at most one every {IntervalSeconds} s), the latest with {ExceptionType} (tenant {Tenant}, policy {Policy})")]
    private static partial void LogInternalError(ILogger logger, long failedChecks, double intervalSeconds, string exceptionType, string tenant, string policy);

    [LoggerMessage(EventId = 4102, EventName = "InvalidPlanClaim", Level = LogLevel.Warning,
        Message = "{RefusedTokens} valid token(s) were refused since the last such line (at most one every {IntervalSeconds} s) because their plan claim is no plan (not a string of 1 to 64 characters without control characters, a path through something other than an object, or a member of its path named twice), the latest from JWT provider '{Provider}' (tenant {Tenant})")]
    private static partial void LogInvalidPlanClaim(ILogger logger, long refusedTokens, double intervalSeconds, string provider, string tenant);
}
