using System.Buffers.Text;
using System.Text.Json;
using Legate.Authz.ApiKeys;
using Legate.Authz.Jwt;

namespace Legate.Authz.Tests.Jwt;

/// <summary>
/// The validator's payload reading as it was with <see cref="JsonDocument"/> (a claims dictionary, a set of member
/// names): the oracle that <see cref="JwtValidator.ReadPayload"/> must agree with on every payload, failures included.
/// </summary>
internal static class ReferencePayloadReader
{
    private static readonly JsonDocumentOptions PayloadOptions = new() { MaxDepth = 32 };

    public static JwtResult Read(JwtProvider provider, DateTimeOffset now, ReadOnlySpan<char> encodedPayload)
    {
        try
        {
            return CheckClaimsAndBuild(provider, now, encodedPayload);
        }
        catch (Exception e) when (e is ArgumentException or JsonException or FormatException or OverflowException or InvalidOperationException)
        {
            return JwtResult.Fail(JwtFailureReason.Malformed);
        }
    }

    private static JwtResult CheckClaimsAndBuild(JwtProvider provider, DateTimeOffset now, ReadOnlySpan<char> encodedPayload)
    {
        var payload = Base64Url.DecodeFromChars(encodedPayload);
        using var document = JsonDocument.Parse(payload, PayloadOptions);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
            return JwtResult.Fail(JwtFailureReason.Malformed);
        var claims = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        List<string>? scopes = null;
        JsonElement? scp = null;
        JsonElement? iss = null, aud = null, exp = null, nbf = null, iat = null;
        foreach (var claim in document.RootElement.EnumerateObject())
        {
            if (!names.Add(claim.Name))
                return JwtResult.Fail(JwtFailureReason.Malformed);
            var value = claim.Value;
            switch (value.ValueKind)
            {
                case JsonValueKind.String:
                    claims[claim.Name] = value.GetString()!;
                    break;
                case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False:
                    claims[claim.Name] = value.GetRawText();
                    break;
            }
            switch (claim.Name)
            {
                case "iss": iss = value; break;
                case "aud": aud = value; break;
                case "exp": exp = value; break;
                case "nbf": nbf = value; break;
                case "iat": iat = value; break;
                case "scope" when value.ValueKind == JsonValueKind.String:
                    scopes = [.. value.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries)];
                    break;
                case "scp": scp = value; break;
            }
        }

        if (exp is null)
            return JwtResult.Fail(JwtFailureReason.Expired);
        if (!TryReadTime(exp.Value, out var expires) || !TryReadOptionalTime(nbf, out var notBefore) || !TryReadOptionalTime(iat, out var issuedAt))
            return JwtResult.Fail(JwtFailureReason.Malformed);

        var options = provider.Options;
        if (now > expires + options.ClockSkew)
            return JwtResult.Fail(JwtFailureReason.Expired);
        if (notBefore > now + options.ClockSkew)
            return JwtResult.Fail(JwtFailureReason.NotYetValid);
        if (issuedAt > now + options.ClockSkew)
            return JwtResult.Fail(JwtFailureReason.IssuedInFuture);
        if (options.MaxLifetime is { } max)
        {
            var start = issuedAt ?? notBefore;
            if ((start is { } s && expires - s > max) || expires - now > max + options.ClockSkew)
                return JwtResult.Fail(JwtFailureReason.LifetimeTooLong);
        }

        if (iss is not { ValueKind: JsonValueKind.String } issuer || !issuer.ValueEquals(options.Issuer))
            return JwtResult.Fail(JwtFailureReason.WrongIssuer);

        string? audience = null;
        if (aud is { ValueKind: JsonValueKind.String } single)
        {
            audience = provider.Audiences.Contains(single.GetString()!) ? single.GetString() : null;
        }
        else if (aud is { ValueKind: JsonValueKind.Array } several)
        {
            foreach (var element in several.EnumerateArray())
            {
                if (element.ValueKind == JsonValueKind.String && element.GetString() is { } candidate && provider.Audiences.Contains(candidate))
                {
                    audience = candidate;
                    break;
                }
            }
        }
        if (audience is null)
            return JwtResult.Fail(JwtFailureReason.WrongAudience);

        if (scopes is null && scp is { } scpValue)
        {
            scopes = scpValue.ValueKind switch
            {
                JsonValueKind.String => [.. scpValue.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries)],
                JsonValueKind.Array => [.. scpValue.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)],
                _ => null,
            };
        }

        var subject = claims.GetValueOrDefault("sub") is { Length: > 0 } sub ? sub : null;
        var (plan, planInvalid) = ReadPlan(document.RootElement, options.PlanClaim);
        return JwtResult.Success(new JwtIdentity(subject, options.Issuer, audience, expires,
            scopes?.AsReadOnly() ?? (IReadOnlyList<string>)[], claims.AsReadOnly(), plan: plan, planInvalid: planInvalid));
    }

    /// <summary>
    /// The plan claim, followed member by member: absent when a member of the path is missing; invalid when one is
    /// named twice in its object, the path goes through something other than an object, or the value is no string
    /// holding to the plan rule.
    /// </summary>
    private static (string? Plan, bool Invalid) ReadPlan(JsonElement root, IReadOnlyList<string>? path)
    {
        if (path is null)
            return (null, false);
        var current = root;
        foreach (var name in path)
        {
            if (current.ValueKind != JsonValueKind.Object)
                return (null, true);
            var matches = current.EnumerateObject().Where(p => p.NameEquals(name)).ToList();
            if (matches.Count == 0)
                return (null, false);
            if (matches.Count > 1)
                return (null, true);
            current = matches[0].Value;
        }
        if (current.ValueKind != JsonValueKind.String)
            return (null, true);
        string text;
        try
        {
            text = current.GetString()!;
        }
        catch (InvalidOperationException)
        {
            return (null, true);
        }
        return ApiKeyRecordRules.IsPlan(text) ? (text, false) : (null, true);
    }

    private static bool TryReadTime(JsonElement value, out DateTimeOffset time)
    {
        time = default;
        if (value.ValueKind != JsonValueKind.Number)
            return false;
        long seconds;
        if (!value.TryGetInt64(out seconds))
        {
            if (!value.TryGetDouble(out var fractional) || !double.IsFinite(fractional) || Math.Abs(fractional) > 1e15)
                return false;
            seconds = (long)Math.Truncate(fractional);
        }
        if (seconds < DateTimeOffset.MinValue.ToUnixTimeSeconds() || seconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
            return false;
        time = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return true;
    }

    private static bool TryReadOptionalTime(JsonElement? value, out DateTimeOffset? time)
    {
        time = null;
        if (value is null)
            return true;
        if (!TryReadTime(value.Value, out var read))
            return false;
        time = read;
        return true;
    }
}
