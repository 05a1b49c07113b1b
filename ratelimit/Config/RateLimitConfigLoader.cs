using System.Collections.Frozen;
using System.Collections.ObjectModel;
using System.Globalization;
using Legate.Hosting.Rules;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Legate.RateLimit.Config;

/// <summary>
/// Loads envoyproxy/ratelimit YAML files: per file (per YAML document) a <c>domain</c> and its <c>descriptors</c>.
/// Validation follows the reference, with its messages (<c>invalid rate limit unit 'foo'</c>,
/// <c>config error, unknown key 'ratelimit'</c>...), and every error names the file, line, column and field.
/// Every file is checked for structure (keys, value types) before any is loaded, as the reference does.
/// </summary>
/// <param name="mergeDomains">
/// The reference's <c>MERGE_DOMAIN_CONFIG</c>: files that share a domain add their descriptors to it (a descriptor
/// defined twice is still an error). Off, a domain in two files is an error.
/// </param>
public sealed class RateLimitConfigLoader(bool mergeDomains = false) : IRulesLoader<RateLimitConfig>
{
    private static readonly FrozenSet<string> RootKeys = FrozenSet.Create(StringComparer.Ordinal, "domain", "descriptors");

    private static readonly FrozenSet<string> DescriptorKeys = FrozenSet.Create(StringComparer.Ordinal,
        "key", "value", "rate_limit", "descriptors", "shadow_mode", "quota_mode", "detailed_metric", "value_to_metric", "share_threshold", "metadata");

    // "algorithm" is Legate's; the rest are the reference's.
    private static readonly FrozenSet<string> RateLimitKeys = FrozenSet.Create(StringComparer.Ordinal,
        "unit", "requests_per_unit", "unlimited", "name", "replaces", "algorithm");

    private static readonly FrozenSet<string> ReplacesKeys = FrozenSet.Create(StringComparer.Ordinal, "name");

    /// <summary>Whether files that share a domain are merged.</summary>
    public bool MergeDomains { get; } = mergeDomains;

    /// <inheritdoc/>
    public RateLimitConfig Load(RulesFiles files)
    {
        ArgumentNullException.ThrowIfNull(files);
        return Load(files.Files);
    }

    /// <summary>Loads files in the order given.</summary>
    /// <exception cref="RulesException">A file is not valid.</exception>
    public RateLimitConfig Load(IEnumerable<RulesFile> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var documents = new List<DomainDocument>();
        foreach (var file in files)
            Parse(file, documents);

        var order = new List<string>();
        var domains = new Dictionary<string, RuleLevelBuilder>(StringComparer.Ordinal);
        var policies = new List<RateLimitPolicy>();
        foreach (var document in documents)
        {
            var file = document.File;
            var domain = document.Domain;
            if (domain.Length == 0)
                throw YamlRules.Error(file, document.DomainNode ?? document.Node, "domain", "config file cannot have empty domain");
            if (domains.TryGetValue(domain, out var level))
            {
                if (!MergeDomains)
                    throw YamlRules.Error(file, document.DomainNode, "domain", $"duplicate domain '{domain}' in config file");
            }
            else
            {
                domains.Add(domain, level = new RuleLevelBuilder());
                order.Add(domain);
            }
            AddDescriptors(file, domain, "", level, document.Descriptors, policies);
        }

        var trees = new Dictionary<string, RuleLevel?>(domains.Count, StringComparer.Ordinal);
        foreach (var (domain, level) in domains)
            trees.Add(domain, level.Build());
        return new RateLimitConfig(order.AsReadOnly(), trees.ToFrozenDictionary(StringComparer.Ordinal), policies.AsReadOnly());
    }

