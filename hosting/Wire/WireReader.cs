namespace Legate.Hosting.Wire;

/// <summary>
/// Reads protobuf wire format in place, for marshallers that take a few fields of a message straight into their own
/// types instead of building the generated message. Length-delimited values come as offsets into the one buffer, so a
/// caller can keep the buffer and decode later. Reads as Google.Protobuf reads: tags and lengths are the low 32 bits of
/// their varints, messages and groups nest at most 100 deep. Malformed input (truncated, a varint over ten bytes, field
/// number 0, wire type 6 or 7, a negative length, an unmatched group) throws <see cref="InvalidDataException"/>.
/// </summary>
public ref struct WireReader
{
    /// <summary>Google.Protobuf's default recursion limit: enclosing messages and groups together.</summary>
    private const int RecursionLimit = 100;

    private readonly ReadOnlySpan<byte> _buffer;
    private readonly int _end;
    private readonly int _depth;
    private int _position;

    /// <summary>A reader of a whole message.</summary>
    public WireReader(ReadOnlySpan<byte> buffer)
        : this(buffer, 0, buffer.Length, 0)
    {
    }

    private WireReader(ReadOnlySpan<byte> buffer, int start, int end, int depth)
    {
        _buffer = buffer;
        _position = start;
        _end = end;
        _depth = depth;
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
        var length = (int)(uint)ReadVarint();
        if (length < 0)
            throw new InvalidDataException("Negative length.");
        if (length > _end - _position)
            throw new InvalidDataException("Truncated message: a length-delimited field runs past the end of its message.");
        var start = _position;
        _position += length;
        return (start, length);
    }

    /// <summary>A string field's value; not UTF-8 is malformed, as Google.Protobuf refuses it.</summary>
    public string ReadString()
    {
        var (start, length) = ReadUtf8();
        return length == 0 ? "" : System.Text.Encoding.UTF8.GetString(_buffer.Slice(start, length));
    }

    /// <summary>
    /// A string field as (offset, length) in the buffer, checked as <see cref="ReadString"/> checks it, for a caller
    /// that decodes it later or never.
    /// </summary>
    public (int Start, int Length) ReadUtf8()
    {
        var range = ReadLengthDelimited();
        if (!System.Text.Unicode.Utf8.IsValid(_buffer.Slice(range.Start, range.Length)))
            throw new InvalidDataException("A string field is not valid UTF-8.");
        return range;
    }

    /// <summary>A reader of the embedded message in the next (length-delimited) field; this reader moves past it.</summary>
    public WireReader ReadMessage()
    {
        if (_depth >= RecursionLimit)
            throw new InvalidDataException("Messages nested too deeply.");
        var (start, length) = ReadLengthDelimited();
        return new WireReader(_buffer, start, start + length, _depth + 1);
    }

    /// <summary>Moves past the value of a field whose tag was just read.</summary>
    public void Skip(uint tag) => Skip(tag, _depth);

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
                if (depth >= RecursionLimit)
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

    /// <summary>A varint field's value (uint32, int32 and enum fields take its low 32 bits, as protobuf does).</summary>
    public ulong ReadVarint()
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
