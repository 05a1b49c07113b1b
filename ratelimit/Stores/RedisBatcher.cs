using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using StackExchange.Redis;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Group commit for <see cref="RedisCounterStore"/> on a standalone Redis (or a Sentinel's primary): the updates of
/// concurrent calls go to Redis together, as one run of a script that applies them one after another. A script's
/// fixed cost (the command, the round trip, the client's and Redis's per-command work) is then paid once per batch
/// instead of once per counter. The script runs atomically, so each counter stays atomic and updates of one counter
/// inside a batch act exactly as if applied in turn.
/// No timer and no added latency: a call queues its updates and, while fewer than <c>maxInFlight</c> batches are out,
/// sends the queue itself; a batch that completes sends what queued up meanwhile. So a lone call goes out at once, and
/// under load calls gather while a batch is in flight.
/// A call owns copies of its updates and its own result slots: the caller's (pooled) buffers are written only by the
/// caller, after the batch answered and only if it is still waiting, never by the batch.
/// </summary>
internal sealed class RedisBatcher
{
    // KEYS: the batch's distinct keys (counters and previous windows), each once.
    // ARGV: per update six values: its counter's KEYS index, hits, TTL in ms, limit ('' = add unconditionally), its
    // previous window's KEYS index ('' = none) and that window's weight 0..1.
    // Returns three values per update, {count, previous, applied}, as the single-counter script; an update Redis refuses
    // (WRONGTYPE ...) returns its error in place of the count and leaves the other updates unaffected.
    // A counter that several updates touch (a hot tenant's) is read or added to once, then counted in the script's own
    // table, and its additions written back with one INCRBY at the end: Redis runs a handful of commands per distinct
    // counter instead of two or three per update. The script is atomic, so this is the same as applying them in turn.
    // Lua numbers are doubles: counting in the table stops below 2^50, beyond which updates go to Redis one by one.
    // Expiry as in the single-counter script: set by the add that created the key, or on a key found without one.
    internal const string Script = """
        local BIG = 1125899906842624
        local value, pending, fresh, ttl, bad = {}, {}, {}, {}, {}
        local function failed(r) return type(r) == 'table' and r.err end
        local function load(k)
          if value[k] == nil and not bad[k] then
            local c = redis.pcall('GET', KEYS[k])
            if failed(c) then bad[k] = c else value[k] = tonumber(c or '0'); pending[k] = 0; fresh[k] = not c end
          end
        end
        local function flush(k)
          local p = pending[k]
          if p and p > 0 then
            pending[k] = 0
            local c = redis.pcall('INCRBY', KEYS[k], string.format('%d', p))
            if failed(c) then bad[k] = c else value[k] = c end
          end
        end
        local out = {}
        local n = 0
        for i = 1, #ARGV, 6 do
          local k = tonumber(ARGV[i])
          local hits = ARGV[i + 1]
          local h = tonumber(hits)
          local limit = ARGV[i + 3]
          local prev = 0
          local weight = 0
          local err = nil
          local count = nil
          local applied = 1
          if ARGV[i + 4] ~= '' then
            local p = tonumber(ARGV[i + 4])
            load(p)
            if bad[p] then err = bad[p] else prev = value[p] end
            weight = tonumber(ARGV[i + 5])
          end
          if not err and value[k] == nil and not bad[k] then
            if h > 0 and limit == '' then
              -- First touch, unconditional: add at once, as the single-counter script does.
              local c = redis.pcall('INCRBY', KEYS[k], hits)
              if failed(c) then
                err = c
              else
                value[k] = c; pending[k] = 0; fresh[k] = (c == h); ttl[k] = ARGV[i + 2]; count = c
              end
            else
              load(k)
            end
          end
          if not err and count == nil then
            if bad[k] then
              err = bad[k]
            else
              local v = value[k]
              if limit ~= '' and v + h + math.floor(prev * weight) > tonumber(limit) then
                count = v
                applied = 0
              elseif h == 0 then
                count = v
              elseif v + h < BIG then
                value[k] = v + h; pending[k] = pending[k] + h; count = v + h
              else
                flush(k)
                local c = bad[k] or redis.pcall('INCRBY', KEYS[k], hits)
                if failed(c) then err = c else value[k] = c; count = c end
              end
              if count ~= nil and applied == 1 and h > 0 and ttl[k] == nil then ttl[k] = ARGV[i + 2] end
            end
          end
          if err then out[n + 1] = err else out[n + 1] = count end
          out[n + 2] = prev
          out[n + 3] = applied
          n = n + 3
        end
        for k, t in pairs(ttl) do
          flush(k)
          if not bad[k] and (fresh[k] or redis.call('PTTL', KEYS[k]) == -1) then
            redis.call('PEXPIRE', KEYS[k], t)
          end
        end
        return out
        """;

    [ThreadStatic]
    private static RedisBatcher? t_draining;

    private readonly IDatabaseAsync _database;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly int _maxCounters;
    private readonly int _maxInFlight;
    private readonly ConcurrentQueue<PendingCall> _queue = new();
    private int _inFlight;
    private long _scripts;
    private long _counters;

    public RedisBatcher(IDatabaseAsync database, TimeSpan timeout, TimeProvider time, int maxCounters, int maxInFlight)
    {
        _database = database;
        _timeout = timeout;
        _time = time;
        _maxCounters = maxCounters;
        _maxInFlight = maxInFlight;
    }

    /// <summary>Scripts sent so far.</summary>
    public long Scripts => Interlocked.Read(ref _scripts);

    /// <summary>Counter updates sent so far.</summary>
    public long Counters => Interlocked.Read(ref _counters);

    public async ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var call = new PendingCall(updates.Span);
        // The deadline runs from here, not from after this caller's turn at sending batches.
        var completion = call.Task.WaitAsync(_timeout, _time, cancellationToken);
        _queue.Enqueue(call);
        // Dekker-style hand-off with a completing batch (which frees its slot, a full fence, then looks at the queue):
        // the enqueue must be visible before this caller reads the in-flight count, or both could miss the call.
        Interlocked.MemoryBarrier();
        Drain();
        try
        {
            await completion.ConfigureAwait(false);
        }
        catch (TimeoutException e) when (e is not RedisTimeoutException)
        {
            // Not sent yet: it never will be. Sent: its batch may still write the call's own slots, never the caller's.
            Abandon(call);
            throw new CounterStoreException($"Redis did not answer within {_timeout.TotalMilliseconds:F0} ms.") { TimedOut = true };
        }
        catch (OperationCanceledException) when (!call.Task.IsCompleted)
        {
            Abandon(call);
            throw;
        }
        catch (CounterStoreException)
        {
            call.Release();
            throw;
        }
        call.CopyResultsTo(results.Span);
        call.Release();
    }

    /// <summary>
    /// Sends queued calls while a batch slot is free. Enqueuers call it after enqueueing and completions after freeing
    /// their slot, so a queued call is never left without a batch to come: whoever finds the slots full leaves the call
    /// to a batch in flight, which drains again when it frees its slot.
    /// </summary>
    private void Drain()
    {
        // A batch that completes synchronously inside this loop (a send that failed at once) only frees its slot: this
        // loop goes on draining, instead of recursing once per queued call.
        if (t_draining == this)
            return;
        var outer = t_draining;
        t_draining = this;
        try
        {
            // Bounded, so that while sends fail at once (Redis down) and callers keep coming, no caller's thread is kept
            // here sending everyone else's calls; what is left goes on on the thread pool.
            for (var sent = 0; !_queue.IsEmpty;)
            {
                var inFlight = Volatile.Read(ref _inFlight);
                if (inFlight >= _maxInFlight)
                    return;
                if (sent == _maxInFlight)
                {
                    ThreadPool.UnsafeQueueUserWorkItem(static batcher => batcher.Drain(), this, preferLocal: false);
                    return;
                }
                if (Interlocked.CompareExchange(ref _inFlight, inFlight + 1, inFlight) != inFlight)
                    continue;
                var batch = Take();
                if (batch is null)
                {
                    Interlocked.Decrement(ref _inFlight);
                    continue;
                }
                sent++;
                _ = RunAsync(batch);
            }
        }
        finally
        {
            t_draining = outer;
        }
    }

    /// <summary>Dequeues calls until the batch holds at least the maximum of counters; null when none is waiting.</summary>
    private Batch? Take()
    {
        Batch? batch = null;
        while (batch is null || batch.Counters < _maxCounters)
        {
            if (!_queue.TryDequeue(out var call))
                break;
            batch ??= new Batch();
            if (!call.TryTake(batch))
                continue;
            batch.Add(call);
        }
        if (batch is { Count: 0 })
        {
            batch.Return();
            return null;
        }
        return batch;
    }

    /// <summary>
    /// The caller stopped waiting. A call still queued is dropped from it; the last caller of a batch in flight to give
    /// up frees the batch's slot: nobody waits for that batch any more, so the calls queued behind it go now instead of
    /// when Redis (or the multiplexer's own timeout) finally answers it. No timer per batch is needed for that.
    /// </summary>
    private void Abandon(PendingCall call)
    {
        if (call.Abandon() is { } batch && batch.ReleaseWaiter())
            FreeSlot(batch);
    }

    private void FreeSlot(Batch batch)
    {
        if (!batch.TryFreeSlot())
            return;
        Interlocked.Decrement(ref _inFlight);
        Drain();
    }

    private async Task RunAsync(Batch batch)
    {
        try
        {
            Task<RedisResult> pending;
            try
            {
                pending = Send(batch);
            }
            catch (Exception e) when (RedisCounterStore.IsRedisFailure(e))
            {
                batch.Fail(e);
                return;
            }
            // Sent: from now on the batch's slot is held only while one of its callers still waits (see Abandon).
            if (batch.ReleaseWaiter())
                FreeSlot(batch);
            RedisResult reply;
            try
            {
                // The multiplexer completes every command, at the latest after its own timeout.
                reply = await pending.ConfigureAwait(false);
            }
            catch (Exception e) when (RedisCounterStore.IsRedisFailure(e))
            {
                batch.Fail(e);
                return;
            }
            batch.Complete(reply);
        }
        catch (Exception e)
        {
            // A bug here must not leave callers waiting for their timeout without a reason.
            batch.Fail(e);
        }
        finally
        {
            // The next batch goes out before any caller resumes. The last chunk of callers resumes on this thread, unless
            // this is a send that failed inside a drain.
            FreeSlot(batch);
            batch.Finish(inlineLast: t_draining is null);
            batch.Return();
        }
    }

    private Task<RedisResult> Send(Batch batch)
    {
        // Each distinct key goes once; updates name it by its position (1-based, as Lua's KEYS).
        var positions = new Dictionary<string, int>(batch.Counters, StringComparer.Ordinal);
        var keys = new List<RedisKey>(batch.Counters);
        var values = new RedisValue[batch.Counters * 6];
        var calls = batch.Calls;
        var v = 0;
        for (var c = 0; c < batch.Count; c++)
        {
            var call = calls[c];
            for (var i = 0; i < call.Count; i++)
            {
                ref readonly var update = ref call.Updates[i];
                values[v++] = Position(update.Key);
                // Redis counts in signed 64 bits; a larger addend would only make INCRBY fail.
                values[v++] = Math.Min(update.Hits, long.MaxValue);
                values[v++] = CounterMath.TtlMilliseconds(update.Ttl);
                values[v++] = update.OnlyIfWithinLimit ? update.Limit : RedisValue.EmptyString;
                if (update.PreviousWindowKey is { } previous)
                {
                    values[v++] = Position(previous);
                    values[v++] = CounterMath.Weight(update);
                }
                else
                {
                    values[v++] = RedisValue.EmptyString;
                    values[v++] = RedisValue.EmptyString;
                }
            }
        }
        Interlocked.Increment(ref _scripts);
        Interlocked.Add(ref _counters, batch.Counters);
        return _database.ScriptEvaluateAsync(Script, [.. keys], values);

        int Position(string key)
        {
            ref var position = ref CollectionsMarshal.GetValueRefOrAddDefault(positions, key, out var exists);
            if (!exists)
            {
                keys.Add(key);
                position = keys.Count;
            }
            return position;
        }
    }

    /// <summary>One caller's updates and result slots, owned by the batcher (never the caller's buffers).</summary>
    private sealed class PendingCall : TaskCompletionSource
    {
        private const int Queued = 0;
        private const int Taken = 1;
        private const int Abandoned = 2;

        private int _state;
        private Batch? _batch;

        public PendingCall(ReadOnlySpan<CounterUpdate> updates)
            : base(TaskCreationOptions.None)
        {
            foreach (ref readonly var update in updates)
                ArgumentNullException.ThrowIfNull(update.Key, nameof(updates));
            Count = updates.Length;
            Updates = ArrayPool<CounterUpdate>.Shared.Rent(Count);
            Results = ArrayPool<CounterResult>.Shared.Rent(Count);
            updates.CopyTo(Updates);
        }

        public int Count { get; }

        public CounterUpdate[] Updates { get; }

        public CounterResult[] Results { get; }

        /// <summary>Puts the call into <paramref name="batch"/>, which then holds a waiter for it; false when its caller already gave up.</summary>
        public bool TryTake(Batch batch)
        {
            _batch = batch;
            batch.AddWaiter();
            if (Interlocked.CompareExchange(ref _state, Taken, Queued) == Queued)
                return true;
            batch.ReleaseWaiter(); // never the last: the batch's builder holds one
            return false;
        }

        /// <summary>
        /// The caller stopped waiting: a batch not yet built skips the call. Returns the batch the call is in, if any,
        /// whose waiter the caller then releases. The call's arrays are left to the GC, as that batch may still write them.
        /// </summary>
        public Batch? Abandon() => Interlocked.Exchange(ref _state, Abandoned) == Taken ? _batch : null;

        /// <summary>Why the call failed, once its batch answered; null when it succeeded.</summary>
        public Exception? Failure { get; set; }

        /// <summary>Resumes the caller, on this thread (see <see cref="Batch.Finish"/>).</summary>
        public void Finish()
        {
            if (Failure is null)
                TrySetResult();
            else
                TrySetException(Failure);
        }

        public void CopyResultsTo(Span<CounterResult> target) => Results.AsSpan(0, Count).CopyTo(target);

        /// <summary>Back to the pool, once the call completed (its batch no longer touches it).</summary>
        public void Release()
        {
            ArrayPool<CounterUpdate>.Shared.Return(Updates, clearArray: true);
            ArrayPool<CounterResult>.Shared.Return(Results);
        }
    }

    // Callers resumed in turn on one thread. One thread-pool hop per caller (as continuations run asynchronously) cost
    // the service about a third more CPU per call under load, in waking and parking workers; a chunk still leaves a
    // large batch's callers to several cores, and the last of 16 waits only for the others' answers to be written.
    private const int ResumeChunk = 16;

    /// <summary>Callers that resume one after another on one pool thread (a copy: the batch's array goes back to the pool).</summary>
    private sealed class ResumeChunkItem(PendingCall[] calls) : IThreadPoolWorkItem
    {
        public void Execute()
        {
            foreach (var call in calls)
                call.Finish();
        }
    }

    private sealed class Batch
    {
        private PendingCall[] _calls = ArrayPool<PendingCall>.Shared.Rent(16);

        // Callers still waiting, plus one for the batcher until the batch is sent; the slot goes at 0 or on completion.
        private int _waiters = 1;
        private int _slotFreed;

        public PendingCall[] Calls => _calls;

        public int Count { get; private set; }

        public int Counters { get; private set; }

        public void AddWaiter() => Interlocked.Increment(ref _waiters);

        /// <summary>True for the last waiter.</summary>
        public bool ReleaseWaiter() => Interlocked.Decrement(ref _waiters) == 0;

        /// <summary>True once: the batch's in-flight slot is to be freed.</summary>
        public bool TryFreeSlot() => Interlocked.Exchange(ref _slotFreed, 1) == 0;

        public void Add(PendingCall call)
        {
            if (Count == _calls.Length)
            {
                var larger = ArrayPool<PendingCall>.Shared.Rent(Count * 2);
                _calls.AsSpan(0, Count).CopyTo(larger);
                ArrayPool<PendingCall>.Shared.Return(_calls, clearArray: true);
                _calls = larger;
            }
            _calls[Count++] = call;
            Counters += call.Count;
        }

        /// <summary>Fills each call's slots from the flat reply and completes it; a call with a refused update fails alone.</summary>
        public void Complete(RedisResult reply)
        {
            if (reply.Resp2Type != ResultType.Array || reply.Length != Counters * 3)
            {
                Fail(new CounterStoreException("Redis answered the counter script with an unexpected reply."));
                return;
            }
            var r = 0;
            for (var c = 0; c < Count; c++)
            {
                var call = _calls[c];
                string? error = null;
                for (var i = 0; i < call.Count; i++, r += 3)
                {
                    var count = reply[r];
                    if (count.Resp2Type == ResultType.Error)
                    {
                        error ??= count.ToString();
                        continue;
                    }
                    var applied = (long)reply[r + 2] == 1;
                    var value = (ulong)Math.Max(0, (long)count);
                    call.Results[i] = new CounterResult(applied ? value : CounterMath.Add(value, call.Updates[i].Hits), (ulong)Math.Max(0, (long)reply[r + 1]), applied);
                }
                if (error is not null)
                    call.Failure = RedisCounterStore.Refused(error);
            }
        }

        /// <summary>Fails every call of the batch, each with its own exception.</summary>
        public void Fail(Exception failure)
        {
            for (var c = 0; c < Count; c++)
            {
                _calls[c].Failure = failure switch
                {
                    CounterStoreException e => new CounterStoreException(e.Message),
                    _ when RedisCounterStore.IsRedisFailure(failure) => RedisCounterStore.Translate(failure),
                    _ => new CounterStoreException($"The Redis counter batch failed ({failure.GetType().Name})."),
                };
            }
        }

        /// <summary>
        /// Resumes the callers in chunks of <see cref="ResumeChunk"/>, each chunk one after another on one thread: the last
        /// <see cref="ResumeChunk"/> on this thread when <paramref name="inlineLast"/>, the others on the thread pool.
        /// </summary>
        public void Finish(bool inlineLast)
        {
            var count = Count;
            var inlineFrom = inlineLast ? Math.Max(0, count - ResumeChunk) : count;
            for (var start = 0; start < inlineFrom; start += ResumeChunk)
                ThreadPool.UnsafeQueueUserWorkItem(new ResumeChunkItem(_calls.AsSpan(start, Math.Min(ResumeChunk, inlineFrom - start)).ToArray()), preferLocal: false);
            for (var c = inlineFrom; c < count; c++)
                _calls[c].Finish();
        }

        public void Return()
        {
            ArrayPool<PendingCall>.Shared.Return(_calls, clearArray: true);
            _calls = [];
            Count = 0;
        }
    }
}