    // Semantic checks, in the reference's order: key, duplicate, rate_limit (unit, replaces), share_threshold, children.
    private static void AddDescriptors(RulesFile file, string domain, string parentPath, RuleLevelBuilder level, List<Descriptor> descriptors, List<RateLimitPolicy> policies)
    {
        foreach (var d in descriptors)
        {
            if (d.Key.Length == 0)
                throw YamlRules.Error(file, d.KeyNode ?? d.Node, d.Path + ".key", "descriptor has empty key");
            // An empty value is no value: the rule is the key's default, as in the reference.
            var value = d.Value.Length == 0 ? null : d.Value;
            var segment = value is null ? d.Key : d.Key + "_" + value;
            var rulePath = parentPath.Length == 0 ? segment : parentPath + "." + segment;

            RateLimitPolicy? policy = null;
            if (d.RateLimit is { } rl)
            {
                var validUnit = LimitUnitExtensions.TryParse(rl.Unit, out var unit);
                if (rl.Unlimited)
                {
                    if (validUnit)
                        throw YamlRules.Error(file, rl.UnitNode, d.Path + ".rate_limit.unit", "should not specify rate limit unit when unlimited");
                }
                else if (!validUnit)
                {
                    throw YamlRules.Error(file, rl.UnitNode ?? rl.KeyNode, d.Path + ".rate_limit.unit", $"invalid rate limit unit '{rl.Unit}'");
                }
                for (var i = 0; i < rl.Replaces.Count; i++)
                {
                    var (name, node) = rl.Replaces[i];
                    var field = string.Create(CultureInfo.InvariantCulture, $"{d.Path}.rate_limit.replaces[{i}].name");
                    if (name.Length == 0)
                        throw YamlRules.Error(file, node, field, "should not have an empty replaces entry");
                    if (name == rl.Name)
                        throw YamlRules.Error(file, node, field, "replaces should not contain name of same descriptor");
                }
                policy = new RateLimitPolicy(domain, rulePath, unit, rl.RequestsPerUnit, rl.Name, rl.Unlimited,
                    [.. rl.Replaces.Select(r => r.Name)], d.ShadowMode, d.QuotaMode, rl.Algorithm, d.DetailedMetric, d.Metadata);
            }

            if (d.ShareThreshold && (value is null || !WildcardPattern.IsPattern(value)))
            {
                throw YamlRules.Error(file, d.ShareThresholdNode, d.Path + ".share_threshold",
                    $"share_threshold can only be used with wildcard values (containing '*'), but found key '{segment}'");
            }

            var builder = new RuleNodeBuilder(d.Key, value, segment, policy, d.ValueToMetric, d.ShareThreshold);
            if (!level.TryAdd(builder))
                throw YamlRules.Error(file, d.Node, d.Path, $"duplicate descriptor composite key '{domain}.{rulePath}'");
            if (policy is not null)
                policies.Add(policy);
            AddDescriptors(file, domain, rulePath, builder.Children, d.Children, policies);
        }
    }

    // ---- Structure: what the reference checks before loading (key whitelist, value types, float leaves). ----

    private static void Parse(RulesFile file, List<DomainDocument> documents)
    {
        ArgumentNullException.ThrowIfNull(file);
        YamlStream stream;
        try
        {
            stream = YamlRules.Parse(file);
        }
        catch (RulesException e)
        {
            throw new RulesException(e.File, e.Line, e.Column, e.Field, "error loading config file: " + e.Problem);
        }
        var reader = new Reader(file);
        var loaded = documents.Count;
        foreach (var document in stream.Documents)
        {
            // An empty document between '---' markers has nothing to load.
            if (document.RootNode is YamlScalarNode scalar && YamlScalars.Resolve(scalar).Kind == ScalarKind.Null)
                continue;
            documents.Add(reader.Document(document.RootNode));
        }
        // A file with no domain at all is refused, as the reference refuses it: a file caught half-written (truncated,
        // not yet written again) then keeps the last good rules, where loading nothing would drop its domain's limits.
        if (documents.Count == loaded)
            throw new RulesException(file.Path, null, null, "domain", "config file cannot have empty domain (the file holds no document)");
    }

    private sealed record DomainDocument(RulesFile File, YamlNode Node, string Domain, YamlNode? DomainNode, List<Descriptor> Descriptors);

    private sealed class Descriptor(YamlMappingNode node, string path)
    {
        public YamlMappingNode Node { get; } = node;

        public string Path { get; } = path;

        public string Key { get; set; } = "";

        public YamlNode? KeyNode { get; set; }

        public string Value { get; set; } = "";

        public RateLimitSpec? RateLimit { get; set; }

        public List<Descriptor> Children { get; set; } = [];

        public bool ShadowMode { get; set; }

        public bool QuotaMode { get; set; }

        public bool DetailedMetric { get; set; }

        public bool ValueToMetric { get; set; }

        public bool ShareThreshold { get; set; }

        public YamlNode? ShareThresholdNode { get; set; }

        public IReadOnlyDictionary<string, object?>? Metadata { get; set; }
    }

    private sealed class RateLimitSpec(YamlNode keyNode)
    {
        /// <summary>The <c>rate_limit</c> key, where errors about missing fields point.</summary>
        public YamlNode KeyNode { get; } = keyNode;

