using System.Security.Cryptography;
using System.Text;
using Legate.Authz.ApiKeys;

namespace Legate.Authz.Tests.ApiKeys;

public sealed class ApiKeyFormatTests
{
    private static readonly ApiKeyFormat Format = ApiKeyFormat.Default;

    [Fact]
    public void Generate_RoundTrips_AndTheRecordHoldsOnlyTheHash()
    {
        var generated = TestKeys.New();

        Assert.StartsWith("lgt_", generated.Key, StringComparison.Ordinal);
        Assert.Equal(Format.KeyLength, generated.Key.Length);
        Assert.Equal(4, generated.Key.Split('_').Length);
        Assert.True(Format.TryParse(generated.Key, out var keyId));
        Assert.Equal(generated.Record.KeyId, keyId);
        Assert.Equal(SHA256.HashData(Encoding.ASCII.GetBytes(generated.Key)), generated.Record.Sha256.ToArray());
        Assert.DoesNotContain(generated.Key, generated.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Generate_MakesDistinctKeysAndIds()
    {
        var keys = Enumerable.Range(0, 200).Select(_ => TestKeys.New()).ToList();
        Assert.Equal(200, keys.Select(k => k.Key).Distinct().Count());
        Assert.Equal(200, keys.Select(k => k.Record.KeyId).Distinct().Count());
    }

    [Fact]
    public void CustomPrefix_IsUsed_AndKeysOfAnotherPrefixAreRefused()
    {
        var acme = new ApiKeyFormat("acme");
        var key = TestKeys.New(format: acme).Key;

        Assert.StartsWith("acme_", key, StringComparison.Ordinal);
        Assert.Equal(ApiKeyFormatError.None, acme.Check(key, out _));
        Assert.NotEqual(ApiKeyFormatError.None, Format.Check(key, out _));
        Assert.Throws<ArgumentException>(() => new ApiKeyFormat("Bad_Prefix"));
        Assert.Throws<ArgumentException>(() => new ApiKeyFormat(""));
    }

    [Theory]
    [InlineData("lgt", true)]
    [InlineData("a", true)]
    [InlineData("acme2026", true)]
    [InlineData("abcdefghijklmnop", true)]
    [InlineData("abcdefghijklmnopq", false)]
    [InlineData("", false)]
    [InlineData("Lgt", false)]
    [InlineData("lgt_", false)]
    [InlineData("lg t", false)]
    [InlineData("é", false)]
    public void IsPrefix_IsTheRuleTheConstructorApplies(string prefix, bool valid)
    {
        Assert.Equal(valid, ApiKeyFormat.IsPrefix(prefix));
        if (valid)
            Assert.Equal(prefix, new ApiKeyFormat(prefix).Prefix);
        else
            Assert.Throws<ArgumentException>(() => new ApiKeyFormat(prefix));
    }

    [Fact]
    public void Checksum_RejectsEverySingleCharacterTypo()
    {
        var key = TestKeys.New().Key;
        const string alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        var start = key.IndexOf('_', StringComparison.Ordinal) + 1;
        for (var i = start; i < key.Length; i++)
        {
            if (key[i] == '_')
                continue;
            foreach (var c in alphabet)
            {
                if (c == key[i])
                    continue;
                var typo = string.Concat(key.AsSpan(0, i), c.ToString(), key.AsSpan(i + 1));
                Assert.Equal(ApiKeyFormatError.BadChecksum, Format.Check(typo, out _));
            }
        }
    }

    [Fact]
    public void Checksum_RejectsSwappedNeighbours()
    {
        var key = TestKeys.New().Key;
        var chars = key.ToCharArray();
        var i = chars.Length - 10;
        while (chars[i] == chars[i + 1] || chars[i] == '_' || chars[i + 1] == '_')
            i--;
        (chars[i], chars[i + 1]) = (chars[i + 1], chars[i]);
        Assert.Equal(ApiKeyFormatError.BadChecksum, Format.Check(new string(chars), out _));
    }

    public static TheoryData<string, ApiKeyFormatError> Garbage()
    {
        var key = TestKeys.New().Key;
        return new()
        {
            { "", ApiKeyFormatError.Empty },
            { new string('a', 8192), ApiKeyFormatError.Oversized },
            { key[..^1], ApiKeyFormatError.WrongLength },
            { key + "x", ApiKeyFormatError.WrongLength },
            { "ghp" + key[3..], ApiKeyFormatError.WrongPrefix },
            { "LGT" + key[3..], ApiKeyFormatError.WrongPrefix },
            { key.Replace('_', '-'), ApiKeyFormatError.BadSeparator },
            { key[..20] + " " + key[21..], ApiKeyFormatError.NotBase62 },
            { key[..20] + "\n" + key[21..], ApiKeyFormatError.NotBase62 },
            { key[..20] + "\0" + key[21..], ApiKeyFormatError.NotBase62 },
            { key[..20] + "é" + key[21..], ApiKeyFormatError.NotBase62 },
            { " " + key[1..], ApiKeyFormatError.WrongPrefix },
        };
    }

    [Theory]
    [MemberData(nameof(Garbage))]
    public void Check_RejectsGarbage(string text, ApiKeyFormatError expected)
    {
        Assert.Equal(expected, Format.Check(text, out _));
        Assert.False(Format.TryParse(text, out var keyId));
        Assert.Null(keyId);
    }

    [Fact]
    public void Check_AllocatesNothing()
    {
        var key = TestKeys.New().Key;
        Format.Check(key, out _);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
            Format.Check(key, out _);
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    [Fact]
    public void Record_RejectsBadShapes()
    {
        var good = TestKeys.New().Record;
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord("short", good.Sha256, "t", "c", [], TestKeys.Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(good.KeyId, [1, 2, 3], "t", "c", [], TestKeys.Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(good.KeyId, good.Sha256, " ", "c", [], TestKeys.Now));
        Assert.Throws<ArgumentException>(() => new ApiKeyRecord(good.KeyId, good.Sha256, "t", "", [], TestKeys.Now));
        Assert.Equal(good, good with { Revoked = false });
        Assert.NotEqual(good, good with { Revoked = true });
    }
}
