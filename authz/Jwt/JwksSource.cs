using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Legate.Authz.Jwt;

/// <summary>
/// The keys of one JWT provider, from a JWKS URL, OIDC discovery, a file or inline JSON.
/// <list type="bullet">
/// <item>Remote keys are fetched at <see cref="Start"/> and every <c>RefreshInterval</c> in the background (TimeProvider
/// timer); after a failed fetch the next try comes after <c>MinRefetchInterval</c>. Each wait is shortened by a random
/// part of up to <c>RefreshJitter</c> (10 %), so replicas drift apart instead of refetching in lockstep.</item>
/// <item>Requests that meet an unknown <c>kid</c> (or find no keys at a cold start) may trigger a fetch, at most one per
/// <c>MinRefetchInterval</c>; concurrent callers share the one in flight (single-flight), so a flood of random kids
/// costs the issuer one request per interval.</item>
/// <item>A failed fetch, an HTTP error, garbage, an empty or oversized JWKS never replaces the last good keys.</item>
/// <item>A fetch returning the same key material keeps the same <see cref="JwksKeySet"/> (same version, same SecurityKey
/// objects), so the validated-token cache and IdentityModel's signature-provider cache stay warm.</item>
/// <item>Native key handles are freed deterministically: the keys such a fetch parsed for nothing at once, a replaced
/// set's keys at the first fetch that starts <see cref="RetiredKeysGrace"/> after it was replaced (so the next regular
/// refresh), when no validation can still be using them; a disposed source's keys <see cref="RetiredKeysGrace"/> after
/// <see cref="Dispose"/>, as requests that took them before may still be validating.</item>
/// <item>A policy reload that leaves a provider's key source unchanged keeps its source (see
/// <see cref="SameKeySource"/>): its keys stay, with no fetch, so a reload while the issuer is unreachable loses nothing.</item>
/// </list>
/// URLs must be https, or http to a loopback host (tests, same-host sidecars). Redirects follow the injected
/// HttpClient's handler (.NET never follows https → http).
/// </summary>
public sealed class JwksSource : IDisposable
{
    private static readonly JsonDocumentOptions DiscoveryOptions = new() { MaxDepth = 16 };

    private readonly JwtProviderOptions _options;
    private readonly HttpClient? _http;
    private readonly TimeProvider _time;
    private readonly JwksMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly string _sourceName;
    private JwksKeySet? _current;
    private Task<JwksKeySet?>? _inflight;
    private long _lastFetchStarted;
    private bool _fetchedOnce;
    private long _fetchCount;
    private ITimer? _timer;
    private ITimer? _freeRetired;
    private bool _disposed;
    // Key sets replaced by a newer one, oldest first, with when they were replaced (guarded by _gate).
    private readonly List<(JwksKeySet Keys, long ReplacedAt)> _replaced = [];

    public JwksSource(JwtProviderOptions options, HttpClient? http, TimeProvider time, JwksMetrics? metrics = null, ILogger<JwksSource>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        _options = options;
        _http = http;
        _time = time;
        _metrics = metrics;
        _logger = (ILogger?)logger ?? NullLogger.Instance;

        if (options.InlineJwks is not null)
        {
            _sourceName = "inline JWKS";
            if (!JwksParser.TryParse(options.InlineJwks, options, out var keys, out var error))
                throw new ArgumentException($"provider '{options.Name}': inline JWKS: {error}", nameof(options));
            _current = new JwksKeySet(keys, 1);
            return;
        }
        var remote = options.JwksUri ?? options.OidcDiscoveryUri;
        if (remote is not null)
        {
            if (!JwtProviderOptionsValidator.IsAllowedRemote(remote))
                throw new ArgumentException($"provider '{options.Name}': key URL must be https (http only for loopback)", nameof(options));
            ArgumentNullException.ThrowIfNull(http);
            _sourceName = remote.GetLeftPart(UriPartial.Path);
        }
        else
        {
            _sourceName = options.JwksFile ?? throw new ArgumentException($"provider '{options.Name}': no key source", nameof(options));
        }
    }

    /// <summary>
    /// How long a replaced key set stays undisposed. A validation uses a key synchronously right after taking it from
    /// a set, or from the set a refetch it awaited answered; a minute covers a continuation held up by a saturated
    /// thread pool many times over.
    /// </summary>
    internal static readonly TimeSpan RetiredKeysGrace = TimeSpan.FromMinutes(1);

    public string ProviderName => _options.Name;