        public string Unit { get; set; } = "";

        public YamlNode? UnitNode { get; set; }

        public uint RequestsPerUnit { get; set; }

        public bool Unlimited { get; set; }

        public string Name { get; set; } = "";

        public List<(string Name, YamlNode Node)> Replaces { get; } = [];

        public LimitAlgorithm Algorithm { get; set; }
    }

    /// <summary>Reads one file's nodes into the model above, throwing at the first structural error.</summary>
    private sealed class Reader(RulesFile file)
    {
        public DomainDocument Document(YamlNode root)
        {
            if (root is not YamlMappingNode map)
                throw Error(root, "", $"error loading config file: expected a mapping with 'domain' and 'descriptors', found {Describe(root)}");
            var domain = "";
            YamlNode? domainNode = null;
            List<Descriptor> descriptors = [];
            foreach (var (keyNode, valueNode) in Entries(map, ""))
            {
                switch (Key(keyNode, "", RootKeys))
                {
                    case "domain":
                        domain = String(valueNode, "domain");
                        domainNode = valueNode;
                        break;
                    default:
                        descriptors = Descriptors(valueNode, "descriptors");
                        break;
                }
            }
            return new DomainDocument(file, root, domain, domainNode, descriptors);
        }

        private List<Descriptor> Descriptors(YamlNode node, string path)
        {
            var items = List(node, path);
            var descriptors = new List<Descriptor>(items.Count);
            for (var i = 0; i < items.Count; i++)
                descriptors.Add(Descriptor(items[i], string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]")));
            return descriptors;
        }

        private Descriptor Descriptor(YamlMappingNode map, string path)
        {
            var d = new Descriptor(map, path);
            foreach (var (keyNode, valueNode) in Entries(map, path))
            {
                var key = Key(keyNode, path, DescriptorKeys);
                var field = path + "." + key;
                switch (key)
                {
                    case "key":
                        d.Key = String(valueNode, field);
                        d.KeyNode = valueNode;
                        break;
                    case "value":
                        d.Value = String(valueNode, field);
                        break;
                    case "rate_limit":
                        d.RateLimit = RateLimit(keyNode, valueNode, field, d.RateLimit);
                        break;
                    case "descriptors":
                        d.Children = Descriptors(valueNode, field);
                        break;
                    case "shadow_mode":
                        d.ShadowMode = Bool(valueNode, field);
                        break;
                    case "quota_mode":
                        d.QuotaMode = Bool(valueNode, field);
                        break;
                    case "detailed_metric":
                        d.DetailedMetric = Bool(valueNode, field);
                        break;
                    case "value_to_metric":
                        d.ValueToMetric = Bool(valueNode, field);
                        break;
                    case "share_threshold":
                        d.ShareThreshold = Bool(valueNode, field);
                        d.ShareThresholdNode = valueNode;
                        break;
                    default:
                        d.Metadata = Metadata(valueNode, field);
                        break;
                }
            }
            return d;
        }

        // A rate_limit after another (one of them merged) adds to it field by field, as go-yaml v2 decodes into the
        // struct the pointer already holds; only null clears it.
        private RateLimitSpec? RateLimit(YamlNode keyNode, YamlNode node, string path, RateLimitSpec? earlier)
        {
            // "rate_limit:" with nothing after it is no rate limit, as in the reference.
            if (IsNull(node))
                return null;
            if (node is not YamlMappingNode map)
                throw Error(node, path, $"error loading config file: expected a mapping, found {Describe(node)}");
            var rl = earlier ?? new RateLimitSpec(keyNode);
            foreach (var (k, valueNode) in Entries(map, path))
            {
                var key = Key(k, path, RateLimitKeys);
                var field = path + "." + key;
                switch (key)
                {
                    case "unit":
                        rl.Unit = String(valueNode, field);
                        rl.UnitNode = valueNode;
                        break;
                    case "requests_per_unit":
                        rl.RequestsPerUnit = UInt32(valueNode, field);
                        break;
                    case "unlimited":
                        rl.Unlimited = Bool(valueNode, field);
                        break;
                    case "name":
                        rl.Name = String(valueNode, field);
                        break;
                    case "replaces":
                        // A list is made anew each time it is decoded.
                        rl.Replaces.Clear();
                        var items = List(valueNode, field);
                        for (var i = 0; i < items.Count; i++)
                        {
                            var itemPath = string.Create(CultureInfo.InvariantCulture, $"{field}[{i}]");
                            var name = "";
                            YamlNode nameNode = items[i];
                            foreach (var (rk, rv) in Entries(items[i], itemPath))
                            {
                                Key(rk, itemPath, ReplacesKeys);
                                name = String(rv, itemPath + ".name");
                                nameNode = rv;
                            }
                            rl.Replaces.Add((name, nameNode));
                        }
                        break;
                    default:
                        var algorithm = String(valueNode, field);
                        if (!LimitAlgorithmExtensions.TryParse(algorithm, out var parsed))
                            throw Error(valueNode, field, $"invalid rate limit algorithm '{algorithm}', expected 'fixed_window' or 'sliding_window'");
                        rl.Algorithm = parsed;
                        break;
                }
            }
            return rl;
        }

        /// <summary>
        /// A mapping's entries in the order go-yaml v2 (the reference's reader) decodes them, merge keys applied:
        /// <c>&lt;&lt;: *name</c> (or a list of mappings, last to first) stands for the merged mapping's entries, so a key
        /// may come more than once. Callers apply entries in order, as v2 does: a key after a merge overrides a merged
        /// one, one before it is overridden, and of a list the first mapping wins; every entry is still validated, as
        /// v2 reports a type error in an overridden value too. A plain mapping's entries are its children, once each.
        /// </summary>
        private List<KeyValuePair<YamlNode, YamlNode>> Entries(YamlMappingNode map, string path)
        {
            var entries = new List<KeyValuePair<YamlNode, YamlNode>>(map.Children.Count);
            Apply(map, path, entries);
            return entries;
        }

        private void Apply(YamlMappingNode map, string path, List<KeyValuePair<YamlNode, YamlNode>> entries)
        {
            foreach (var entry in map.Children)
            {
                if (!IsMergeKey(entry.Key))
                {
                    entries.Add(entry);
                    continue;
                }
                var field = path.Length == 0 ? "<<" : path + ".<<";
                switch (entry.Value)
                {
                    case YamlMappingNode merged:
                        Apply(merged, path, entries);
                        break;
                    case YamlSequenceNode list:
                        // Applied last to first, so that the first mapping's entries are the ones left.
                        for (var i = list.Children.Count - 1; i >= 0; i--)
                        {
                            if (list.Children[i] is not YamlMappingNode item)
                                throw Error(list.Children[i], string.Create(CultureInfo.InvariantCulture, $"{field}[{i}]"), NotAMerge(list.Children[i]));
                            Apply(item, path, entries);
                        }
                        break;
                    default:
                        throw Error(entry.Value, field, NotAMerge(entry.Value));
                }
            }
        }

        // As go-yaml v2: a plain (unquoted, untagged) << or one tagged !!merge.
        private static bool IsMergeKey(YamlNode node) =>
            node is YamlScalarNode { Value: "<<" } scalar
            && (scalar.Tag.IsEmpty ? scalar.Style is ScalarStyle.Plain or ScalarStyle.Any : scalar.Tag.Value == "tag:yaml.org,2002:merge");

        private static string NotAMerge(YamlNode node) =>
            $"error loading config file: a merge key (<<) takes a mapping or a list of mappings, found {Describe(node)}";

        /// <summary>A mapping key: a string from the whitelist.</summary>
        private string Key(YamlNode node, string path, FrozenSet<string> allowed)
        {
            if (node is not YamlScalarNode scalar)
                throw Error(node, path, $"config error, key is not of type string: {Describe(node)}");
            var resolved = YamlScalars.Resolve(scalar);
            if (resolved.Kind != ScalarKind.String)
                throw Error(node, path, $"config error, key is not of type string: {YamlScalars.Display(resolved)}");
            if (!allowed.Contains(resolved.Text))
                throw Error(node, path.Length == 0 ? resolved.Text : path + "." + resolved.Text, $"config error, unknown key '{resolved.Text}'");
            return resolved.Text;
        }

        /// <summary>A sequence of mappings; null is an empty list.</summary>
        private List<YamlMappingNode> List(YamlNode node, string path)
        {
            if (IsNull(node))
                return [];
            if (node is not YamlSequenceNode sequence)
                throw Error(node, path, $"error loading config file: expected a list, found {Describe(node)}");
            var items = new List<YamlMappingNode>(sequence.Children.Count);
            for (var i = 0; i < sequence.Children.Count; i++)
            {
                var item = sequence.Children[i];
                if (item is not YamlMappingNode map)
                {
                    throw Error(item, string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]"),
                        $"config error, yaml file contains list of type other than map: {GoValue(item)}");
                }
                items.Add(map);
            }
            return items;
        }

