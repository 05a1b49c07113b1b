using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Auth.V3;
using Envoy.Service.Ratelimit.V3;
using Google.Protobuf;

namespace Legate.Protos.Tests;

/// <summary>
/// Field numbers and method paths as Envoy puts them on the wire. The expected bytes are written out by hand
/// from Envoy's .proto files, so a renumbered field fails here even where no checker is available.
/// </summary>
public sealed class WireFormatTests
{
    [Fact]
    public void MethodPaths_AreEnvoys()
    {
        Assert.Equal("envoy.service.auth.v3.Authorization", Authorization.Descriptor.FullName);
        Assert.Equal("envoy.service.ratelimit.v3.RateLimitService", RateLimitService.Descriptor.FullName);
        Assert.Equal("envoy.service.metrics.v3.MetricsService", Envoy.Service.Metrics.V3.MetricsService.Descriptor.FullName);
        Assert.Equal("Check", Authorization.Descriptor.Methods.Single().Name);
        Assert.Equal("ShouldRateLimit", RateLimitService.Descriptor.Methods.Single().Name);
        Assert.True(Envoy.Service.Metrics.V3.MetricsService.Descriptor.Methods.Single().IsClientStreaming);
    }

    [Fact]
    public void RateLimitDescriptor_HitsAddendIsField3AsUInt64Value()
    {
        var descriptor = new RateLimitDescriptor { HitsAddend = 5 };

        // field 3, length-delimited, 2 bytes: UInt64Value { value (field 1, varint) = 5 }
        Assert.Equal(new byte[] { 0x1a, 0x02, 0x08, 0x05 }, descriptor.ToByteArray());
    }

    [Fact]
    public void RateLimitDescriptor_HitsAddendZeroIsPresentAndDistinctFromUnset()
    {
        var zero = RateLimitDescriptor.Parser.ParseFrom([0x1a, 0x00]);
        var unset = RateLimitDescriptor.Parser.ParseFrom([]);

        Assert.Equal(0UL, zero.HitsAddend);
        Assert.Null(unset.HitsAddend);
    }

    [Fact]
    public void RateLimitUnit_WeekIs7()
    {
        var limit = new RateLimitResponse.Types.RateLimit { RequestsPerUnit = 10, Unit = RateLimitResponse.Types.RateLimit.Types.Unit.Week };

        Assert.Equal(new byte[] { 0x08, 0x0a, 0x10, 0x07 }, limit.ToByteArray());
    }

    [Fact]
    public void RateLimitRequest_ParsesEnvoysEncoding()
    {
        // domain "edge" (1), descriptors (2) { entries (1) { key "tenant" (1), value "acme" (2) } }, hits_addend (3) = 2
        byte[] wire = [0x0a, 0x04, (byte)'e', (byte)'d', (byte)'g', (byte)'e',
            0x12, 0x10, 0x0a, 0x0e, 0x0a, 0x06, (byte)'t', (byte)'e', (byte)'n', (byte)'a', (byte)'n', (byte)'t', 0x12, 0x04, (byte)'a', (byte)'c', (byte)'m', (byte)'e',
            0x18, 0x02];

        var request = RateLimitRequest.Parser.ParseFrom(wire);

        Assert.Equal("edge", request.Domain);
        Assert.Equal("tenant", request.Descriptors[0].Entries[0].Key);
        Assert.Equal("acme", request.Descriptors[0].Entries[0].Value);
        Assert.Equal(2u, request.HitsAddend);
    }

    [Fact]
    public void CheckRequest_ContextExtensionsAreField10OfAttributes()
    {
        var request = new CheckRequest { Attributes = new AttributeContext { ContextExtensions = { ["t"] = "a" } } };

        // attributes (1) { context_extensions (10) map entry { key (1) "t", value (2) "a" } }
        Assert.Equal(new byte[] { 0x0a, 0x08, 0x52, 0x06, 0x0a, 0x01, (byte)'t', 0x12, 0x01, (byte)'a' }, request.ToByteArray());
    }

    [Fact]
    public void CheckResponse_FieldNumbersAreEnvoys()
    {
        var denied = new CheckResponse { Status = new Google.Rpc.Status { Code = 7 }, DeniedResponse = new DeniedHttpResponse { Body = "x" } };
        var ok = new CheckResponse { OkResponse = new OkHttpResponse { HeadersToRemove = { "h" } } };

        // status (1) { code (1) = 7 }, denied_response (2) { body (3) "x" }
        Assert.Equal(new byte[] { 0x0a, 0x02, 0x08, 0x07, 0x12, 0x03, 0x1a, 0x01, (byte)'x' }, denied.ToByteArray());
        // ok_response (3) { headers_to_remove (5) "h" }
        Assert.Equal(new byte[] { 0x1a, 0x03, 0x2a, 0x01, (byte)'h' }, ok.ToByteArray());
    }

    [Fact]
    public void HeaderValueOption_AppendActionIsField3()
    {
        var option = new Envoy.Config.Core.V3.HeaderValueOption
        {
            AppendAction = Envoy.Config.Core.V3.HeaderValueOption.Types.HeaderAppendAction.OverwriteIfExistsOrAdd,
        };

        Assert.Equal(new byte[] { 0x18, 0x02 }, option.ToByteArray());
    }
}
