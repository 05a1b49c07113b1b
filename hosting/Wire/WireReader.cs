namespace Legate.Hosting.Wire;

/// <summary>
/// Reads protobuf wire format in place, for marshallers that take a few fields of a large message without building
/// it. Field values are returned as offsets into the one buffer, so a caller can keep the buffer and decode later.
/// Malformed input (truncated, a bad varint, tag or wire type, an unmatched group) throws
/// <see cref="InvalidDataException"/>; what Google.Protobuf accepts, this accepts.
/// </summary>
public ref struct WireReader
{
    /// <summary>Google.Protobuf's default recursion limit, which also bounds nested groups.</summary>
    private const int MaxGroupDepth = 100;

    private readonly ReadOnlySpan<byte> _buffer;
    private readonly int _end;
    private int _position;

    /// <summary>A reader of a whole message.</summary>
    public WireReader(ReadOnlySpan<byte> buffer)
        : this(buffer, 0, buffer.Length)
    {
    }

    private WireReader(ReadOnlySpan<byte> buffer, int start, int end)
    {
        _buffer = buffer;
        _position = start;
        _end = end;
    }

    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int StartGroup = 3;
    public const int EndGroup = 4;
    public const int Fixed32 = 5;

    /// <summary>The offset in the buffer of the next field.</summary>
    public readonly int Position => _position;

    /// <summary>Whether fields remain in this message.</summary>
    public readonly bool HasMore => _position < _end;

    /// <summary>The next field's tag (field number &lt;&lt; 3 | wire type).</summary>
    public uint ReadTag()
    {
        var tag = (uint)ReadVarint();
        if (tag >> 3 == 0)
            throw new InvalidDataException("Invalid tag: field number 0.");
        if ((tag & 7) > Fixed32)
            throw new InvalidDataException($"Invalid wire type {tag & 7}.");
        return tag;
    }

    /// <summary>A length-delimited field's contents, as (offset, length) in the buffer; the reader moves past them.</summary>
    public (int Start, int Length) ReadLengthDelimited()
    {
        var length = ReadVarint();
        if (length > (ulong)(_end - _position))
            throw new InvalidDataException("Truncated message: a length-delimited field runs past the end of its message.");
        var start = _position;
        _position += (int)length;
        return (start, (int)length);
    }

    /// <summary>A reader of the embedded message in the next (length-delimited) field; this reader moves past it.</summary>
    public WireReader ReadMessage()
    {
        var (start, length) = ReadLengthDelimited();
        return new WireReader(_buffer, start, start + length);
    }

    /// <summary>Moves past the value of a field whose tag was just read.</summary>
    public void Skip(uint tag) => Skip(tag, 0);

    private void Skip(uint tag, int depth)
    {
        switch ((int)(tag & 7))
        {
            case Varint:
                ReadVarint();
                break;
            case Fixed64:
                Advance(8);
                break;
            case Fixed32:
                Advance(4);
                break;
            case LengthDelimited:
                ReadLengthDelimited();
                break;
            case StartGroup:
                if (depth >= MaxGroupDepth)
                    throw new InvalidDataException("Groups nested too deeply.");
                while (true)
                {
                    if (!HasMore)
                        throw new InvalidDataException("Truncated message: a group has no end.");
                    var inner = ReadTag();
                    if ((inner & 7) == EndGroup)
                    {
                        if (inner >> 3 != tag >> 3)
                            throw new InvalidDataException("A group ends with another field's number.");
                        return;
                    }
                    Skip(inner, depth + 1);
                }
            default:
                throw new InvalidDataException("An end-group tag without its group.");
        }
    }

    private void Advance(int count)
    {
        if (_end - _position < count)
            throw new InvalidDataException("Truncated message: a fixed-size field runs past the end of its message.");
        _position += count;
    }

    private ulong ReadVarint()
    {
        ulong value = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            if (_position >= _end)
                throw new InvalidDataException("Truncated message: a varint runs past the end of its message.");
            var b = _buffer[_position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
                return value;
        }
        throw new InvalidDataException("Malformed varint: more than 10 bytes.");
    }
}
