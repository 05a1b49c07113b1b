using Legate.Authz.Jwt;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

public sealed class JwtOptionsAndLocatorTests
{
    private static IReadOnlyList<string> Errors(JwtProviderOptions options) => JwtProviderOptionsValidator.Validate(options, "providers[0]");

    [Fact]
    public void ValidOptions_HaveNoErrors() => Assert.Empty(Errors(Options(DefaultJwks)));

    [Fact]
    public void Defaults_AreTheSafeOnes()
    {
        var options = Options(DefaultJwks);
        Assert.Equal(TimeSpan.FromSeconds(60), options.ClockSkew);
        Assert.Equal(8 * 1024, options.MaxTokenBytes);
    }

    [Fact]
    public void Algorithms_NoneEmptyUnknownAndMixed_AreRejected()
    {
        Assert.Contains("providers[0].algorithms: 'none' is not allowed", Errors(Options(DefaultJwks) with { Algorithms = ["RS256", "none"] }));
        Assert.Contains("providers[0].algorithms: an explicit list is required (there is no 'any')", Errors(Options(DefaultJwks) with { Algorithms = [] }));
        Assert.Contains(Errors(Options(DefaultJwks) with { Algorithms = ["EdDSA"] }), e => e.StartsWith("providers[0].algorithms: 'EdDSA' is not supported", StringComparison.Ordinal));
        Assert.Contains(Errors(Options(DefaultJwks) with { Algorithms = ["ES256", "HS512"] }), e => e.Contains("cannot be mixed", StringComparison.Ordinal));
    }

    [Fact]
    public void KeySource_ExactlyOne()
    {
        Assert.Contains(Errors(Options(DefaultJwks) with { JwksUri = new Uri("https://x/jwks") }), e => e.StartsWith("providers[0].jwks:", StringComparison.Ordinal));
        Assert.Contains(Errors(Options(DefaultJwks) with { InlineJwks = null }), e => e.StartsWith("providers[0].jwks:", StringComparison.Ordinal));
        Assert.Contains(Errors(Options("{\"keys\":[]}")), e => e.StartsWith("providers[0].inlineJwks:", StringComparison.Ordinal));
    }

    [Fact]
    public void OtherFields_AreNamedInErrors()
    {
        var bad = Options(DefaultJwks) with { Issuer = "", Audiences = [], ClockSkew = TimeSpan.FromHours(1), MaxTokenBytes = 1 };
        var errors = Errors(bad);
        Assert.Contains(errors, e => e.StartsWith("providers[0].issuer:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("providers[0].audiences:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("providers[0].clockSkew:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("providers[0].maxTokenBytes:", StringComparison.Ordinal));
    }

    [Fact]
    public void HmacProvider_WithInlineSecret_Validates()
    {
        var secret = new byte[32];
        Random.Shared.NextBytes(secret);
        var jwks = Jwks(new Dictionary<string, object?> { ["kty"] = "oct", ["kid"] = "s1", ["k"] = B64(secret) });
        var options = Options(jwks) with { Algorithms = ["HS256"] };
        Assert.Empty(Errors(options));
        Assert.Contains(Errors(options with { InlineJwks = null, JwksUri = new Uri("https://x/jwks") }), e => e.Contains("HS*", StringComparison.Ordinal));
    }

    [Fact]
    public void Locator_NamedHeader_Query_Cookie()
    {
        var locator = new TokenLocator([new TokenSource(TokenSourceKind.Header, "x-token"), new TokenSource(TokenSourceKind.Query, "access_token"), new TokenSource(TokenSourceKind.Cookie, "jwt")]);
        Assert.Equal("a.b.c", locator.Locate(new Dictionary<string, string> { ["x-token"] = "a.b.c" }, "/").Token);
        Assert.Equal(TokenLookupStatus.Ambiguous, locator.Locate(new Dictionary<string, string> { ["x-token"] = "a.b.c,d.e.f" }, "/").Status);
        Assert.Equal("a.b.c", locator.Locate(new Dictionary<string, string>(), "/x?y=1&access_token=a.b.c").Token);
        Assert.Equal(TokenLookupStatus.Malformed, locator.Locate(new Dictionary<string, string>(), "/x?access_token=a%20b").Status);
        Assert.Equal("a.b.c", locator.Locate(new Dictionary<string, string> { ["cookie"] = "x=1; jwt=a.b.c" }, "/").Token);
        Assert.Equal("a.b.c", locator.Locate(new Dictionary<string, string> { ["cookie"] = "jwt=\"a.b.c\"" }, "/").Token);
        Assert.Equal(TokenLookupStatus.Ambiguous, locator.Locate(new Dictionary<string, string> { ["cookie"] = "jwt=a.b.c; jwt=d.e.f" }, "/").Status);
        Assert.Equal(TokenLookupStatus.Missing, locator.Locate(new Dictionary<string, string> { ["cookie"] = "jwtx=a.b.c" }, "/?access_tokenx=1").Status);
        Assert.Equal(TokenLookupStatus.Missing, TokenLocator.Default.Locate(new Dictionary<string, string>(), "/").Status);
    }

    [Theory]
    [InlineData("/x?access%5Ftoken=a.b.c")]
    [InlineData("/x?%61ccess_token=a.b.c")]
    public void Locator_QueryParameter_PercentEncodedName_IsNotAToken(string path) =>
        // Envoy strips query parameters by raw name; a token it could not strip is never read.
        Assert.Equal(TokenLookupStatus.Missing, new TokenLocator([new TokenSource(TokenSourceKind.Query, "access_token")]).Locate(new Dictionary<string, string>(), path).Status);

    [Theory]
    [InlineData(TokenSourceKind.Bearer, "authorization", "Bearer  a.b.c ")]
    [InlineData(TokenSourceKind.Header, "x-token", " a.b.c")]
    [InlineData(TokenSourceKind.Cookie, "cookie", "x=1; jwt=\"a.b.c\"")]
    public void Locator_FoundToken_IsASliceOfTheHeader_NotACopy(TokenSourceKind kind, string header, string value)
    {
        var locator = new TokenLocator([new TokenSource(kind, kind == TokenSourceKind.Cookie ? "jwt" : header)]);

        var lookup = locator.Locate(new Dictionary<string, string> { [header] = value }, "/");

        Assert.Equal(TokenLookupStatus.Found, lookup.Status);
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetString(lookup.Value, out var source, out var start, out var length));
        Assert.Same(value, source);
        Assert.Equal("a.b.c", source.Substring(start, length));
    }

    [Fact]
    public void Locator_QueryToken_IsASliceOfThePath()
    {
        const string Path = "/x?y=1&access_token=a.b.c";
        var lookup = new TokenLocator([new TokenSource(TokenSourceKind.Query, "access_token")]).Locate(new Dictionary<string, string>(), Path);

        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetString(lookup.Value, out var source, out _, out _));
        Assert.Same(Path, source);
        Assert.Equal("a.b.c", lookup.Token);
    }
}
