using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using Envoy.Service.Auth.V3;
using Google.Protobuf;
using Legate.Hosting.Wire;

namespace Legate.Authz.Wire;

/// <summary>
/// What authz reads of Envoy's <c>CheckRequest</c>: the HTTP method, path, host and headers, the route's context
/// extensions and the downstream peer's address, read straight from the request's wire bytes. The generated
/// <see cref="CheckRequest"/> builds every header as a map entry of two strings (an ordinary browser request: ≈ 5 KB
/// and 2–3 µs, more than the whole decision); this keeps the bytes and decodes a header when a policy asks for it.
/// </summary>
/// <remarks>
/// Semantics are the generated parser's for the fields read (last value wins, map entries with a repeated key keep the
/// last value, a missing key or value is "", invalid UTF-8 is refused); every other field is skipped by its wire type
/// without being decoded, so a request whose unread parts are malformed is still answered.
/// </remarks>
public sealed class CheckRequestView
{
    // What Envoy does to a header value that is not UTF-8 when it fills the headers map.
    private static readonly Encoding Sanitising = Encoding.GetEncoding("utf-8", EncoderFallback.ExceptionFallback, new DecoderReplacementFallback("!"));

    private CheckRequestView(bool hasHttp, string method, string path, string host, string? sourceAddress, WireMap headers, WireMap contextExtensions)
    {
        HasHttp = hasHttp;
        Method = method;
        Path = path;
        Host = host;
        SourceAddress = sourceAddress;
        Headers = headers;
        ContextExtensions = contextExtensions;
    }

    /// <summary>Whether <c>attributes.request.http</c> is present (Envoy always sends it).</summary>
    public bool HasHttp { get; }

    /// <summary><c>attributes.request.http.method</c> ("" when absent).</summary>
    public string Method { get; }

    /// <summary><c>attributes.request.http.path</c>, with its query string ("" when absent).</summary>
    public string Path { get; }

    /// <summary><c>attributes.request.http.host</c> ("" when absent).</summary>
    public string Host { get; }

    /// <summary><c>attributes.source.address.socket_address.address</c>; null when the peer has no socket address.</summary>
    public string? SourceAddress { get; }

    /// <summary>
    /// <c>attributes.request.http.headers</c>: Envoy's map, lower-case names, repeated headers joined with ",". With
    /// <c>encode_raw_headers: true</c> Envoy sends <c>header_map</c> instead (raw bytes, repeated headers apart): it is
    /// read as the map would have been, repeated headers joined with "," and bytes that are not UTF-8 as "!".
    /// </summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    /// <summary><c>attributes.context_extensions</c>, set per route by the generated Envoy config.</summary>
    public IReadOnlyDictionary<string, string> ContextExtensions { get; }

    /// <summary>The view of a generated request (tests, tools): its serialised form, read as a served request is.</summary>
    public static CheckRequestView From(CheckRequest? request) => Parse(request is null ? [] : request.ToByteArray());

    /// <summary>Reads a serialised <c>CheckRequest</c>; the view keeps <paramref name="message"/>, which must not change.</summary>
    /// <exception cref="InvalidDataException">The message is malformed, or a field read is not UTF-8.</exception>
    public static CheckRequestView Parse(byte[] message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var state = new ParseState(message);
        var reader = new WireReader(message);
        while (reader.HasMore)
        {
            var tag = reader.ReadTag();
            if (tag == Tag(1, WireReader.LengthDelimited)) // attributes
                ReadAttributes(reader.ReadMessage(), ref state);
            else
                reader.Skip(tag);
        }
        // Envoy sends one form or the other; a request with both is read by its map, as before header_map was read.
        var headers = state.Headers.EntryCount == 0 && state.RawHeaders is { } raw ? raw : state.Headers;
        return new CheckRequestView(state.HasHttp, state.Method, state.Path, state.Host, state.SourceAddress, headers, state.Extensions);
    }

    private static uint Tag(int field, int wireType) => (uint)(field << 3 | wireType);

    private static void ReadAttributes(WireReader reader, ref ParseState state)
    {
        while (reader.HasMore)
        {
            var tag = reader.ReadTag();
            if (tag == Tag(1, WireReader.LengthDelimited)) // source (Peer)
                ReadPeer(reader.ReadMessage(), ref state);
            else if (tag == Tag(4, WireReader.LengthDelimited)) // request
                ReadRequest(reader.ReadMessage(), ref state);
            else if (tag == Tag(10, WireReader.LengthDelimited)) // context_extensions
                state.Extensions.Add(ReadMapEntry(reader.ReadMessage()));
            else
                reader.Skip(tag);
        }
    }

