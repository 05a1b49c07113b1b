using Legate.Gateway.Loading;
using Legate.Hosting.Rules;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Tests;

/// <summary>Gateway files for tests: a small valid one to vary, the repository's example, and YAML navigation.</summary>
internal static class GatewayFiles
{
    public static string Example { get; } = Path.Combine(Legate.Testing.RepoPaths.Root, "deploy", "examples", "gateway.yaml");

    /// <summary>The smallest useful gateway: one backend, one tenant, the default policy, one route.</summary>
    public const string Minimal = """
        backends:
          api: { urls: [http://127.0.0.1:9999] }
        tenants:
          acme: { hosts: [api.acme.example] }
        policies:
          default: { credentials: [jwt] }
        routes:
          - { name: api, match: { prefix: / }, backend: api }
        """;

    /// <summary>The errors of a gateway file given as text (empty when it loads).</summary>
    public static IReadOnlyList<GatewayError> Errors(string yaml)
    {
        try
        {
            GatewayLoader.Load(new RulesFile("gw.yaml", yaml));
            return [];
        }
        catch (GatewayFileException e)
        {
            return e.Errors;
        }
    }

    /// <summary>Writes a gateway file into a fresh temp folder; the folder is deleted with the returned scope.</summary>
    public static TempDir Write(string yaml, string name = "gateway.yaml")
    {
        var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, name), yaml);
        return dir;
    }

    public static YamlMappingNode Load(string path)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    public static YamlNode? Get(this YamlNode node, params string[] path)
    {
        var current = (YamlNode?)node;
        foreach (var key in path)
        {
            current = current is YamlMappingNode map && map.Children.TryGetValue(new YamlScalarNode(key), out var next) ? next : null;
            if (current is null)
                return null;
        }
        return current;
    }

    public static string? Str(this YamlNode node, params string[] path) => (node.Get(path) as YamlScalarNode)?.Value;

    public static IReadOnlyList<YamlNode> Seq(this YamlNode node, params string[] path) => node.Get(path) is YamlSequenceNode s ? s.Children.ToArray() : [];
}

internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("legate-gateway-test-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