    /// <summary>Whether <see cref="Dispose"/> ran (the source then fetches no more; its keys are freed after the grace).</summary>
    internal bool IsDisposed
    {
        get
        {
            lock (_gate)
                return _disposed;
        }
    }

    /// <summary>
    /// Whether a provider configured with <paramref name="options"/> would get the same keys from this source: the same
    /// name, issuer (a discovery document must name it), algorithms (they select the keys kept), key source and fetch
    /// settings. Audiences, skew, lifetime and typ are the validator's, read from the provider, so they may differ.
    /// </summary>
    internal bool SameKeySource(JwtProviderOptions options)
    {
        var mine = _options;
        return mine.Name == options.Name
            && mine.Issuer == options.Issuer
            && mine.Algorithms.SequenceEqual(options.Algorithms, StringComparer.Ordinal)
            && mine.JwksUri == options.JwksUri
            && mine.OidcDiscoveryUri == options.OidcDiscoveryUri
            && mine.InlineJwks == options.InlineJwks
            && mine.JwksFile == options.JwksFile
            && mine.RefreshInterval == options.RefreshInterval
            && mine.RefreshJitter.Equals(options.RefreshJitter)
            && mine.MinRefetchInterval == options.MinRefetchInterval
            && mine.HttpTimeout == options.HttpTimeout
            && mine.MaxJwksBytes == options.MaxJwksBytes
            && mine.MaxKeys == options.MaxKeys;
    }

    /// <summary>
    /// A policy reload kept this source: a JWKS file is read again now (an operator who edits it and the policy expects
    /// both to apply; a failed read keeps the keys), a remote source keeps its schedule (an unknown kid still refetches).
    /// </summary>
    internal void OnKeptByReload()
    {
        if (_options.JwksFile is not null && _timer is not null)
            _ = FetchNow();
    }

    /// <summary>The last good keys; null until a first load succeeds.</summary>
    public JwksKeySet? Current => Volatile.Read(ref _current);

    /// <summary>Fetches started (remote or file), for tests and diagnostics.</summary>
    public long FetchCount => Interlocked.Read(ref _fetchCount);

    /// <summary>Whether a fetch is in flight (diagnostics and tests).</summary>
    public bool IsFetching => Volatile.Read(ref _inflight) is { IsCompleted: false };

    private bool IsStatic => _options.InlineJwks is not null;

    /// <summary>Loads the keys now and every RefreshInterval. Does not wait for the first load.</summary>
    public void Start()
    {
        if (IsStatic || _timer is not null)
            return;
        // One-shot, re-armed after every tick with a fresh jittered delay.
        _timer = _time.CreateTimer(static state => ((JwksSource)state!).OnTimer(), this, Jittered(_options.RefreshInterval), Timeout.InfiniteTimeSpan);
        _ = FetchNow();
    }

    /// <summary>Fetches now, or joins the fetch in flight. Not throttled: for the background timer and tests.</summary>
    public Task<JwksKeySet?> RefreshAsync(CancellationToken cancellationToken = default)
        => IsStatic ? Task.FromResult(Current) : FetchNow().WaitAsync(cancellationToken);

    /// <summary>The keys, loading them if none are held yet (throttled like an unknown kid).</summary>
    public ValueTask<JwksKeySet?> GetAsync(CancellationToken cancellationToken)
    {
        var current = Current;
        return current is not null ? new ValueTask<JwksKeySet?>(current) : RefetchAsync(cancellationToken);
    }

    /// <summary>
    /// Called when a token names a kid the current keys lack: fetches unless a fetch started less than
    /// MinRefetchInterval ago (then answers the current keys), and joins a fetch already in flight.
    /// </summary>
    public ValueTask<JwksKeySet?> RefetchAsync(CancellationToken cancellationToken)
    {
        if (IsStatic)
            return new ValueTask<JwksKeySet?>(Current);
        Task<JwksKeySet?> fetch;
        lock (_gate)
        {
            if (_disposed)
            {
                return new ValueTask<JwksKeySet?>(_current);
            }
            if (_inflight is { IsCompleted: false } running)
            {
                fetch = running;
            }
            else if (_fetchedOnce && _time.GetElapsedTime(_lastFetchStarted) < _options.MinRefetchInterval)
            {
                JwtLog.JwksRefetchThrottled(_logger, _options.Name, _options.MinRefetchInterval.TotalSeconds);
                return new ValueTask<JwksKeySet?>(Current);
            }
            else
            {
                fetch = StartLocked();
            }
        }
        return new ValueTask<JwksKeySet?>(fetch.WaitAsync(cancellationToken));
    }