        /// <summary>A scalar leaf as the reference accepts it: a string, an integer, a boolean or null; never a float.</summary>
        private YamlScalars.Scalar Leaf(YamlNode node, string path, string expected)
        {
            if (node is YamlSequenceNode)
                List(node, path);
            if (node is not YamlScalarNode scalar)
                throw Error(node, path, $"error loading config file: expected {expected}, found {Describe(node)}");
            var resolved = YamlScalars.Resolve(scalar);
            if (resolved.Kind is ScalarKind.Float or ScalarKind.BigInt)
                throw Error(node, path, "error checking config");
            return resolved;
        }

        // Like the reference, a string field takes any leaf's text (key: 123 is "123") and null is "".
        private string String(YamlNode node, string path)
        {
            var scalar = Leaf(node, path, "a string");
            return scalar.Kind == ScalarKind.Null ? "" : scalar.Text;
        }

        private bool Bool(YamlNode node, string path)
        {
            var scalar = Leaf(node, path, "true or false");
            return scalar.Kind switch
            {
                ScalarKind.Bool => scalar.Bool,
                ScalarKind.Null => false,
                _ => throw Error(node, path, $"error loading config file: expected true or false, found '{scalar.Text}'"),
            };
        }

        private uint UInt32(YamlNode node, string path)
        {
            var scalar = Leaf(node, path, "a whole number");
            return scalar.Kind switch
            {
                ScalarKind.Int when scalar.Int is >= 0 and <= uint.MaxValue => (uint)scalar.Int,
                ScalarKind.Null => 0,
                _ => throw Error(node, path, $"error loading config file: expected a whole number from 0 to 4294967295, found '{scalar.Text}'"),
            };
        }

