using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Legate.Hosting.Rules;

/// <summary>
/// Checks a YAML event stream as it is read, before YamlDotNet builds nodes or objects from it, and stops at the
/// first event that would make a reader loop or recurse without limit:
/// <list type="bullet">
/// <item>an alias inside the node it names (<c>a: &amp;x [*x]</c>): YamlDotNet resolves an alias to the anchored node
/// object itself, so this makes a cyclic node graph, and a loader walking it recurses until the stack overflows,
/// which no catch can stop;</item>
/// <item>an alias to an anchor not defined before it: YamlDotNet resolves those at the end of the document, to the
/// last node with that name, which can close a cycle too (YAML itself forbids forward aliases);</item>
/// <item>aliases that expand to more than <see cref="MaxAliasedNodes"/> nodes ("billion laughs": the node graph stays
/// small, but a loader that copies what it walks does not);</item>
/// <item>nesting deeper than <see cref="MaxDepth"/> levels, counting what aliases bring in: YamlDotNet and the loaders
/// recurse once a level.</item>
/// </list>
/// Errors are <see cref="YamlException"/>s at the offending event, so they name its line and column like a syntax error.
/// </summary>
internal sealed class YamlGuard(IParser inner) : IParser
{
    /// <summary>Deepest nesting of mappings and lists; rules files need a dozen levels.</summary>
    public const int MaxDepth = 100;

    /// <summary>Most nodes that aliases may add to a file, counting each alias as the size of what it names.</summary>
    public const int MaxAliasedNodes = 100_000;

    private readonly Dictionary<string, Anchor> _anchors = new(StringComparer.Ordinal);
    private readonly Stack<Frame> _open = new();
    private long _nodes;
    private long _aliased;

    public ParsingEvent Current => inner.Current!;

    public bool MoveNext()
    {
        if (!inner.MoveNext())
            return false;
        Check(inner.Current!);
        return true;
    }

    private void Check(ParsingEvent e)
    {
        switch (e)
        {
            case DocumentStart:
                // Anchors are scoped to their document.
                _anchors.Clear();
                _open.Clear();
                break;
            case Scalar scalar:
                _nodes++;
                if (!scalar.Anchor.IsEmpty)
                {
                    var named = new Anchor(scalar.Start);
                    named.Close(size: 1, height: 0);
                    _anchors[scalar.Anchor.Value] = named;
                }
                Child(0);
                break;
            case NodeEvent start and (SequenceStart or MappingStart):
                if (_open.Count >= MaxDepth)
                    throw Error(e, string.Create(CultureInfo.InvariantCulture, $"nesting is deeper than {MaxDepth} levels"));
                Anchor? anchor = null;
                if (!start.Anchor.IsEmpty)
                    _anchors[start.Anchor.Value] = anchor = new Anchor(start.Start);
                _open.Push(new Frame(anchor, _nodes));
                _nodes++;
                break;
            case SequenceEnd or MappingEnd:
                var frame = _open.Pop();
                frame.Anchor?.Close(_nodes - frame.NodesBefore, frame.Height + 1);
                Child(frame.Height + 1);
                break;
            case AnchorAlias alias:
                Alias(alias);
                break;
        }
    }

    private void Alias(AnchorAlias alias)
    {
        var name = alias.Value.Value;
        if (!_anchors.TryGetValue(name, out var target))
            throw Error(alias, $"alias *{name} names no anchor &{name} before it");
        if (target.Open)
        {
            throw Error(alias, string.Create(CultureInfo.InvariantCulture,
                $"alias *{name} is inside the node it names (&{name} at line {target.Start.Line}), which makes a cycle"));
        }
        _aliased += target.Size;
        if (_aliased > MaxAliasedNodes)
            throw Error(alias, string.Create(CultureInfo.InvariantCulture, $"aliases expand to more than {MaxAliasedNodes} nodes"));
        if (_open.Count + target.Height > MaxDepth)
            throw Error(alias, string.Create(CultureInfo.InvariantCulture, $"alias *{name} makes nesting deeper than {MaxDepth} levels"));
        _nodes += target.Size;
        Child(target.Height);
    }

    // A finished child raises the height of the collection it is in.
    private void Child(int height)
    {
        if (_open.TryPeek(out var parent) && height > parent.Height)
            parent.Height = height;
    }

    private static YamlException Error(ParsingEvent e, string problem) => new(e.Start, e.End, problem);

    /// <summary>A node with an anchor: its size counts the nodes its aliases bring in; open until its end event.</summary>
    private sealed class Anchor(Mark start)
    {
        public Mark Start { get; } = start;

        public bool Open { get; private set; } = true;

        public long Size { get; private set; }

        public int Height { get; private set; }

        public void Close(long size, int height)
        {
            Size = size;
            Height = height;
            Open = false;
        }
    }

    private sealed class Frame(Anchor? anchor, long nodesBefore)
    {
        public Anchor? Anchor { get; } = anchor;

        public long NodesBefore { get; } = nodesBefore;

        public int Height { get; set; }
    }
}