    private static void ReadPeer(WireReader reader, ref ParseState state)
    {
        while (reader.HasMore)
        {
            var tag = reader.ReadTag();
            if (tag == Tag(1, WireReader.LengthDelimited)) // address (config.core.v3.Address)
                ReadAddress(reader.ReadMessage(), ref state);
            else
                reader.Skip(tag);
        }
    }

    private static void ReadAddress(WireReader reader, ref ParseState state)
    {
        while (reader.HasMore)
        {
            var tag = reader.ReadTag();
            if (tag == Tag(1, WireReader.LengthDelimited)) // oneof address: socket_address
            {
                // After another member of the oneof the socket address starts afresh (as the generated code's oneof
                // does); a second socket_address merges into the first.
                state.SourceAddress ??= "";
                var socket = reader.ReadMessage();
                while (socket.HasMore)
                {
                    var inner = socket.ReadTag();
                    if (inner == Tag(2, WireReader.LengthDelimited)) // address
                        state.SourceAddress = socket.ReadString();
                    else
                        socket.Skip(inner);
                }
            }
            else if (tag == Tag(2, WireReader.LengthDelimited)) // oneof address: pipe
            {
                state.SourceAddress = null;
                reader.Skip(tag);
            }
            else
            {
                reader.Skip(tag);
            }
        }
    }

    private static void ReadRequest(WireReader reader, ref ParseState state)
    {
        while (reader.HasMore)
        {
            var tag = reader.ReadTag();
            if (tag == Tag(2, WireReader.LengthDelimited)) // http
            {
                state.HasHttp = true;
                var http = reader.ReadMessage();
                while (http.HasMore)
                {
                    var inner = http.ReadTag();
                    if (inner == Tag(2, WireReader.LengthDelimited))
                        state.Method = http.ReadString();
                    else if (inner == Tag(3, WireReader.LengthDelimited))
                        state.Headers.Add(ReadMapEntry(http.ReadMessage()));
                    else if (inner == Tag(4, WireReader.LengthDelimited))
                        state.Path = http.ReadString();
                    else if (inner == Tag(5, WireReader.LengthDelimited))
                        state.Host = http.ReadString();
                    else if (inner == Tag(13, WireReader.LengthDelimited))
                        ReadHeaderMap(http.ReadMessage(), ref state);
                    else
                        http.Skip(inner);
                }
            }
            else
            {
                reader.Skip(tag);
            }
        }
    }

    /// <summary>A <c>map&lt;string, string&gt;</c> entry: key 1, value 2, each "" when absent.</summary>
    private static WireMap.Entry ReadMapEntry(WireReader reader)
    {
        (int Start, int Length) key = default, value = default;
        while (reader.HasMore)
        {
            var tag = reader.ReadTag();
            if (tag == Tag(1, WireReader.LengthDelimited))
                key = reader.ReadUtf8();
            else if (tag == Tag(2, WireReader.LengthDelimited))
                value = reader.ReadUtf8();
            else
                reader.Skip(tag);
        }
        return new WireMap.Entry(key.Start, key.Length, value.Start, value.Length);
    }

    /// <summary><c>header_map</c> (config.core.v3.HeaderMap): repeated <c>HeaderValue</c> 1 {key 1, value 2, raw_value 3}.</summary>
    private static void ReadHeaderMap(WireReader reader, ref ParseState state)
    {
        while (reader.HasMore)
        {
            var tag = reader.ReadTag();
            if (tag != Tag(1, WireReader.LengthDelimited))
            {
                reader.Skip(tag);
                continue;
            }
            var header = reader.ReadMessage();
            (int Start, int Length) key = default, value = default, raw = default;
            var hasRaw = false;
            while (header.HasMore)
            {
                var inner = header.ReadTag();
                if (inner == Tag(1, WireReader.LengthDelimited))
                {
                    key = header.ReadUtf8();
                }
                else if (inner == Tag(2, WireReader.LengthDelimited))
                {
                    value = header.ReadUtf8();
                }
                else if (inner == Tag(3, WireReader.LengthDelimited)) // bytes: anything goes
                {
                    raw = header.ReadLengthDelimited();
                    hasRaw = true;
                }
                else
                {
                    header.Skip(inner);
                }
            }
            var chosen = hasRaw ? raw : value;
            (state.RawHeaders ??= new WireMap(state.Message, 16, raw: true)).Add(new WireMap.Entry(key.Start, key.Length, chosen.Start, chosen.Length));
        }
    }

