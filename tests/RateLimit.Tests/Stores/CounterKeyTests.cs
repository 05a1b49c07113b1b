using Legate.RateLimit.Stores;

namespace Legate.RateLimit.Tests.Stores;

public sealed class CounterKeyTests
{
    private static string Key(long windowStart, params (string Key, string Value)[] entries) =>
        CounterKey.Build("legate:rl:", "edge", entries.Select(e => KeyValuePair.Create(e.Key, e.Value)).ToList(), "m", windowStart);

    [Fact]
    public void Format_IsPrefixHashTaggedDescriptorUnitAndWindow()
    {
        Assert.Equal("legate:rl:{edge|tenant=acme|client=c1}:m:1767261600", Key(1767261600, ("tenant", "acme"), ("client", "c1")));
        Assert.Equal("legate:rl:{edge}:m:0", Key(0));
        Assert.Equal("legate:rl:{edge|remote_address=}:m:7", Key(7, ("remote_address", "")));
    }

    [Theory]
    [InlineData(9)]
    [InlineData(10)]
    [InlineData(99)]
    [InlineData(100)]
    [InlineData(999_999_999)]
    [InlineData(1_000_000_000)]
    [InlineData(999_999_999_999_999)]
    [InlineData(1_000_000_000_000_000)]
    [InlineData(long.MaxValue)]
    [InlineData(-1)]
    [InlineData(long.MinValue)]
    public void WindowStart_IsWrittenInFull(long windowStart)
    {
        var key = Key(windowStart, ("tenant", "acme"));

        Assert.Equal("legate:rl:{edge|tenant=acme}:m:" + windowStart.ToString(System.Globalization.CultureInfo.InvariantCulture), key);
        Assert.DoesNotContain('\0', key);
    }

    [Fact]
    public void Delimiters_ArePercentEncoded()
    {
        Assert.Equal("legate:rl:{edge|a%7Cb=c%3Dd|e%7B%7D=f%3A%25}:m:1", Key(1, ("a|b", "c=d"), ("e{}", "f:%")));
    }

    [Fact]
    public void DifferentDescriptors_NeverShareAKey()
    {
        string[] keys =
        [
            Key(1, ("a_b", "c")),
            Key(1, ("a", "b_c")),
            Key(1, ("a", "b|c=d")),
            Key(1, ("a", "b"), ("c", "d")),
            Key(1, ("a=b", "")),
            Key(1, ("a", "=b")),
            Key(1, ("a", "%7C")),
            Key(1, ("a", "|")),
        ];

        Assert.Equal(keys.Length, keys.Distinct(StringComparer.Ordinal).Count());
    }
}
