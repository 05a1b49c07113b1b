using ProtoUnit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;
using OverrideUnit = Envoy.Type.V3.RateLimitUnit;

namespace Legate.RateLimit.Config;

/// <summary>
/// The window of a rate limit. Numbered as RLS v3's <c>RateLimitResponse.RateLimit.Unit</c>, so a value converts to the
/// wire enum by a cast; note <see cref="Week"/> = 7 comes after <see cref="Year"/>.
/// </summary>
public enum LimitUnit
{
    /// <summary>No unit. Only <c>unlimited</c> rules, which never count, have it.</summary>
    Unknown = 0,
    Second = 1,
    Minute = 2,
    Hour = 3,
    Day = 4,

    /// <summary>30 days, epoch-aligned like the reference (not calendar months).</summary>
    Month = 5,

    /// <summary>365 days, epoch-aligned like the reference (not calendar years).</summary>
    Year = 6,

    /// <summary>7 days, epoch-aligned: windows start on Thursdays 00:00 UTC.</summary>
    Week = 7,
}

/// <summary>Window lengths and conversions between <see cref="LimitUnit"/>, the config text and the proto enums.</summary>
public static class LimitUnitExtensions
{
    /// <summary>The window length in seconds, as envoyproxy/ratelimit computes windows (month = 30 d, year = 365 d).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="unit"/> is <see cref="LimitUnit.Unknown"/> or undefined.</exception>
    public static long Seconds(this LimitUnit unit) => unit switch
    {
        LimitUnit.Second => 1,
        LimitUnit.Minute => 60,
        LimitUnit.Hour => 3_600,
        LimitUnit.Day => 86_400,
        LimitUnit.Week => 604_800,
        LimitUnit.Month => 2_592_000,
        LimitUnit.Year => 31_536_000,
        _ => throw new ArgumentOutOfRangeException(nameof(unit), unit, "A rate limit window needs a unit."),
    };

    /// <summary>The RLS v3 response enum value (same numbering).</summary>
    public static ProtoUnit ToProto(this LimitUnit unit) => (ProtoUnit)(int)unit;

    /// <summary>The unit for an RLS v3 response enum value; values this build does not know map to <see cref="LimitUnit.Unknown"/>.</summary>
    public static LimitUnit ToLimitUnit(this ProtoUnit unit) =>
        unit is >= ProtoUnit.Unknown and <= ProtoUnit.Week ? (LimitUnit)(int)unit : LimitUnit.Unknown;

    /// <summary>
    /// The unit of a per-request override (<c>envoy.type.v3.RateLimitUnit</c>, same numbering). False for UNKNOWN and
    /// values this build does not know; 7 is accepted as <see cref="LimitUnit.Week"/> for newer Envoys.
    /// </summary>
    public static bool TryFromOverride(OverrideUnit unit, out LimitUnit result)
    {
        var value = (int)unit;
        result = value is >= (int)LimitUnit.Second and <= (int)LimitUnit.Week ? (LimitUnit)value : LimitUnit.Unknown;
        return result != LimitUnit.Unknown;
    }

    /// <summary>Parses a config unit, case-insensitively (<c>second</c>, <c>Minute</c>, <c>HOUR</c>...). UNKNOWN is not a unit.</summary>
    public static bool TryParse(string? text, out LimitUnit unit)
    {
        unit = text?.ToUpperInvariant() switch
        {
            "SECOND" => LimitUnit.Second,
            "MINUTE" => LimitUnit.Minute,
            "HOUR" => LimitUnit.Hour,
            "DAY" => LimitUnit.Day,
            "WEEK" => LimitUnit.Week,
            "MONTH" => LimitUnit.Month,
            "YEAR" => LimitUnit.Year,
            _ => LimitUnit.Unknown,
        };
        return unit != LimitUnit.Unknown;
    }

    /// <summary>The proto enum name, as the reference prints units: <c>SECOND</c>, <c>WEEK</c>, <c>UNKNOWN</c>.</summary>
    public static string ToProtoName(this LimitUnit unit) => unit switch
    {
        LimitUnit.Second => "SECOND",
        LimitUnit.Minute => "MINUTE",
        LimitUnit.Hour => "HOUR",
        LimitUnit.Day => "DAY",
        LimitUnit.Week => "WEEK",
        LimitUnit.Month => "MONTH",
        LimitUnit.Year => "YEAR",
        _ => "UNKNOWN",
    };
}
