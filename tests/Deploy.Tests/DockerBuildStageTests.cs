using Legate.Testing;

namespace Legate.Deploy.Tests;

/// <summary>
/// Without a Docker engine the images cannot be built, but their build stage can be replayed: the files the
/// Dockerfile copies (less .dockerignore) go into a temporary folder and its RUN commands run there, with /app and
/// /out mapped to temporary folders. What breaks `docker build` in the SDK stage (a missing project, a publish
/// error) breaks this test. The base images and the runtime stage are checked by <see cref="DockerfileTests"/>.
/// </summary>
public sealed class DockerBuildStageTests
{
    [Theory]
    [InlineData("authz", "legate-authz")]
    [InlineData("ratelimit", "legate-ratelimit")]
    [InlineData("statsink", "legate-statsink")]
    [InlineData("legate", "legate")]
    public async Task BuildStage_PublishesTheEntryAssembly(string name, string assembly)
    {
        var stage = Dockerfile.Load(Path.Combine(RepoPaths.Root, "deploy", "docker", name + ".Dockerfile")).Stages[0];
        var work = Directory.CreateTempSubdirectory($"legate-docker-{name}-").FullName;
        try
        {
            var src = Path.Combine(work, "src");
            Directory.CreateDirectory(src);
            Assert.Equal("/src", stage.Last("WORKDIR"));
            foreach (var copy in stage.All("COPY"))
            {
                var parts = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var destination = Path.GetFullPath(Path.Combine(src, parts[^1]));
                foreach (var source in parts[..^1])
                    CopyIntoContext(source, destination, parts.Length == 2 && !parts[^1].EndsWith('/') && parts[^1] != ".");
            }
            foreach (var run in stage.All("RUN"))
            {
                var command = run.Replace(" /app", " " + Path.Combine(work, "app"), StringComparison.Ordinal)
                                 .Replace(" /out", " " + Path.Combine(work, "out"), StringComparison.Ordinal);
                var (exitCode, stdout, stderr) = await DeployTools.RunAsync("bash", ["-c", command], src);
                Assert.True(exitCode == 0, $"RUN {run}\n{stdout}{stderr}");
            }

            // What the runtime stage's ENTRYPOINT starts.
            Assert.True(File.Exists(Path.Combine(work, "app", assembly + ".dll")), $"{assembly}.dll was not published");
            Assert.True(File.Exists(Path.Combine(work, "app", assembly + ".runtimeconfig.json")));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Copies a COPY source from the repository into the context folder, leaving out what .dockerignore does.</summary>
    private static void CopyIntoContext(string source, string destination, bool destinationIsFile)
    {
        var from = Path.GetFullPath(Path.Combine(RepoPaths.Root, source));
        if (File.Exists(from))
        {
            var target = destinationIsFile ? destination : Path.Combine(destination, Path.GetFileName(from));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(from, target, overwrite: true);
            return;
        }
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(RepoPaths.Root, file);
            if (Ignored(relative))
                continue;
            var target = Path.Combine(destination, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }

    /// <summary>The root .dockerignore's folder patterns (<c>name/</c> at the top, <c>**/name/</c> anywhere).</summary>
    private static bool Ignored(string relative)
    {
        var segments = relative.Split(Path.DirectorySeparatorChar);
        foreach (var line in File.ReadAllLines(Path.Combine(RepoPaths.Root, ".dockerignore")))
        {
            var pattern = line.Trim();
            if (pattern.Length == 0 || pattern.StartsWith('#'))
                continue;
            var folder = pattern.TrimEnd('/');
            if (folder.StartsWith("**/", StringComparison.Ordinal))
            {
                if (segments.AsSpan(0, segments.Length - 1).Contains(folder[3..]))
                    return true;
            }
            else if (string.Join('/', segments).StartsWith(folder + "/", StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }
}
