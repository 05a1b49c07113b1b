using System.Collections.Frozen;

namespace Legate.RateLimit.Config;

/// <summary>How a request entry found its rule at one level.</summary>
internal enum EntryMatch
{
    /// <summary>The rule's value equals the entry's value (a pattern taken literally counts too, as in the reference).</summary>
    Exact,

    /// <summary>The rule's value is a pattern the entry's value matches.</summary>
    Wildcard,

    /// <summary>The rule has no value: the default for any value of its key.</summary>
    Default,
}

/// <summary>
/// A config value with <c>*</c>s: each matches zero or more characters, the rest is anchored at both ends, e.g.
/// <c>foo*</c>, <c>bar*b</c>, <c>foo*bar*baz</c>.
/// </summary>
internal sealed class WildcardPattern
{
    private readonly string _prefix;
    private readonly string _suffix;
    private readonly string[] _middle;
    private readonly int _minLength;

    public WildcardPattern(string pattern)
    {
        var parts = pattern.Split('*');
        _prefix = parts[0];
        _suffix = parts[^1];
        _middle = parts[1..^1].Where(p => p.Length > 0).ToArray();
        _minLength = _prefix.Length + _suffix.Length + _middle.Sum(p => p.Length);
    }

    public static bool IsPattern(string value) => value.Contains('*', StringComparison.Ordinal);

    public bool IsMatch(string value)
    {
        if (value.Length < _minLength
            || !value.StartsWith(_prefix, StringComparison.Ordinal)
            || !value.EndsWith(_suffix, StringComparison.Ordinal))
            return false;
        // Leftmost placement of each middle part leaves the most room for the next, so a greedy scan is exact.
        var rest = value.AsSpan(_prefix.Length, value.Length - _prefix.Length - _suffix.Length);
        foreach (var part in _middle)
        {
            var at = rest.IndexOf(part, StringComparison.Ordinal);
            if (at < 0)
                return false;
            rest = rest[(at + part.Length)..];
        }
        return true;
    }
}

/// <summary>One config descriptor: a (key, value) node of the tree.</summary>
internal sealed class RuleNode(string key, string? value, string segment, RateLimitPolicy? policy, bool valueToMetric, bool shareThreshold)
{
    public string Key { get; } = key;

    /// <summary>The explicit value or pattern; null for a key-only default.</summary>
    public string? Value { get; } = value;

    /// <summary>This level's part of the rule path: <c>key_value</c>, <c>key_pattern</c> or <c>key</c>.</summary>
    public string Segment { get; } = segment;

    public RateLimitPolicy? Policy { get; } = policy;

    public bool ValueToMetric { get; } = valueToMetric;

    public bool ShareThreshold { get; } = shareThreshold;

    public WildcardPattern? Pattern { get; } = value is not null && WildcardPattern.IsPattern(value) ? new WildcardPattern(value) : null;

    /// <summary>The next level, or null when the node has no children.</summary>
    public RuleLevel? Children { get; init; }
}

/// <summary>The rules of one key at one level.</summary>
internal sealed class KeyRules(FrozenDictionary<string, RuleNode> exact, RuleNode[] wildcards, RuleNode? fallback)
{
    /// <summary>By value: explicit values and, as literal strings, patterns.</summary>
    public FrozenDictionary<string, RuleNode> Exact { get; } = exact;

    /// <summary>Patterns in file order; the first that matches wins.</summary>
    public RuleNode[] Wildcards { get; } = wildcards;

    /// <summary>The key-only rule.</summary>
    public RuleNode? Default { get; } = fallback;
}

/// <summary>One level of the tree, looked up by (key, value), never by a concatenated string.</summary>
internal sealed class RuleLevel(FrozenDictionary<string, KeyRules> byKey)
{
    public FrozenDictionary<string, KeyRules> ByKey { get; } = byKey;

    public RuleNode? Find(string key, string value, out EntryMatch how)
    {
        how = EntryMatch.Exact;
        if (!ByKey.TryGetValue(key, out var rules))
            return null;
        if (rules.Exact.TryGetValue(value, out var node))
            return node;
        var wildcards = rules.Wildcards;
        for (var i = 0; i < wildcards.Length; i++)
        {
            if (wildcards[i].Pattern!.IsMatch(value))
            {
                how = EntryMatch.Wildcard;
                return wildcards[i];
            }
        }
        how = EntryMatch.Default;
        return rules.Default;
    }
}

/// <summary>A level while files are loaded; frozen into a <see cref="RuleLevel"/> at the end.</summary>
internal sealed class RuleLevelBuilder
{
    private readonly Dictionary<string, KeyBuilder> _byKey = new(StringComparer.Ordinal);

    /// <summary>Adds a node; false when the level already has one for that (key, value).</summary>
    public bool TryAdd(RuleNodeBuilder node)
    {
        if (!_byKey.TryGetValue(node.Key, out var rules))
            _byKey.Add(node.Key, rules = new KeyBuilder());
        if (node.Value is null)
        {
            if (rules.Default is not null)
                return false;
            rules.Default = node;
            return true;
        }
        if (!rules.Exact.TryAdd(node.Value, node))
            return false;
        if (WildcardPattern.IsPattern(node.Value))
            rules.Wildcards.Add(node);
        return true;
    }

    public RuleLevel? Build()
    {
        if (_byKey.Count == 0)
            return null;
        var byKey = new Dictionary<string, KeyRules>(_byKey.Count, StringComparer.Ordinal);
        foreach (var (key, rules) in _byKey)
        {
            var built = new Dictionary<RuleNodeBuilder, RuleNode>();
            var exact = new Dictionary<string, RuleNode>(rules.Exact.Count, StringComparer.Ordinal);
            foreach (var (value, node) in rules.Exact)
            {
                var frozen = node.Build();
                built.Add(node, frozen);
                exact.Add(value, frozen);
            }
            byKey.Add(key, new KeyRules(
                exact.ToFrozenDictionary(StringComparer.Ordinal),
                [.. rules.Wildcards.Select(w => built[w])],
                rules.Default?.Build()));
        }
        return new RuleLevel(byKey.ToFrozenDictionary(StringComparer.Ordinal));
    }

    private sealed class KeyBuilder
    {
        public Dictionary<string, RuleNodeBuilder> Exact { get; } = new(StringComparer.Ordinal);

        public List<RuleNodeBuilder> Wildcards { get; } = [];

        public RuleNodeBuilder? Default { get; set; }
    }
}

internal sealed class RuleNodeBuilder(string key, string? value, string segment, RateLimitPolicy? policy, bool valueToMetric, bool shareThreshold)
{
    public string Key { get; } = key;

    public string? Value { get; } = value;

    public RuleLevelBuilder Children { get; } = new();

    public RuleNode Build() => new(Key, Value, segment, policy, valueToMetric, shareThreshold) { Children = Children.Build() };
}
