namespace Legate.Hosting.Wire;

/// <summary>The protobuf wire format's varints, for marshallers that write an answer without the generated message.</summary>
public static class WireWriter
{
    /// <summary>The most bytes a varint takes.</summary>
    public const int MaxVarintLength = 10;

    /// <summary>How many bytes <paramref name="value"/> takes as a varint.</summary>
    public static int VarintSize(ulong value) => (64 - System.Numerics.BitOperations.LeadingZeroCount(value | 1) + 6) / 7;

    /// <summary>Writes <paramref name="value"/> as a varint at the start of <paramref name="output"/>; returns the bytes written.</summary>
    public static int WriteVarint(Span<byte> output, ulong value)
    {
        var n = 0;
        while (value >= 0x80)
        {
            output[n++] = (byte)(value | 0x80);
            value >>= 7;
        }
        output[n++] = (byte)value;
        return n;
    }
}
