using Legate.Hosting.Wire;

namespace Legate.Hosting.Tests.Wire;

public sealed class WireReaderTests
{
    [Fact]
    public void ReadsTagsValuesAndNestedMessages_AsOffsetsIntoTheOneBuffer()
    {
        // field 1 varint 150; field 2 { field 3 "hi" }; field 4 fixed32; field 5 fixed64; group 6 { field 1 varint 1 }; field 7 "z"
        byte[] message = [0x08, 0x96, 0x01, 0x12, 0x04, 0x1A, 0x02, (byte)'h', (byte)'i', 0x25, 1, 2, 3, 4, 0x29, 1, 2, 3, 4, 5, 6, 7, 8, 0x33, 0x08, 0x01, 0x34, 0x3A, 0x01, (byte)'z'];
        var reader = new WireReader(message);

        Assert.Equal(1u << 3 | WireReader.Varint, reader.ReadTag());
        reader.Skip(1u << 3 | WireReader.Varint);
        Assert.Equal(2u << 3 | WireReader.LengthDelimited, reader.ReadTag());
        var inner = reader.ReadMessage();
        Assert.Equal(3u << 3 | WireReader.LengthDelimited, inner.ReadTag());
        Assert.Equal((7, 2), inner.ReadLengthDelimited());
        Assert.False(inner.HasMore);
        for (var i = 0; i < 3; i++)
            reader.Skip(reader.ReadTag()); // fixed32, fixed64, the group
        Assert.Equal(7u << 3 | WireReader.LengthDelimited, reader.ReadTag());
        Assert.Equal((29, 1), reader.ReadLengthDelimited());
        Assert.False(reader.HasMore);
    }

    [Fact]
    public void ANestedMessage_EndsAtItsLength_NotAtTheBuffersEnd()
    {
        // field 1 { field 2 "a" } followed by field 3 varint: the inner reader must not see field 3.
        byte[] message = [0x0A, 0x03, 0x12, 0x01, (byte)'a', 0x18, 0x05];
        var reader = new WireReader(message);
        reader.ReadTag();
        var inner = reader.ReadMessage();
        inner.Skip(inner.ReadTag());

        Assert.False(inner.HasMore);
        Assert.Equal(3u << 3 | WireReader.Varint, reader.ReadTag());
    }

    [Fact]
    public void ALengthPastItsEnclosingMessage_IsTruncated_EvenWithBytesAfterIt()
    {
        // field 1 { field 2 announcing 5 bytes, of which only 1 is inside field 1 } then more bytes outside.
        byte[] message = [0x0A, 0x03, 0x12, 0x05, (byte)'a', 0x18, 0x05, 0x18, 0x05];
        var reader = new WireReader(message);
        reader.ReadTag();
        var inner = reader.ReadMessage();
        inner.ReadTag();

        try
        {
            inner.ReadLengthDelimited();
            Assert.Fail("read past the enclosing message");
        }
        catch (InvalidDataException e)
        {
            Assert.StartsWith("Truncated", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(0ul, 1)]
    [InlineData(127ul, 1)]
    [InlineData(128ul, 2)]
    [InlineData(300ul, 2)]
    [InlineData(uint.MaxValue, 5)]
    [InlineData(ulong.MaxValue, 10)]
    public void WireWriter_Varints_ReadBackAsWritten_InTheSizeItComputes(ulong value, int size)
    {
        var buffer = new byte[WireWriter.MaxVarintLength + 1];
        buffer[0] = 0x08; // field 1, varint

        var written = WireWriter.WriteVarint(buffer.AsSpan(1), value);
        var reader = new WireReader(buffer.AsSpan(0, 1 + written));
        reader.ReadTag();

        Assert.Equal(size, written);
        Assert.Equal(size, WireWriter.VarintSize(value));
        Assert.Equal(value, reader.ReadVarint());
        Assert.False(reader.HasMore);
    }
}
