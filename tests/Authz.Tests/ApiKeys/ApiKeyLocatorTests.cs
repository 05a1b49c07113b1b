using Legate.Authz.ApiKeys;

namespace Legate.Authz.Tests.ApiKeys;

public sealed class ApiKeyLocatorTests
{
    private static readonly string Key = TestKeys.New().Key;

    private static Dictionary<string, string> Headers(params (string Name, string Value)[] headers) =>
        headers.ToDictionary(h => h.Name, h => h.Value);

    [Fact]
    public void Header_IsFound()
    {
        var located = new ApiKeyLocator("X-Api-Key").Locate(Headers(("x-api-key", Key), (":path", "/")), "/orders");
        Assert.Equal(new ApiKeyLocation(ApiKeyLocateStatus.Found, Key, ApiKeySource.Header, "x-api-key"), located);
    }

    [Fact]
    public void Header_SurroundingSpaceIsTrimmed() =>
        Assert.Equal(Key, new ApiKeyLocator().Locate(Headers(("x-api-key", " " + Key + "\t")), "/").Key);

    [Fact]
    public void Missing_WhenAbsent() =>
        Assert.Equal(ApiKeyLocateStatus.Missing, new ApiKeyLocator(queryParameter: "api_key").Locate(Headers(), "/orders?x=1").Status);

    [Theory]
    [InlineData("ApiKey {0}", ApiKeyLocateStatus.Found)]
    [InlineData("apikey   {0}", ApiKeyLocateStatus.Found)]
    [InlineData("Bearer {0}", ApiKeyLocateStatus.Missing)]
    [InlineData("ApiKey{0}", ApiKeyLocateStatus.Missing)]
    [InlineData("ApiKey {0},ApiKey {0}", ApiKeyLocateStatus.Ambiguous)]
    [InlineData("ApiKey ", ApiKeyLocateStatus.Missing)]
    public void AuthorizationScheme(string format, ApiKeyLocateStatus expected)
    {
        var value = string.Format(System.Globalization.CultureInfo.InvariantCulture, format, Key);
        var located = new ApiKeyLocator("authorization", "ApiKey").Locate(Headers(("authorization", value)), "/");
        Assert.Equal(expected, located.Status);
        if (expected == ApiKeyLocateStatus.Found)
            Assert.Equal(Key, located.Key);
    }

    [Theory]
    [InlineData("k1,k2")]
    [InlineData("{0},{0}")]
    public void Header_JoinedValues_AreAmbiguous(string value) =>
        Assert.Equal(ApiKeyLocateStatus.Ambiguous,
            new ApiKeyLocator().Locate(Headers(("x-api-key", string.Format(System.Globalization.CultureInfo.InvariantCulture, value, Key))), "/").Status);

    [Fact]
    public void Header_EmptyOrOversized_IsInvalid()
    {
        Assert.Equal(ApiKeyLocateStatus.Invalid, new ApiKeyLocator().Locate(Headers(("x-api-key", "  ")), "/").Status);
        Assert.Equal(ApiKeyLocateStatus.Invalid, new ApiKeyLocator().Locate(Headers(("x-api-key", new string('a', 8192))), "/").Status);
    }

    [Theory]
    [InlineData("/orders?api_key={0}")]
    [InlineData("/orders?a=1&api_key={0}&b=2")]
    [InlineData("/orders?api_key={0}#frag")]
    public void QueryParameter_IsFound(string path)
    {
        var located = new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), string.Format(System.Globalization.CultureInfo.InvariantCulture, path, Key));
        Assert.Equal(new ApiKeyLocation(ApiKeyLocateStatus.Found, Key, ApiKeySource.QueryParameter, "api_key"), located);
    }

    [Fact]
    public void QueryParameter_PercentEncodingIsDecoded()
    {
        var encoded = "%" + ((int)Key[0]).ToString("X2", System.Globalization.CultureInfo.InvariantCulture) + Key[1..];
        Assert.Equal(Key, new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), "/?api_key=" + encoded).Key);
        // A decoded control character survives to the key format, which refuses it.
        var withNewline = new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), "/?api_key=" + Key[..10] + "%0A" + Key[11..]).Key!;
        Assert.False(ApiKeyFormat.Default.TryParse(withNewline, out _));
    }

    // Envoy's query_parameters_to_remove matches raw names: a key taken from api%5Fkey could not be stripped.
    [Theory]
    [InlineData("/orders?api%5Fkey={0}")]
    [InlineData("/orders?api%5fkey={0}")]
    [InlineData("/orders?%61pi_key={0}")]
    public void QueryParameter_PercentEncodedName_IsNotACredential(string path) =>
        Assert.Equal(default, new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), string.Format(System.Globalization.CultureInfo.InvariantCulture, path, Key)));

    [Fact]
    public void QueryParameter_PercentEncodedNameBesideTheRealOne_OnlyTheRawNameCounts()
    {
        var located = new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), "/?api%5Fkey=x&api_key=" + Key);
        Assert.Equal(new ApiKeyLocation(ApiKeyLocateStatus.Found, Key, ApiKeySource.QueryParameter, "api_key"), located);
    }

    [Theory]
    [InlineData("/?api_key={0}&api_key={0}")]
    [InlineData("/?api_key=a%2Cb")]
    public void QueryParameter_TwiceOrJoined_IsAmbiguous(string path) =>
        Assert.Equal(ApiKeyLocateStatus.Ambiguous,
            new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), string.Format(System.Globalization.CultureInfo.InvariantCulture, path, Key)).Status);

    [Fact]
    public void QueryParameter_Empty_IsInvalid() =>
        Assert.Equal(ApiKeyLocateStatus.Invalid, new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), "/?api_key=").Status);

    [Fact]
    public void HeaderAndQueryParameter_Both_IsAmbiguous() =>
        Assert.Equal(ApiKeyLocateStatus.Ambiguous,
            new ApiKeyLocator("x-api-key", queryParameter: "api_key").Locate(Headers(("x-api-key", Key)), "/?api_key=" + Key).Status);

    [Fact]
    public void OtherParameterNames_AreIgnored() =>
        Assert.Equal(ApiKeyLocateStatus.Missing, new ApiKeyLocator(null, queryParameter: "api_key").Locate(Headers(), "/?api_key_x=1&xapi_key=2&API_KEY=3").Status);
}
