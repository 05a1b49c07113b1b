using Envoy.Service.Auth.V3;
using Google.Protobuf;

namespace Legate.Authz.Wire;

/// <summary>
/// A decision's <see cref="CheckResponse"/>, and its encoded form when the same answer is given again and again (an
/// allow kept for a repeated API key or token): gRPC then writes those bytes instead of serialising the response on
/// every call (≈ 1 µs for an allow with identity headers and dynamic metadata).
/// </summary>
public sealed class CheckAnswer
{
    private CheckAnswer(CheckResponse response, byte[]? encoded)
    {
        Response = response;
        Encoded = encoded;
    }

    public CheckResponse Response { get; }

    /// <summary>The response's encoding, for an answer kept and given again; null for an answer given once.</summary>
    public byte[]? Encoded { get; }

    /// <summary>An answer given once: serialised by gRPC as usual.</summary>
    public static CheckAnswer Once(CheckResponse response) => new(response ?? throw new ArgumentNullException(nameof(response)), null);

    /// <summary>An answer to keep and give again: encoded now; <paramref name="response"/> must never change afterwards.</summary>
    public static CheckAnswer Kept(CheckResponse response) => new(response ?? throw new ArgumentNullException(nameof(response)), response.ToByteArray());
}
