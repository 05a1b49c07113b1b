using System.Net;
using System.Net.Sockets;

namespace Legate.Testing;

/// <summary>
/// A TCP server on 127.0.0.1 that accepts connections and never answers: a Redis that hangs. StackExchange.Redis's
/// connect to it waits its whole connectTimeout, unlike a closed port, whose refusal it may notice at once.
/// </summary>
public sealed class SilentServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly List<Socket> _accepted = [];
    private readonly CancellationTokenSource _stop = new();

    public SilentServer()
    {
        _listener.Start();
        _ = AcceptAsync();
    }

    /// <summary><c>127.0.0.1:port</c>.</summary>
    public string Endpoint => "127.0.0.1:" + ((IPEndPoint)_listener.LocalEndpoint).Port;

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                lock (_accepted)
                    _accepted.Add(socket);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_accepted)
        {
            foreach (var socket in _accepted)
                socket.Dispose();
        }
        _stop.Dispose();
    }
}
