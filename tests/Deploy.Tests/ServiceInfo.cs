using System.Text.Json;
using System.Xml.Linq;
using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>What deploy/ must agree with about a service: its folder, project, assembly name and default ports.</summary>
internal sealed record ServiceInfo(string Name, string Project, string Assembly, int GrpcPort, int HttpPort)
{
    public static IReadOnlyList<ServiceInfo> All { get; } = [Load("authz"), Load("ratelimit"), Load("statsink")];

    public static ServiceInfo Get(string name) => All.Single(s => s.Name == name);

    /// <summary>Reads the service's csproj and its appsettings.json, so the checks follow the source rather than a copy.</summary>
    private static ServiceInfo Load(string name)
    {
        var folder = Path.Combine(RepoPaths.Root, name);
        var project = Directory.GetFiles(folder, "*.csproj").Single();
        var assembly = XDocument.Load(project).Descendants("AssemblyName").Single().Value;
        using var settings = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "appsettings.json")));
        var legate = settings.RootElement.GetProperty("Legate");
        return new ServiceInfo(name, Path.GetFileName(project), assembly, legate.GetProperty(nameof(GrpcPort)).GetInt32(), legate.GetProperty(nameof(HttpPort)).GetInt32());
    }
}
