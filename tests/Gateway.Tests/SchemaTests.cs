using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Legate.Gateway.Loading;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Legate.Gateway.Tests;

/// <summary>The published JSON Schema (editor completion) accepts the example and agrees with the loader on field names.</summary>
public sealed class SchemaTests
{
    private static readonly string SchemaPath = Path.Combine(Legate.Testing.RepoPaths.Root, "gateway", "schema", "gateway.schema.json");

    private static EvaluationResults Evaluate(string yamlPath)
    {
        var schema = JsonSchema.FromText(File.ReadAllText(SchemaPath));
        var stream = new YamlStream();
        using (var reader = new StreamReader(yamlPath))
            stream.Load(reader);
        var json = ToJson(stream.Documents[0].RootNode);
        using var document = JsonDocument.Parse(json!.ToJsonString());
        return schema.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
    }

    private static string Describe(EvaluationResults results)
        => string.Join('\n', (results.Details ?? []).Where(d => d.Errors is { Count: > 0 }).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")));

    [Fact]
    public void Example_ValidatesAgainstTheSchema()
    {
        var results = Evaluate(GatewayFiles.Example);

        Assert.True(results.IsValid, Describe(results));
    }

    [Fact]
    public void Example_NamesTheSchemaForEditors()
    {
        var first = File.ReadLines(GatewayFiles.Example).First();

        Assert.Equal("# yaml-language-server: $schema=../../gateway/schema/gateway.schema.json", first);
        Assert.True(File.Exists(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(GatewayFiles.Example)!, "../../gateway/schema/gateway.schema.json"))));
    }

    [Fact]
    public void Schema_RejectsAnUnknownField()
    {
        using var dir = GatewayFiles.Write(GatewayFiles.Minimal.Replace("backend: api }", "backend: api, retry: 3 }", StringComparison.Ordinal));

        var results = Evaluate(dir.File("gateway.yaml"));

        Assert.False(results.IsValid);
        Assert.Contains("/routes/0", Describe(results), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/c/tls.crt", true)]
    [InlineData("certs/tls.crt", false)]
    [InlineData("/c/", false)]
    public void Schema_AgreesWithTheLoader_OnListenerTlsPaths(string certFile, bool valid)
    {
        var yaml = GatewayFiles.Minimal + $"\nlisteners:\n  - {{ name: https, port: 8443, tls: {{ certificates: [{{ cert_file: {certFile}, key_file: /c/tls.key }}] }} }}\n";
        using var dir = GatewayFiles.Write(yaml);

        var results = Evaluate(dir.File("gateway.yaml"));

        Assert.Equal(valid, GatewayFiles.Errors(yaml).Count == 0);
        Assert.True(valid == results.IsValid, Describe(results));
    }

    [Theory]
    [InlineData("plan", true)]
    [InlineData("https://acme.example/plan", true)]
    [InlineData("[app_metadata, plan]", true)]
    [InlineData("[]", false)]
    [InlineData("[a, b, c, d, e, f, g, h, i]", false)]
    [InlineData("{app_metadata: plan}", false)]
    [InlineData("''", false)]
    public void Schema_AgreesWithTheLoader_OnPlanClaims(string planClaim, bool valid)
    {
        var yaml = GatewayFiles.Minimal.Replace("acme: { hosts: [api.acme.example] }", "acme: { hosts: [api.acme.example], jwt: [idp] }", StringComparison.Ordinal)
            + $"\njwt_providers:\n  idp: {{ issuer: https://idp.example, audiences: [api], algorithms: [RS256], jwks_uri: https://idp.example/jwks, plan_claim: {planClaim} }}\n";
        using var dir = GatewayFiles.Write(yaml);

        var results = Evaluate(dir.File("gateway.yaml"));

        Assert.Equal(valid, GatewayFiles.Errors(yaml).Count == 0);
        Assert.True(valid == results.IsValid, Describe(results));
    }

    [Theory]
    [InlineData("tls: { ca_file: /c/ca.crt, cert_file: /c/tls.crt, key_file: /c/tls.key }", true)]
    [InlineData("tls: { ca_file: /c/ca.crt }", true)]
    [InlineData("tls: { ca_file: /c/ca.crt }, authz: { sni: authz.legate.svc }", true)]
    [InlineData("tls: { cert_file: /c/tls.crt, key_file: /c/tls.key }", false)]
    [InlineData("tls: { ca_file: /c/ca.crt, cert_file: /c/tls.crt }", false)]
    [InlineData("tls: { ca_file: /c/ca.crt, key_file: /c/tls.key }", false)]
    [InlineData("tls: { ca_file: ca.crt }", false)]
    [InlineData("tls: { ca_file: /c/ }", false)]
    [InlineData("tls: { ca_file: /c/ca.crt }, authz: { sni: 10.0.0.7 }", false)]
    [InlineData("tls: { ca_file: /c/ca.crt }, authz: { sni: \"authz:9001\" }", false)]
    public void Schema_AgreesWithTheLoader_OnServicesTls(string services, bool valid)
    {
        var yaml = GatewayFiles.Minimal + $"\nservices: {{ {services} }}\n";
        using var dir = GatewayFiles.Write(yaml);

        var results = Evaluate(dir.File("gateway.yaml"));

        Assert.Equal(valid, GatewayFiles.Errors(yaml).Count == 0);
        Assert.True(valid == results.IsValid, Describe(results));
    }

    [Fact]
    public void SchemaAndLoader_AcceptTheSameFieldNames()
    {
        var schema = JsonNode.Parse(File.ReadAllText(SchemaPath))!;
        var definitions = schema["$defs"]!.AsObject();
        var schemaSections = new Dictionary<string, string[]>(StringComparer.Ordinal)
        {
            [""] = [.. schema["properties"]!.AsObject().Select(p => p.Key)],
        };
        foreach (var (name, definition) in definitions)
        {
            if (definition?["properties"] is JsonObject properties)
                schemaSections[name] = [.. properties.Select(p => p.Key)];
            Assert.False(definition?["additionalProperties"]?.GetValue<bool>() ?? false, $"$defs.{name} must not allow unknown fields");
        }

        Assert.Equal(GatewayFields.BySchemaDefinition.Keys.Order(StringComparer.Ordinal), schemaSections.Keys.Order(StringComparer.Ordinal));
        foreach (var (section, fields) in GatewayFields.BySchemaDefinition)
            Assert.Equal(fields.Order(StringComparer.Ordinal), schemaSections[section].Order(StringComparer.Ordinal));
    }

    /// <summary>YAML as JSON with YAML 1.2 core-schema scalar types (plain true/false, integers, null; the rest text).</summary>
    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode { Style: ScalarStyle.Plain } s when s.Value is "true" or "false" => JsonValue.Create(s.Value == "true"),
        YamlScalarNode { Style: ScalarStyle.Plain } s when s.Value is null or "" or "~" or "null" => null,
        YamlScalarNode { Style: ScalarStyle.Plain } s when long.TryParse(s.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) => JsonValue.Create(n),
        YamlScalarNode s => JsonValue.Create(s.Value),
        _ => null,
    };
}
