using Legate.Testing;

namespace Legate.RateLimit.Tests.Stores;

/// <summary>
/// Local <c>redis-server</c> processes that belong together (a cluster, a primary with its replica and sentinel) and
/// the temporary folder they write to; disposing kills every one and deletes the folder.
/// </summary>
internal sealed class RedisProcessGroup : IDisposable
{
    private readonly List<RedisServerProcess> _processes = [];

    public RedisProcessGroup(string name) => Directory = System.IO.Directory.CreateTempSubdirectory($"legate-{name}-").FullName;

    /// <summary>The group's folder: configuration files, cluster node files.</summary>
    public string Directory { get; }

    public IReadOnlyList<RedisServerProcess> Processes => _processes;

    /// <summary>Starts <paramref name="process"/> as a member of the group (killed with it, even if it fails to start).</summary>
    public async Task<RedisServerProcess> StartAsync(RedisServerProcess process, CancellationToken cancellationToken)
    {
        _processes.Add(process);
        await process.StartAsync(cancellationToken);
        return process;
    }

    public void Dispose()
    {
        foreach (var process in _processes)
            process.Dispose();
        _processes.Clear();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A process that had not quite exited may still hold a file: the OS cleans temp folders anyway.
        }
    }
}