    private Task<JwksKeySet?> FetchNow()
    {
        lock (_gate)
        {
            if (_disposed)
                return Task.FromResult(_current);
            return _inflight is { IsCompleted: false } running ? running : StartLocked();
        }
    }

    private Task<JwksKeySet?> StartLocked()
    {
        DisposeReplacedLocked();
        _fetchedOnce = true;
        _lastFetchStarted = _time.GetTimestamp();
        Interlocked.Increment(ref _fetchCount);
        // The fetch belongs to the source, not to the request that triggered it: one caller's cancellation must not fail the others.
        return _inflight = Task.Run(FetchAsync);
    }

    private void OnTimer()
    {
        if (_stopping.IsCancellationRequested)
            return;
        // Re-armed before the fetch starts: a failure then brings the next try forward (to about MinRefetchInterval).
        Rearm(_options.RefreshInterval);
        _ = FetchNow();
    }

    private void Rearm(TimeSpan period)
    {
        try
        {
            _timer?.Change(Jittered(period), Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>The period shortened by a random fraction of up to RefreshJitter: never longer than the period.</summary>
    private TimeSpan Jittered(TimeSpan period) => period - period * (_options.RefreshJitter * Random.Shared.NextDouble());

    private async Task<JwksKeySet?> FetchAsync()
    {
        JwksFetchResult result;
        string error;
        try
        {
            using var timeout = new CancellationTokenSource(_options.HttpTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _stopping.Token);
            try
            {
                var json = await LoadAsync(linked.Token).ConfigureAwait(false);
                if (!JwksParser.TryParse(json, _options, out var keys, out error))
                {
                    result = error.Contains("larger", StringComparison.Ordinal) || error.Contains("more keys", StringComparison.Ordinal)
                        ? JwksFetchResult.TooLarge : JwksFetchResult.Invalid;
                }
                else
                {
                    return Install(keys);
                }
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !_stopping.IsCancellationRequested)
            {
                (result, error) = (JwksFetchResult.Timeout, "timed out");
            }
        }
        catch (JwksFetchException e)
        {
            (result, error) = (e.Result, e.Message);
        }
        catch (HttpRequestException e)
        {
            (result, error) = (JwksFetchResult.HttpError, e.HttpRequestError.ToString());
        }
        catch (IOException e)
        {
            (result, error) = (JwksFetchResult.Error, e.GetType().Name);
        }
        catch (UnauthorizedAccessException)
        {
            (result, error) = (JwksFetchResult.Error, "access denied");
        }
        catch (OperationCanceledException)
        {
            return Current;
        }

        _metrics?.Fetched(_options.Name, result);
        var kept = Current;
        JwtLog.JwksFetchFailed(_logger, _options.Name, _sourceName, error, kept?.Keys.Count ?? 0);
        // Retry sooner than the regular period; request-triggered fetches stay throttled by MinRefetchInterval.
        Rearm(_options.MinRefetchInterval);
        return kept;
    }

    private JwksKeySet? Install(List<JwksKey> keys)
    {
        lock (_gate)
        {
            var current = _current;
            var candidate = new JwksKeySet(keys, (current?.Version ?? 0) + 1);
            if (_disposed)
            {
                // A fetch that was in flight when the source was disposed: nothing will read these keys.
                foreach (var key in keys)
                    key.Dispose();
                return current;
            }
            if (current is not null && current.Fingerprint == candidate.Fingerprint)
            {
                // Never published, so nothing holds them.
                foreach (var key in keys)
                    key.Dispose();
                _metrics?.Fetched(_options.Name, JwksFetchResult.Unchanged);
                return current;
            }
            Volatile.Write(ref _current, candidate);
            if (current is not null)
                _replaced.Add((current, _time.GetTimestamp()));
            _metrics?.Fetched(_options.Name, JwksFetchResult.Success);
            JwtLog.JwksLoaded(_logger, _options.Name, keys.Count, _sourceName, candidate.Version);
            return candidate;
        }
    }

    private void DisposeReplacedLocked()
    {
        var due = 0;
        while (due < _replaced.Count && _time.GetElapsedTime(_replaced[due].ReplacedAt) >= RetiredKeysGrace)
            due++;
        var current = _current;
        for (var i = 0; i < due; i++)
        {
            foreach (var key in _replaced[i].Keys.Keys)
            {
                // Sets never share key objects (each parse makes its own); checked anyway, as disposing a live key would deny every token it signed.
                if (current is null || !current.Keys.Contains(key))
                    key.Dispose();
            }
        }
        _replaced.RemoveRange(0, due);
    }

    private async Task<ReadOnlyMemory<byte>> LoadAsync(CancellationToken cancellationToken)
    {
        if (_options.JwksFile is { } file)
        {
            var info = new FileInfo(file);
            if (info.Exists && info.Length > _options.MaxJwksBytes)
                throw new JwksFetchException(JwksFetchResult.TooLarge, "the JWKS file is larger than maxJwksBytes");
            return await File.ReadAllBytesAsync(file, cancellationToken).ConfigureAwait(false);
        }
        if (_options.JwksUri is { } jwksUri)
            return await GetAsync(jwksUri, cancellationToken).ConfigureAwait(false);

        var discovery = await GetAsync(_options.OidcDiscoveryUri!, cancellationToken).ConfigureAwait(false);
        return await GetAsync(ReadJwksUri(discovery), cancellationToken).ConfigureAwait(false);
    }

    private Uri ReadJwksUri(ReadOnlyMemory<byte> discovery)
    {
        try
        {
            using var document = JsonDocument.Parse(discovery, DiscoveryOptions);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("issuer", out var issuer) || issuer.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("jwks_uri", out var jwks) || jwks.ValueKind != JsonValueKind.String)
                throw new JwksFetchException(JwksFetchResult.Invalid, "the discovery document lacks issuer or jwks_uri");
            // OIDC Discovery §4.3: the document must name the issuer we trust, or it speaks for someone else.
            if (!issuer.ValueEquals(_options.Issuer))
                throw new JwksFetchException(JwksFetchResult.Invalid, "the discovery document's issuer differs from the configured issuer");
            if (!Uri.TryCreate(jwks.GetString(), UriKind.Absolute, out var uri) || !JwtProviderOptionsValidator.IsAllowedRemote(uri))
                throw new JwksFetchException(JwksFetchResult.Invalid, "the discovery document's jwks_uri is not https");
            return uri;
        }
        catch (JsonException)
        {
            throw new JwksFetchException(JwksFetchResult.Invalid, "the discovery document is not valid JSON");
        }
    }

    private async Task<ReadOnlyMemory<byte>> GetAsync(Uri uri, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var response = await _http!.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new JwksFetchException(JwksFetchResult.HttpError, $"HTTP {(int)response.StatusCode}");
        var limit = _options.MaxJwksBytes;
        if (response.Content.Headers.ContentLength > limit)
            throw new JwksFetchException(JwksFetchResult.TooLarge, "the response is larger than maxJwksBytes");
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var buffer = new byte[Math.Min(limit + 1, 16 * 1024)];
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > limit)
                        throw new JwksFetchException(JwksFetchResult.TooLarge, "the response is larger than maxJwksBytes");
                    Array.Resize(ref buffer, Math.Min(buffer.Length * 2, limit + 1));
                }
                var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                    break;
                length += read;
            }
            if (length > limit)
                throw new JwksFetchException(JwksFetchResult.TooLarge, "the response is larger than maxJwksBytes");
            return buffer.AsMemory(0, length);
        }
    }

    /// <summary>
    /// Stops fetching. The keys stay readable for requests that took them before, and are freed
    /// <see cref="RetiredKeysGrace"/> later (not left to finalizers: a policy reload that drops a provider would
    /// otherwise leave its native handles to the GC).
    /// </summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            if (_current is { } current)
                _replaced.Add((current, _time.GetTimestamp()));
            if (_replaced.Count > 0)
                _freeRetired = _time.CreateTimer(static state => ((JwksSource)state!).FreeRetired(), this, RetiredKeysGrace, Timeout.InfiniteTimeSpan);
        }
        // Cancelled, not disposed: a fetch still starting may yet link to its token.
        _stopping.Cancel();
        _timer?.Dispose();
    }

    // After Dispose, once the grace has passed: every key this source held goes.
    private void FreeRetired()
    {
        lock (_gate)
        {
            foreach (var (keys, _) in _replaced)
            {
                foreach (var key in keys.Keys)
                    key.Dispose();
            }
            _replaced.Clear();
            // Nothing may take a freed key: a request still holding this source (over a minute on) finds no keys and is denied.
            Volatile.Write(ref _current, null);
            _freeRetired?.Dispose();
        }
    }

    private sealed class JwksFetchException(JwksFetchResult result, string message) : Exception(message)
    {
        public JwksFetchResult Result { get; } = result;
    }
}
