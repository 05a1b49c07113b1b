namespace Legate.Gateway.Render;

/// <summary>
/// Publishes rendered files into the output folder one by one, each atomically: written to a hidden temporary file in
/// the same folder, flushed, then renamed over the old one. Envoy's file watch reacts to the rename (not to in-place
/// writes), and no reader ever sees half a file. Files are published in the order given (clusters before listeners).
/// </summary>
internal static class OutputWriter
{
    public static void Write(string outputDir, IReadOnlyList<RenderedFile> files)
    {
        ArgumentNullException.ThrowIfNull(outputDir);
        ArgumentNullException.ThrowIfNull(files);
        foreach (var file in files)
        {
            var target = Path.Combine(outputDir, file.Path);
            var dir = Path.GetDirectoryName(target)!;
            Directory.CreateDirectory(dir);
            if (File.Exists(target) && File.ReadAllBytes(target).AsSpan().SequenceEqual(file.Content))
                continue;   // unchanged: no rename, so nothing reloads for nothing
            var temp = Path.Combine(dir, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
            try
            {
                using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
                {
                    stream.Write(file.Content);
                    stream.Flush(flushToDisk: true);
                }
                File.Move(temp, target, overwrite: true);
            }
            finally
            {
                File.Delete(temp);
            }
        }

        // A ratelimit file of a domain no longer rendered would keep its old rules in force. An SDS file of a listener
        // no longer rendered is named by nothing once the new listeners are published (above): tidied away too.
        RemoveStale(outputDir, "ratelimit", files);
        RemoveStale(outputDir, "envoy/sds", files);
    }

    private static void RemoveStale(string outputDir, string folder, IReadOnlyList<RenderedFile> files)
    {
        var dir = Path.Combine(outputDir, folder);
        if (!Directory.Exists(dir))
            return;
        var keep = files.Where(f => f.Path.StartsWith(folder + "/", StringComparison.Ordinal)).Select(f => Path.GetFileName(f.Path)).ToHashSet(StringComparer.Ordinal);
        foreach (var stale in Directory.EnumerateFiles(dir, "*.yaml").Where(p => !keep.Contains(Path.GetFileName(p))))
            File.Delete(stale);
    }
}
