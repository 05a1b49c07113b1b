using Envoy.Service.Ratelimit.V3;
using Google.Protobuf;
using Grpc.Core;
using Legate.Hosting.Rules;
using Legate.RateLimit.Config;

namespace Legate.RateLimit;

/// <summary>
/// The HTTP surface envoyproxy/ratelimit users know: <c>POST /json</c> takes a RateLimitRequest in proto3 JSON and
/// answers the RateLimitResponse (200 OK, 429 over limit, 400 bad request, 503 store unavailable); <c>GET /rlconfig</c>
/// shows the loaded rules as the service understands them.
/// </summary>
internal static class DebugEndpoints
{
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(false));
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(false));

    public static void Map(WebApplication app)
    {
        app.MapPost("/json", HandleJsonAsync).OnHttpListener();
        app.MapGet("/rlconfig", (RulesProvider<RateLimitConfig> rules) =>
        {
            var snapshot = rules.Snapshot;
            return Results.Text($"# version {snapshot.Version}, loaded {snapshot.LoadedAt:O}\n{snapshot.Rules.Describe()}", "text/plain");
        }).OnHttpListener();
    }

    private static async Task<IResult> HandleJsonAsync(HttpRequest http, RateLimiter limiter)
    {
        RateLimitRequest request;
        try
        {
            using var reader = new StreamReader(http.Body);
            var body = await reader.ReadToEndAsync(http.HttpContext.RequestAborted);
            request = Parser.Parse<RateLimitRequest>(body);
        }
        catch (InvalidProtocolBufferException e)
        {
            return Results.Text("bad request: " + e.Message, "text/plain", statusCode: StatusCodes.Status400BadRequest);
        }
        catch (InvalidJsonException e)
        {
            return Results.Text("bad request: " + e.Message, "text/plain", statusCode: StatusCodes.Status400BadRequest);
        }

        try
        {
            var response = await limiter.ShouldRateLimitAsync(request, http.HttpContext.RequestAborted);
            var status = response.OverallCode == RateLimitResponse.Types.Code.OverLimit ? StatusCodes.Status429TooManyRequests : StatusCodes.Status200OK;
            return Results.Text(Formatter.Format(response), "application/json", statusCode: status);
        }
        catch (RpcException e)
        {
            var status = e.StatusCode == StatusCode.InvalidArgument ? StatusCodes.Status400BadRequest : StatusCodes.Status503ServiceUnavailable;
            return Results.Text(e.Status.Detail, "text/plain", statusCode: status);
        }
    }
}
