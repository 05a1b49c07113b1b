using Legate.Authz.Jwt;
using Microsoft.Extensions.Time.Testing;
using static Legate.Authz.Tests.Jwt.JwtTestKit;

namespace Legate.Authz.Tests.Jwt;

/// <summary>A validator without a token cache on a test clock, and a provider on the test kit's default keys.</summary>
public abstract class JwtValidatorTestBase
{
    protected JwtValidatorTestBase()
    {
        Validator = new JwtValidator(Time);
        DefaultProvider = Provider(Options(DefaultJwks), Time);
    }

    protected FakeTimeProvider Time { get; } = new(Now);

    protected JwtValidator Validator { get; }

    protected JwtProvider DefaultProvider { get; }

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected async Task<JwtFailureReason> FailureAsync(string token, JwtProvider? provider = null)
        => (await Validator.ValidateAsync(provider ?? DefaultProvider, token, Ct)).Failure;
}