        // Free-form: not key-validated and floats allowed (the reference turns it into a protobuf Struct).
        private IReadOnlyDictionary<string, object?>? Metadata(YamlNode node, string path)
        {
            if (IsNull(node))
                return null;
            if (node is not YamlMappingNode)
                throw Error(node, path, $"error parsing metadata: expected a mapping, found {Describe(node)}");
            return (IReadOnlyDictionary<string, object?>?)Plain(node, path);
        }

        private object? Plain(YamlNode node, string path)
        {
            switch (node)
            {
                case YamlMappingNode map:
                    var values = new Dictionary<string, object?>(map.Children.Count, StringComparer.Ordinal);
                    foreach (var (k, v) in Entries(map, path))
                    {
                        if (k is not YamlScalarNode { Value: { } key })
                            throw Error(k, path, $"error parsing metadata: a key must be a string, found {Describe(k)}");
                        values[key] = Plain(v, path + "." + key);
                    }
                    return values.ToFrozenDictionary(StringComparer.Ordinal);
                case YamlSequenceNode sequence:
                    var items = new object?[sequence.Children.Count];
                    for (var i = 0; i < items.Length; i++)
                        items[i] = Plain(sequence.Children[i], string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]"));
                    return new ReadOnlyCollection<object?>(items);
                case YamlScalarNode scalar:
                    var resolved = YamlScalars.Resolve(scalar);
                    return resolved.Kind switch
                    {
                        ScalarKind.Null => null,
                        ScalarKind.Bool => resolved.Bool,
                        ScalarKind.Int => resolved.Int,
                        ScalarKind.BigInt or ScalarKind.Float => resolved.Float,
                        _ => resolved.Text,
                    };
                default:
                    throw Error(node, path, "error parsing metadata: unsupported value");
            }
        }

        private static bool IsNull(YamlNode node) => node is YamlScalarNode scalar && YamlScalars.Resolve(scalar).Kind == ScalarKind.Null;

        private static string Describe(YamlNode node) => node switch
        {
            YamlMappingNode => "a mapping",
            YamlSequenceNode => "a list",
            YamlScalarNode scalar => $"'{scalar.Value}'",
            _ => "a value",
        };

        // Go's %v of a decoded YAML value, for the reference's list message.
        private static string GoValue(YamlNode node) => node switch
        {
            YamlScalarNode scalar => YamlScalars.Display(YamlScalars.Resolve(scalar)),
            YamlSequenceNode sequence => "[" + string.Join(' ', sequence.Children.Select(GoValue)) + "]",
            _ => Describe(node),
        };

        private RulesException Error(YamlNode node, string field, string problem) => YamlRules.Error(file, node, field, problem);
    }
}
