namespace Legate.Testing;

/// <summary>Where things are in the repository and beside it, found from the test binary's folder.</summary>
public static class RepoPaths
{
    /// <summary>The repository root (the folder holding <c>Services.sln</c>).</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The <c>shared/</c> folder beside the repository, or null where there is none.</summary>
    public static string? Shared
    {
        get
        {
            var shared = Path.GetFullPath(Path.Combine(Root, "..", "shared"));
            return Directory.Exists(shared) ? shared : null;
        }
    }

    /// <summary>The build configuration the tests were built in (Debug or Release), so they run the services built alongside.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";

    /// <summary>The built entry assembly of a service, e.g. <c>Service("authz", "legate-authz")</c>.</summary>
    public static string ServiceAssembly(string folder, string assemblyName) =>
        Path.Combine(Root, folder, "bin", Configuration, "net10.0", assemblyName + ".dll");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Services.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"No Services.sln above {AppContext.BaseDirectory}.");
    }
}
