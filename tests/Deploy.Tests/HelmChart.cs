using Legate.Testing;
using YamlDotNet.RepresentationModel;

namespace Legate.Deploy.Tests;

/// <summary>The chart deploy/helm/legate rendered by <c>helm template</c>, as parsed manifests.</summary>
internal sealed class HelmChart
{
    public const string Release = "rel";
    public static readonly string Directory = Path.Combine(RepoPaths.Root, "deploy", "helm", "legate");

    private HelmChart(IReadOnlyList<YamlMappingNode> manifests) => Manifests = manifests;

    public IReadOnlyList<YamlMappingNode> Manifests { get; }

    /// <summary>The values files under ci/ (each also linted), by file name.</summary>
    public static TheoryData<string> CiValues()
    {
        var data = new TheoryData<string>();
        foreach (var file in System.IO.Directory.GetFiles(Path.Combine(Directory, "ci"), "*.yaml").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(file));
        return data;
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> HelmAsync(params string[] args) =>
        await DeployTools.RunAsync(await DeployTools.HelmAsync(), args);

    /// <summary><c>helm template</c> with a ci/ values file (or none) and extra <c>--set</c> values.</summary>
    public static async Task<HelmChart> TemplateAsync(string? ciValues, params string[] set)
    {
        List<string> args = ["template", Release, Directory];
        if (ciValues is not null)
            args.AddRange(["-f", Path.Combine(Directory, "ci", ciValues)]);
        foreach (var s in set)
            args.AddRange(["--set", s]);
        return await TemplateWithArgsAsync([.. args[3..]]);
    }

    /// <summary><c>helm template</c> with any further arguments (<c>--set-file</c>, <c>-f</c>).</summary>
    public static async Task<HelmChart> TemplateWithArgsAsync(params string[] extra)
    {
        var (exitCode, stdout, stderr) = await HelmAsync(["template", Release, Directory, .. extra]);
        Assert.True(exitCode == 0, $"helm template failed: {stderr}");
        return new HelmChart(Yaml.ParseAll(stdout));
    }

    public IEnumerable<YamlMappingNode> OfKind(string kind) => Manifests.Where(m => m.Str("kind") == kind);

    public YamlMappingNode Get(string kind, string name) =>
        OfKind(kind).SingleOrDefault(m => m.Str("metadata", "name") == name)
        ?? throw new KeyNotFoundException($"no {kind} {name} in: {string.Join(", ", Manifests.Select(m => $"{m.Str("kind")} {m.Str("metadata", "name")}"))}");

    public static string Name(string component) => $"{Release}-legate-{component}";

    /// <summary>The Service of a service: named as the gateway file addresses it.</summary>
    public YamlMappingNode ServiceOf(string component, string? name = null) => Get("Service", name ?? component);

    /// <summary>The gateway file's services addresses (its defaults where it names none), as host:port.</summary>
    public Dictionary<string, string> GatewayServiceAddresses()
    {
        var gateway = GatewayFile();
        return new Dictionary<string, string>
        {
            ["authz"] = gateway.Str("services", "authz", "address") ?? "authz:9001",
            ["ratelimit"] = gateway.Str("services", "ratelimit", "address") ?? "ratelimit:9002",
            ["statsink"] = gateway.Str("services", "statsink", "address") ?? "statsink:9003",
        };
    }

    public string GatewayText() => Get("ConfigMap", Name("gateway")).Str("data", "gateway.yaml")!;

    public YamlMappingNode Deployment(string component) => Get("Deployment", Name(component));

    public static YamlNode PodSpec(YamlMappingNode deployment) => deployment.Map("spec", "template", "spec");

    public static IEnumerable<YamlNode> Containers(YamlMappingNode deployment, bool withInit = true) =>
        PodSpec(deployment).Seq("containers").Concat(withInit ? PodSpec(deployment).Seq("initContainers") : []);

    public static YamlNode Container(YamlMappingNode deployment, string name) =>
        Containers(deployment).Single(c => c.Str("name") == name);

    public static string? Env(YamlNode container, string name) =>
        container.Seq("env").SingleOrDefault(e => e.Str("name") == name)?.Str("value");

    /// <summary>The gateway file as the chart hands it to `legate render`.</summary>
    public YamlMappingNode GatewayFile() => Yaml.Parse(GatewayText());
}
