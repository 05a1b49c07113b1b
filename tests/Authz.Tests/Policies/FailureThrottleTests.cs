using System.Net;
using Envoy.Config.Core.V3;
using Envoy.Service.Auth.V3;
using Legate.Authz.Policies;
using Legate.Authz.Tests.ApiKeys;
using Microsoft.Extensions.Time.Testing;
using GrpcStatusCode = Grpc.Core.StatusCode;

namespace Legate.Authz.Tests.Policies;

/// <summary>K10: a client address that sends many invalid credentials is refused (429) before any lookup.</summary>
public sealed class FailureThrottleTests
{
    private static string Policy(string throttle = "failure_throttle: {max_failures: 3, window: 1m}") =>
        AuthzTestHost.DefaultPolicy + "\n" + throttle + "\n";

    private static CheckRequest From(string address, Dictionary<string, string>? headers = null)
    {
        var request = AuthzTestHost.Request(headers: headers);
        request.Attributes.Source = new AttributeContext.Types.Peer { Address = new Address { SocketAddress = new Envoy.Config.Core.V3.SocketAddress { Address = address, PortValue = 1234 } } };
        return request;
    }

    private static Dictionary<string, string> Key(string key) => new() { ["x-api-key"] = key };

    [Fact]
    public async Task K10_TooManyBadCredentials_FromOneAddress_Are429_EvenWithAGoodKeyAfterwards()
    {
        using var host = new AuthzTestHost(Policy());
        var wrong = TestKeys.New().Key;

        for (var i = 0; i < 2; i++)
            Assert.Equal((int)GrpcStatusCode.Unauthenticated, (await host.CheckAsync(From("203.0.113.9", Key(wrong)))).Status.Code);
        Assert.Equal((int)GrpcStatusCode.Unauthenticated,
            (await host.CheckAsync(From("203.0.113.9", new() { ["authorization"] = "Bearer " + AuthzTestHost.Token()[..^4] + "AAAA" }))).Status.Code);

        var blocked = await host.CheckAsync(From("203.0.113.9", Key(AuthzTestHost.AcmeKey.Key)));
        var other = await host.CheckAsync(From("198.51.100.7", Key(AuthzTestHost.AcmeKey.Key)));

        Assert.Equal((int)GrpcStatusCode.ResourceExhausted, blocked.Status.Code);
        Assert.Equal(Envoy.Type.V3.StatusCode.TooManyRequests, blocked.DeniedResponse.Status.Code);
        Assert.Equal("{\"error\":\"too_many_requests\",\"reason\":\"too many invalid credentials\"}", blocked.DeniedResponse.Body);
        Assert.Equal(0, other.Status.Code);
        var scrape = await host.Service.ScrapeAsync(TestContext.Current.CancellationToken);
        Assert.Contains("reason=\"throttled\"} 1", scrape, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MissingCredentials_AreNotCounted_OnlyInvalidOnes()
    {
        using var host = new AuthzTestHost(Policy());

        for (var i = 0; i < 5; i++)
            Assert.Equal((int)GrpcStatusCode.Unauthenticated, (await host.CheckAsync(From("203.0.113.9"))).Status.Code);

        Assert.Equal(0, (await host.CheckAsync(From("203.0.113.9", Key(AuthzTestHost.AcmeKey.Key)))).Status.Code);
    }

    [Fact]
    public async Task OffByDefault()
    {
        using var host = new AuthzTestHost();
        var wrong = TestKeys.New().Key;

        for (var i = 0; i < 10; i++)
            await host.CheckAsync(From("203.0.113.9", Key(wrong)));

        Assert.Equal(0, (await host.CheckAsync(From("203.0.113.9", Key(AuthzTestHost.AcmeKey.Key)))).Status.Code);
    }

    [Fact]
    public void TheWindowEnds_AndTheTableIsBounded()
    {
        var time = new FakeTimeProvider();
        var throttle = new FailureThrottle(time);
        var settings = new FailureThrottleSettings(2, TimeSpan.FromSeconds(60));
        var address = IPAddress.Parse("203.0.113.9");

        throttle.Failed(address, settings);
        Assert.False(throttle.IsBlocked(address, settings));
        throttle.Failed(address, settings);
        Assert.True(throttle.IsBlocked(address, settings));
        Assert.False(throttle.IsBlocked(IPAddress.Parse("203.0.113.10"), settings));
        Assert.False(throttle.IsBlocked(null, settings));

        time.Advance(TimeSpan.FromSeconds(60));
        Assert.False(throttle.IsBlocked(address, settings));
        throttle.Failed(address, settings);
        Assert.False(throttle.IsBlocked(address, settings));

        // A flood of distinct addresses empties the table rather than growing it.
        for (var i = 0; i < FailureThrottle.MaxAddresses + 10; i++)
            throttle.Failed(new IPAddress(i + 1), settings);
        throttle.Failed(address, settings);
        Assert.False(throttle.IsBlocked(address, settings));
    }

    [Theory]
    [InlineData("failure_throttle: {max_failures: 0, window: 1m}", "failure_throttle.max_failures: must be between 1 and 1000000")]
    [InlineData("failure_throttle: {max_failures: 5}", "failure_throttle.window: is required")]
    [InlineData("failure_throttle: {max_failures: 5, window: 2h}", "failure_throttle.window: is between 1s and 1h")]
    [InlineData("failure_throttle: 5", "failure_throttle: is a mapping")]
    public void BadSettings_AreLoadErrors(string line, string expected) =>
        Assert.Contains(expected, AuthzTestHost.LoadError(Policy(line))?.Message, StringComparison.Ordinal);
}
