using System.Net;
using System.Net.Sockets;

namespace Legate.Testing;

/// <summary>Free TCP ports on 127.0.0.1, for servers a test starts in another process.</summary>
public static class FreePort
{
    /// <summary>A port nothing listens on right now. Another process could take it before the test binds it; that race is rare and fails loudly.</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
