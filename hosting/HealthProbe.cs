using Microsoft.Extensions.Configuration;

namespace Legate.Hosting;

/// <summary>
/// <c>--healthcheck</c>: asks the running service on this machine whether it is ready and exits 0 (ready) or 1.
/// Container images have no curl; Docker's HEALTHCHECK runs the service binary itself in this mode.
/// </summary>
public static class HealthProbe
{
    public const string Flag = "--healthcheck";

    /// <summary>True when the command line asks for a health probe instead of a server.</summary>
    public static bool IsRequested(string[] args) => args.Contains(Flag, StringComparer.Ordinal);

    /// <summary>Probes <c>/readyz</c> on the HTTP port the service's own configuration names. Returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine([.. args.Where(a => a != Flag)])
            .Build();
        var port = configuration.GetValue<int>($"{LegateServerOptions.SectionName}:{nameof(LegateServerOptions.HttpPort)}");
        if (port <= 0)
        {
            await Console.Error.WriteLineAsync("healthcheck: Legate:HttpPort is not set to a fixed port; nothing to probe.");
            return 1;
        }
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        try
        {
            using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{port}/readyz"));
            var body = await response.Content.ReadAsStringAsync();
            Console.WriteLine($"healthcheck: {(int)response.StatusCode} {body}");
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            await Console.Error.WriteLineAsync($"healthcheck: http://127.0.0.1:{port}/readyz unreachable: {e.Message}");
            return 1;
        }
    }
}
