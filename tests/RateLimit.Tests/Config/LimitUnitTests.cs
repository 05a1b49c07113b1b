using Legate.RateLimit.Config;
using OverrideUnit = Envoy.Type.V3.RateLimitUnit;
using ProtoUnit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Legate.RateLimit.Tests.Config;

public sealed class LimitUnitTests
{
    [Theory]
    [InlineData(LimitUnit.Second, 1)]
    [InlineData(LimitUnit.Minute, 60)]
    [InlineData(LimitUnit.Hour, 3600)]
    [InlineData(LimitUnit.Day, 86400)]
    [InlineData(LimitUnit.Week, 604800)]
    [InlineData(LimitUnit.Month, 2592000)]
    [InlineData(LimitUnit.Year, 31536000)]
    public void Seconds_AreTheReferences(LimitUnit unit, long seconds) => Assert.Equal(seconds, unit.Seconds());

    [Fact]
    public void Unknown_HasNoWindow() => Assert.Throws<ArgumentOutOfRangeException>(() => LimitUnit.Unknown.Seconds());

    [Fact]
    public void Numbering_IsTheRlsOne()
    {
        Assert.Equal(ProtoUnit.Second, LimitUnit.Second.ToProto());
        Assert.Equal(ProtoUnit.Year, LimitUnit.Year.ToProto());
        Assert.Equal(ProtoUnit.Week, LimitUnit.Week.ToProto());
        Assert.Equal(7, (int)LimitUnit.Week);
        Assert.Equal(LimitUnit.Week, ProtoUnit.Week.ToLimitUnit());
        Assert.Equal(LimitUnit.Unknown, ((ProtoUnit)99).ToLimitUnit());
        foreach (var unit in Enum.GetValues<LimitUnit>())
            Assert.Equal(unit, unit.ToProto().ToLimitUnit());
    }

    [Fact]
    public void OverrideUnits_Convert()
    {
        Assert.True(LimitUnitExtensions.TryFromOverride(OverrideUnit.Second, out var second));
        Assert.Equal(LimitUnit.Second, second);
        Assert.True(LimitUnitExtensions.TryFromOverride(OverrideUnit.Year, out var year));
        Assert.Equal(LimitUnit.Year, year);
        Assert.True(LimitUnitExtensions.TryFromOverride((OverrideUnit)7, out var week));
        Assert.Equal(LimitUnit.Week, week);
        Assert.False(LimitUnitExtensions.TryFromOverride(OverrideUnit.Unknown, out _));
        Assert.False(LimitUnitExtensions.TryFromOverride((OverrideUnit)8, out _));
    }

    [Fact]
    public void Names()
    {
        Assert.Equal("SECOND", LimitUnit.Second.ToProtoName());
        Assert.Equal("WEEK", LimitUnit.Week.ToProtoName());
        Assert.True(LimitUnitExtensions.TryParse("wEEk", out var week));
        Assert.Equal(LimitUnit.Week, week);
        Assert.False(LimitUnitExtensions.TryParse("UNKNOWN", out _));
        Assert.False(LimitUnitExtensions.TryParse(null, out _));
        Assert.Equal("sliding_window", LimitAlgorithm.SlidingWindow.ToConfigName());
        Assert.Equal("fixed_window", default(LimitAlgorithm).ToConfigName());
    }
}