    private ref struct ParseState(byte[] message)
    {
        public readonly byte[] Message = message;
        public bool HasHttp;
        public string Method = "", Path = "", Host = "";

        // Null unless the peer's address is a socket address.
        public string? SourceAddress;
        public readonly WireMap Headers = new(message, 16);
        public readonly WireMap Extensions = new(message, 2);
        public WireMap? RawHeaders;
    }

    /// <summary>
    /// A <c>map&lt;string, string&gt;</c> kept as its entries' offsets in the message: a lookup compares bytes and
    /// decodes the value it finds (once); enumerating decodes everything. A repeated key's last entry wins, or, for
    /// <paramref name="raw"/> headers (<c>header_map</c>), the values of a repeated key are joined with "," in order and
    /// bytes that are not UTF-8 read as "!", as in the headers map Envoy would have sent.
    /// </summary>
    private sealed class WireMap(byte[] message, int capacity, bool raw = false) : IReadOnlyDictionary<string, string>
    {
        private Entry[] _entries = new Entry[capacity];
        private int _count;
        private bool _keysAscii = true;
        private Dictionary<string, string>? _all;

        internal struct Entry(int keyStart, int keyLength, int valueStart, int valueLength)
        {
            public readonly int KeyStart = keyStart, KeyLength = keyLength, ValueStart = valueStart, ValueLength = valueLength;
            public string? Value;
        }

        public int EntryCount => _count;

        public void Add(Entry entry)
        {
            if (_count == _entries.Length)
                Array.Resize(ref _entries, _count * 2);
            _entries[_count++] = entry;
            _keysAscii &= System.Text.Ascii.IsValid(message.AsSpan(entry.KeyStart, entry.KeyLength));
        }

        public bool TryGetValue(string key, [MaybeNullWhen(false)] out string value)
        {
            ArgumentNullException.ThrowIfNull(key);
            if (raw)
                return TryGetJoined(key, out value);
            // From the end: the last entry with a key is its value, as when the generated parser fills a map.
            for (var i = _count - 1; i >= 0; i--)
            {
                if (KeyIs(i, key))
                {
                    value = ValueOf(i);
                    return true;
                }
            }
            value = null;
            return false;
        }

        private bool TryGetJoined(string key, [MaybeNullWhen(false)] out string value)
        {
            value = null;
            for (var i = 0; i < _count; i++)
            {
                if (KeyIs(i, key))
                    value = value is null ? ValueOf(i) : value + "," + ValueOf(i);
            }
            return value is not null;
        }

        private bool KeyIs(int index, string key)
        {
            ref readonly var entry = ref _entries[index];
            var name = message.AsSpan(entry.KeyStart, entry.KeyLength);
            // Header names are ASCII: compared byte for char without decoding. Other keys compare decoded.
            return _keysAscii
                ? name.Length == key.Length && System.Text.Ascii.Equals(name, key)
                : string.Equals(Decode(entry.KeyStart, entry.KeyLength), key, StringComparison.Ordinal);
        }

        private string ValueOf(int index)
        {
            ref var entry = ref _entries[index];
            return entry.Value ??= entry.ValueLength == 0 ? ""
                : raw ? Sanitising.GetString(message, entry.ValueStart, entry.ValueLength) : Decode(entry.ValueStart, entry.ValueLength);
        }

        // Keys and map values were checked to be UTF-8 when read (WireReader.ReadUtf8).
        private string Decode(int start, int length) => length == 0 ? "" : Encoding.UTF8.GetString(message, start, length);

        private Dictionary<string, string> All()
        {
            if (_all is { } all)
                return all;
            all = new Dictionary<string, string>(_count, StringComparer.Ordinal);
            for (var i = 0; i < _count; i++)
            {
                var key = Decode(_entries[i].KeyStart, _entries[i].KeyLength);
                all[key] = raw && all.TryGetValue(key, out var earlier) ? earlier + "," + ValueOf(i) : ValueOf(i);
            }
            return _all = all;
        }

        public string this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"No entry '{key}'.");

        public bool ContainsKey(string key) => TryGetValue(key, out _);

        public int Count => All().Count;

        public IEnumerable<string> Keys => All().Keys;

        public IEnumerable<string> Values => All().Values;

        public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => All().GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
