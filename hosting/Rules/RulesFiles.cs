using System.Security.Cryptography;
using System.Text;

namespace Legate.Hosting.Rules;

/// <summary>One rules file as read from disk.</summary>
public sealed record RulesFile(string Path, string Text);

/// <summary>
/// The rules files at a configured path: the file itself, or every <c>*.yaml</c> / <c>*.yml</c> file directly in a
/// directory, in ordinal name order. Hidden entries are skipped, which also skips the <c>..data</c> and timestamped
/// folders Kubernetes creates when it mounts a ConfigMap.
/// </summary>
public sealed class RulesFiles
{
    private RulesFiles(string root, IReadOnlyList<RulesFile> files, string fingerprint)
    {
        Root = root;
        Files = files;
        Fingerprint = fingerprint;
    }

    /// <summary>The configured path.</summary>
    public string Root { get; }

    /// <summary>The files read, in load order.</summary>
    public IReadOnlyList<RulesFile> Files { get; }

    /// <summary>A hash of names and contents: equal fingerprints mean there is nothing new to load.</summary>
    public string Fingerprint { get; }

    /// <summary>Reads the rules at <paramref name="path"/>.</summary>
    /// <exception cref="RulesException">The path does not exist, or the directory or a file cannot be read (<c>cannot read PATH: reason</c>).</exception>
    public static RulesFiles Read(string path)
    {
        string[] paths;
        if (File.Exists(path))
        {
            paths = [path];
        }
        else if (Directory.Exists(path))
        {
            try
            {
                paths = [.. Directory.EnumerateFiles(path)
                    .Where(p => !System.IO.Path.GetFileName(p).StartsWith('.')
                        && (p.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || p.EndsWith(".yml", StringComparison.OrdinalIgnoreCase)))
                    .Order(StringComparer.Ordinal)];
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw RulesException.CannotRead(path, e);
            }
            // Serving without rules would silently mean "no limits, no policies": say so instead.
            if (paths.Length == 0)
                throw new RulesException(path, null, null, null, "the directory has no *.yaml or *.yml files");
        }
        else
        {
            throw new RulesException(path, null, null, null, "no such file or directory");
        }

        var files = new List<RulesFile>(paths.Length);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in paths)
        {
            string text;
            try
            {
                text = File.ReadAllText(file, Encoding.UTF8);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw RulesException.CannotRead(file, e);
            }
            files.Add(new RulesFile(file, text));
            hash.AppendData(Encoding.UTF8.GetBytes(file));
            hash.AppendData([0]);
            hash.AppendData(Encoding.UTF8.GetBytes(text));
            hash.AppendData([0]);
        }
        return new RulesFiles(path, files, Convert.ToHexString(hash.GetHashAndReset()));
    }
}
