using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using StackExchange.Redis;

namespace Legate.RateLimit.Stores;

/// <summary>
/// Group commit for <see cref="RedisCounterStore"/> on a standalone Redis (or a Sentinel's primary): the updates of
/// concurrent calls go to Redis together, as one run of a script that applies them one after another. A script's
/// fixed cost (the command, the round trip, the client's and Redis's per-command work) is then paid once per batch
/// instead of once per counter. The script runs atomically, so each counter stays atomic and updates of one counter
/// inside a batch act exactly as if applied in turn. The unconditional additions of a batch to one counter (a hot
/// tenant's, the usual case under load) go as one entry of the script, so Redis's and this side's work per batch grows with
/// the distinct counters rather than with the calls.
/// No added latency: a call queues its updates and, while fewer than <c>maxInFlight</c> batches are out, sends the
/// queue itself; a batch that completes sends what queued up meanwhile. So a lone call goes out at once, and under load
/// calls gather while a batch is in flight.
/// Nothing per call but a pooled call object: it is the caller's task, and one timer per batch in flight keeps its
/// callers' deadlines (calls queue in order, so a queued call's deadline never comes before those of the batches out).
/// A call owns a copy of its updates; the caller's result slots are written only by whoever settles the call first —
/// its batch, or its deadline or cancellation, which write nothing — so never after the caller stopped waiting.
/// </summary>
internal sealed class RedisBatcher
{
    // KEYS: the batch's distinct keys (counters and previous windows), each once.
    // ARGV: per entry six values: its counter's KEYS index, hits, TTL in ms, limit ('' = add unconditionally), its
    // previous window's KEYS index ('' = none) and that window's weight 0..1. An entry is one update, or several
    // unconditional additions to one counter that nothing else touched in between, as one addition of their sum (see Send).
    // Returns three values per entry, {count, previous, applied}, as the single-counter script; an entry Redis refuses
    // (WRONGTYPE ...) returns its error in place of the count and leaves the other entries unaffected.
    // A counter that several updates touch (a hot tenant's) is read or added to once, then counted in the script's own
    // table, and its additions written back with one INCRBY at the end: Redis runs a handful of commands per distinct
    // counter instead of two or three per update. The script is atomic, so this is the same as applying them in turn.
    // Lua numbers are doubles: counting in the table stops below 2^50, beyond which updates go to Redis one by one.
    // Expiry as in the single-counter script: set by the add that created the key, or on a key found without one.
    // Counts returned are capped at 2^53 and an INCRBY that would pass 2^63 answers that cap, as in the single-counter
    // script (see RedisCounterStore.Saturated): additions in the table stop at 2^50, so only a direct INCRBY can overflow.
    internal const string Script = """
        local BIG = 1125899906842624
        local CAP = 9007199254740992
        local value, pending, fresh, ttl, bad = {}, {}, {}, {}, {}
        local function failed(r) return type(r) == 'table' and r.err end
        local function load(k)
          if value[k] == nil and not bad[k] then
            local c = redis.pcall('GET', KEYS[k])
            if failed(c) then bad[k] = c else value[k] = tonumber(c or '0'); pending[k] = 0; fresh[k] = not c end
          end
        end
        local function incrby(k, h)
          local c = redis.pcall('INCRBY', KEYS[k], h)
          if failed(c) and string.find(c.err, 'overflow', 1, true) then return CAP end
          return c
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
              local c = incrby(k, hits)
              if failed(c) then
                err = c
              else
                value[k] = c; pending[k] = 0; fresh[k] = (c == h and c ~= CAP); ttl[k] = ARGV[i + 2]; count = c
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
                local c = bad[k] or incrby(k, hits)
                if failed(c) then err = c else value[k] = c; count = c end
              end
              if count ~= nil and applied == 1 and h > 0 and ttl[k] == nil then ttl[k] = ARGV[i + 2] end
            end
          end
          if err then out[n + 1] = err else out[n + 1] = math.min(count, CAP) end
          out[n + 2] = math.min(prev, CAP)
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
    private readonly long _timeoutTicks;
    private readonly TimeProvider _time;
    private readonly int _maxCounters;
    private readonly int _maxInFlight;
    private readonly ConcurrentQueue<PendingCall> _queue = new();
    private readonly ConcurrentQueue<PendingCall> _pool = new();
    private int _pooled;
    private int _inFlight;
    private long _scripts;
    private long _counters;
    private long _entries;

    public RedisBatcher(IDatabaseAsync database, TimeSpan timeout, TimeProvider time, int maxCounters, int maxInFlight)
    {
        _database = database;
        _timeout = timeout;
        _time = time;
        _timeoutTicks = (long)Math.Ceiling(timeout.TotalSeconds * time.TimestampFrequency);
        _maxCounters = maxCounters;
        _maxInFlight = maxInFlight;
    }

    /// <summary>Scripts sent so far.</summary>
    public long Scripts => Interlocked.Read(ref _scripts);

    /// <summary>Counter updates sent so far.</summary>
    public long Counters => Interlocked.Read(ref _counters);

    /// <summary>Script entries sent so far: updates, less those merged into an unconditional addition before them.</summary>
    public long Entries => Interlocked.Read(ref _entries);

    /// <summary>
    /// Queues the updates and returns a task that the call itself completes (a pooled <see cref="IValueTaskSource"/>):
    /// no task, timer or async state machine per call. The deadline is kept by one timer per batch in flight.
    /// </summary>
    public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var call = Rent();
        // The deadline runs from here, not from after this caller's turn at sending batches.
        call.Start(updates.Span, results, _time.GetTimestamp() + _timeoutTicks);
        if (cancellationToken.CanBeCanceled)
            call.CancelWith(cancellationToken);
        _queue.Enqueue(call);
        // Dekker-style hand-off with a completing batch (which frees its slot, a full fence, then looks at the queue):
        // the enqueue must be visible before this caller reads the in-flight count, or both could miss the call.
        Interlocked.MemoryBarrier();
        Drain();
        return new ValueTask(call, call.Version);
    }

    private CounterStoreException TimedOut() =>
        new($"Redis did not answer within {_timeout.TotalMilliseconds:F0} ms.") { TimedOut = true };

    private PendingCall Rent()
    {
        if (_pool.TryDequeue(out var call))
        {
            Interlocked.Decrement(ref _pooled);
            return call;
        }
        return new PendingCall(this);
    }

    // Bounded: the pool only needs as many calls as are waiting at once under load.
    private void Return(PendingCall call)
    {
        if (Interlocked.Increment(ref _pooled) <= 4096)
            _pool.Enqueue(call);
        else
            Interlocked.Decrement(ref _pooled);
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
        var now = _time.GetTimestamp();
        while (batch is null || batch.Counters < _maxCounters)
        {
            if (!_queue.TryDequeue(out var call))
                break;
            // A call past its deadline before its turn (the batches before it hung until theirs) is never sent.
            if (call.Deadline <= now)
            {
                call.TryExpire(null);
                continue;
            }
            batch ??= new Batch(this);
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
    /// A call of <paramref name="batch"/> stopped waiting (its deadline passed or its caller cancelled). The last one to
    /// give up frees the batch's slot: nobody waits for that batch any more, so the calls queued behind it go now instead
    /// of when Redis (or the multiplexer's own timeout) finally answers it.
    /// </summary>
    private void Left(Batch batch)
    {
        if (batch.ReleaseWaiter())
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
            // Sent: from now on the batch's slot is held only while one of its callers still waits (see Left), and its
            // callers leave at their deadlines.
            batch.StartDeadline();
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
            batch.StopDeadline();
            batch.Finish(inlineLast: t_draining is null);
            batch.Return();
        }
    }

    private Task<RedisResult> Send(Batch batch)
    {
        // Each distinct key goes once; entries name it by its position (1-based, as Lua's KEYS).
        var slots = new Dictionary<string, KeySlot>(batch.Counters, StringComparer.Ordinal);
        var keys = new List<RedisKey>(batch.Counters);
        var scratch = ArrayPool<RedisValue>.Shared.Rent(batch.Counters * 6);
        var plan = batch.Plan();
        var calls = batch.Calls;
        var entries = 0;
        try
        {
            for (int c = 0, u = 0; c < batch.Count; c++)
            {
                var call = calls[c];
                for (var i = 0; i < call.Count; i++, u++)
                {
                    ref readonly var update = ref call.Updates[i];
                    // Redis counts in signed 64 bits; a larger addend would only make INCRBY fail.
                    var hits = (long)Math.Min(update.Hits, long.MaxValue);
                    var previous = 0;
                    if (update.PreviousWindowKey is { } previousKey)
                    {
                        // Read by this update: a later addition to it must not move before the read.
                        ref var read = ref Slot(previousKey);
                        read.OpenEntry = -1;
                        previous = read.Position;
                    }
                    ref var slot = ref Slot(update.Key);
                    var mergeable = !update.OnlyIfWithinLimit && hits > 0 && previous == 0;
                    if (mergeable && slot.OpenEntry >= 0 && hits < MergedHitsBound - plan.Sums[slot.OpenEntry])
                    {
                        // Unconditional additions to one counter with nothing on it in between: applying them in turn is
                        // one INCRBY of their sum, and each one's count is where its own part of the sum ends.
                        var entry = slot.OpenEntry;
                        plan.Sums[entry] += hits;
                        scratch[(entry * 6) + 1] = plan.Sums[entry];
                        plan.Entry[u] = entry;
                        plan.UpTo[u] = plan.Sums[entry];
                        continue;
                    }
                    var v = entries * 6;
                    scratch[v] = slot.Position;
                    scratch[v + 1] = hits;
                    scratch[v + 2] = CounterMath.TtlMilliseconds(update.Ttl);
                    scratch[v + 3] = update.OnlyIfWithinLimit ? update.Limit : RedisValue.EmptyString;
                    scratch[v + 4] = previous == 0 ? RedisValue.EmptyString : previous;
                    scratch[v + 5] = previous == 0 ? RedisValue.EmptyString : CounterMath.Weight(update);
                    plan.Sums[entries] = hits;
                    plan.Entry[u] = entries;
                    plan.UpTo[u] = hits;
                    slot.OpenEntry = mergeable ? entries : -1;
                    entries++;
                }
            }
            plan.Entries = entries;
            Interlocked.Increment(ref _scripts);
            Interlocked.Add(ref _counters, batch.Counters);
            Interlocked.Add(ref _entries, entries);
            return _database.ScriptEvaluateAsync(Script, [.. keys], scratch.AsSpan(0, entries * 6).ToArray());
        }
        finally
        {
            ArrayPool<RedisValue>.Shared.Return(scratch, clearArray: true);
        }

        // A ref into the dictionary's storage: a later Slot call may add a key and move it, so each ref is done with
        // before the next call.
        ref KeySlot Slot(string key)
        {
            ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(slots, key, out var exists);
            if (!exists)
            {
                keys.Add(key);
                slot = new KeySlot(keys.Count, -1);
            }
            return ref slot;
        }
    }

    // A merged entry's sum stays where the script still counts in Lua's doubles (below 2^50), so only a counter within
    // 2^50 of Redis's signed 64-bit limit can tell merged additions from separate ones: there, an addition that would
    // overflow leaves the counter as it is for its whole entry, not only for itself and the ones after it (all of them
    // answer the saturated count either way).
    private const long MergedHitsBound = 1L << 50;

    /// <summary>A key's position in KEYS, and the entry that unconditional additions to it may still join (-1: none).</summary>
    private struct KeySlot(int position, int openEntry)
    {
        public readonly int Position = position;
        public int OpenEntry = openEntry;
    }

    /// <summary>
    /// How a batch's updates went into the script's entries: update <c>u</c> (in queue order) is part of entry
    /// <c>Entry[u]</c>, whose hits add up to <c>Sums[entry]</c>, and its own part of that sum ends at <c>UpTo[u]</c>.
    /// </summary>
    private sealed class BatchPlan
    {
        public int[] Entry = [];
        public long[] UpTo = [];
        public long[] Sums = [];
        public int Entries;

        public void Rent(int updates)
        {
            Entry = ArrayPool<int>.Shared.Rent(updates);
            UpTo = ArrayPool<long>.Shared.Rent(updates);
            Sums = ArrayPool<long>.Shared.Rent(updates);
            Entries = 0;
        }

        public void Return()
        {
            if (Entry.Length == 0)
                return;
            ArrayPool<int>.Shared.Return(Entry);
            ArrayPool<long>.Shared.Return(UpTo);
            ArrayPool<long>.Shared.Return(Sums);
            Entry = [];
            UpTo = [];
            Sums = [];
        }
    }

    /// <summary>
    /// One caller's updates (a copy: the caller's buffers may go back to a pool once it stopped waiting) and its result
    /// slots, which only the one that settles the call writes: its batch, having claimed it, or nobody. The call is the
    /// caller's task (an <see cref="IValueTaskSource"/>) and goes back to the batcher's pool once the caller read an
    /// answer its batch gave; a call that timed out or was cancelled may still be queued or in a batch, and is left to
    /// the GC.
    /// </summary>
    private sealed class PendingCall(RedisBatcher owner) : IValueTaskSource
    {
        private const int Queued = 0;
        private const int Taken = 1;
        private const int Claimed = 2; // by its batch, which answers it
        private const int Gone = 3; // its caller left: timed out or cancelled

        private ManualResetValueTaskSourceCore<bool> _core;
        private int _state;
        private Batch? _batch;
        private CounterUpdate[] _updates = [];
        private Memory<CounterResult> _results;
        private CancellationTokenRegistration _cancellation;

        public int Count { get; private set; }

        public CounterUpdate[] Updates => _updates;

        /// <summary>When the caller stops waiting, as a <see cref="TimeProvider"/> timestamp.</summary>
        public long Deadline { get; private set; }

        /// <summary>Why the call failed, once its batch answered; null when it succeeded.</summary>
        public Exception? Failure { get; set; }

        public short Version => _core.Version;

        public void Start(ReadOnlySpan<CounterUpdate> updates, Memory<CounterResult> results, long deadline)
        {
            foreach (ref readonly var update in updates)
                ArgumentNullException.ThrowIfNull(update.Key, nameof(updates));
            if (results.Length < updates.Length)
                throw new ArgumentException("There must be a result slot for every update.", nameof(results));
            _core.Reset();
            _state = Queued;
            _batch = null;
            Failure = null;
            Count = updates.Length;
            if (_updates.Length < Count)
                _updates = new CounterUpdate[Math.Max(Count, 4)];
            updates.CopyTo(_updates);
            _results = results;
            Deadline = deadline;
        }

        public void CancelWith(CancellationToken cancellationToken) =>
            _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((PendingCall)state!).Cancel(token), this);

        /// <summary>Puts the call into <paramref name="batch"/>, which then holds a waiter for it; false when its caller already left.</summary>
        public bool TryTake(Batch batch)
        {
            _batch = batch;
            batch.AddWaiter();
            if (Interlocked.CompareExchange(ref _state, Taken, Queued) == Queued)
                return true;
            batch.ReleaseWaiter(); // never the last: the batch's builder holds one
            return false;
        }

        /// <summary>The batch's answer goes to this call: false when its caller already left.</summary>
        public bool TryClaim() => Interlocked.CompareExchange(ref _state, Claimed, Taken) == Taken;

        /// <summary>Writes the caller's result slot <paramref name="index"/>; only for a claimed call.</summary>
        public void SetResult(int index, CounterResult result) => _results.Span[index] = result;

        /// <summary>
        /// The deadline passed before an answer: the caller leaves with a timeout. False when the call was answered or
        /// left already. The caller resumes at once unless <paramref name="resumeLater"/> collects it (see <see cref="Batch"/>).
        /// </summary>
        public bool TryExpire(List<PendingCall>? resumeLater)
        {
            if (!TryLeave(out var batch))
                return false;
            Failure = owner.TimedOut();
            if (resumeLater is not null)
            {
                resumeLater.Add(this);
                return true;
            }
            Resume(batch);
            return true;
        }

        private void Cancel(CancellationToken token)
        {
            if (!TryLeave(out var batch))
                return;
            Failure = new OperationCanceledException(token);
            Resume(batch);
        }

        /// <summary>After <see cref="TryExpire"/> with a list: the batch's waiter goes, then the caller resumes.</summary>
        public void Resume() => Resume(_batch);

        private void Resume(Batch? batch)
        {
            if (batch is not null)
                owner.Left(batch);
            _core.SetException(Failure!);
        }

        private bool TryLeave(out Batch? batch)
        {
            var state = Volatile.Read(ref _state);
            while (state is Queued or Taken)
            {
                var seen = Interlocked.CompareExchange(ref _state, Gone, state);
                if (seen == state)
                {
                    // Taken: the batch holds a waiter for this call, which goes now.
                    batch = state == Taken ? _batch : null;
                    return true;
                }
                state = seen;
            }
            batch = null;
            return false;
        }

        /// <summary>Resumes the caller of a claimed call, on this thread (see <see cref="Batch.Finish"/>).</summary>
        public void Finish()
        {
            if (Failure is null)
                _core.SetResult(true);
            else
                _core.SetException(Failure);
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        public void GetResult(short token)
        {
            var answered = Volatile.Read(ref _state) == Claimed;
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                // The registration's callback may be running: Dispose waits for it (unless this is that callback).
                _cancellation.Dispose();
                _cancellation = default;
                if (answered)
                {
                    Array.Clear(_updates, 0, Count); // drop the keys
                    _results = default;
                    _batch = null;
                    owner.Return(this);
                }
            }
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

    private sealed class Batch(RedisBatcher owner)
    {
        private PendingCall[] _calls = ArrayPool<PendingCall>.Shared.Rent(16);
        private readonly BatchPlan _plan = new();

        // Callers still waiting, plus one for the batcher until the batch is sent; the slot goes at 0 or on completion.
        private int _waiters = 1;
        private int _slotFreed;

        // The deadline timer and whether it may still act; both under the lock, so that once the batch answers (and its
        // calls may go back to the pool for other callers) the timer never touches a call of this batch again.
        private ITimer? _deadline;
        private bool _answered;
        private int _claimed;

        public PendingCall[] Calls => _calls;

        /// <summary>The plan <see cref="Send"/> fills and <see cref="Complete"/> reads, sized for the batch's updates.</summary>
        public BatchPlan Plan()
        {
            _plan.Rent(Counters);
            return _plan;
        }

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

        /// <summary>One timer for the batch, due at its first caller's deadline (calls queue in order).</summary>
        public void StartDeadline()
        {
            long? earliest = null;
            for (var c = 0; c < Count; c++)
                earliest = Math.Min(earliest ?? long.MaxValue, _calls[c].Deadline);
            if (earliest is not { } first)
                return;
            // At once for a call whose deadline passed since it was taken.
            var due = owner._time.GetElapsedTime(owner._time.GetTimestamp(), first);
            lock (this)
            {
                if (!_answered)
                    _deadline = owner._time.CreateTimer(static state => ((Batch)state!).OnDeadline(), this, due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan);
            }
        }

        /// <summary>The batch answered: its timer stops, before any of its callers resumes.</summary>
        public void StopDeadline()
        {
            lock (this)
            {
                _answered = true;
                _deadline?.Dispose();
                _deadline = null;
            }
        }

        private void OnDeadline()
        {
            List<PendingCall>? expired = null;
            lock (this)
            {
                if (_answered)
                    return;
                var now = owner._time.GetTimestamp();
                for (var c = 0; c < Count; c++)
                {
                    if (_calls[c].Deadline <= now)
                        _calls[c].TryExpire(expired ??= []);
                }
                if (NextDeadline(now) is { } due)
                    _deadline?.Change(due, Timeout.InfiniteTimeSpan);
            }
            // Outside the lock: resuming runs the callers' continuations.
            if (expired is not null)
            {
                foreach (var call in expired)
                    call.Resume();
            }
        }

        // Time until the earliest deadline of a call still waiting; null when none is.
        private TimeSpan? NextDeadline(long now)
        {
            long? earliest = null;
            for (var c = 0; c < Count; c++)
            {
                var call = _calls[c];
                if (call.Deadline > now && (earliest is null || call.Deadline < earliest))
                    earliest = call.Deadline;
            }
            return earliest is { } e ? owner._time.GetElapsedTime(now, e) : null;
        }

        /// <summary>Fills each waiting call's slots from the flat reply; a call with a refused update fails alone.</summary>
        public void Complete(RedisResult reply)
        {
            var plan = _plan;
            if (reply.Resp2Type != ResultType.Array || reply.Length != plan.Entries * 3)
            {
                Fail(new CounterStoreException("Redis answered the counter script with an unexpected reply."));
                return;
            }
            var u = 0;
            for (var c = 0; c < Count; c++)
            {
                var call = _calls[c];
                if (!call.TryClaim())
                {
                    u += call.Count;
                    continue;
                }
                string? error = null;
                for (var i = 0; i < call.Count; i++, u++)
                {
                    var entry = plan.Entry[u];
                    var count = reply[entry * 3];
                    if (count.Resp2Type == ResultType.Error)
                    {
                        error ??= count.ToString();
                        continue;
                    }
                    var applied = (long)reply[(entry * 3) + 2] == 1;
                    // The entry's count is after all of its hits; this update's count is after its own part of them.
                    var value = (ulong)Math.Max(0, (long)count - (plan.Sums[entry] - plan.UpTo[u]));
                    call.SetResult(i, new CounterResult(applied ? value : CounterMath.Add(value, call.Updates[i].Hits), (ulong)Math.Max(0, (long)reply[(entry * 3) + 1]), applied));
                }
                if (error is not null)
                    call.Failure = RedisCounterStore.Refused(error);
                _calls[_claimed++] = call;
            }
        }

        /// <summary>Fails every waiting call of the batch, each with its own exception.</summary>
        public void Fail(Exception failure)
        {
            for (var c = _claimed; c < Count; c++)
            {
                var call = _calls[c];
                if (!call.TryClaim())
                    continue;
                call.Failure = failure switch
                {
                    CounterStoreException e => new CounterStoreException(e.Message),
                    _ when RedisCounterStore.IsRedisFailure(failure) => RedisCounterStore.Translate(failure),
                    _ => new CounterStoreException($"The Redis counter batch failed ({failure.GetType().Name})."),
                };
                _calls[_claimed++] = call;
            }
        }

        /// <summary>
        /// Resumes the claimed callers in chunks of <see cref="ResumeChunk"/>, each chunk one after another on one thread:
        /// the last <see cref="ResumeChunk"/> on this thread when <paramref name="inlineLast"/>, the others on the thread pool.
        /// </summary>
        public void Finish(bool inlineLast)
        {
            var count = _claimed;
            var inlineFrom = inlineLast ? Math.Max(0, count - ResumeChunk) : count;
            for (var start = 0; start < inlineFrom; start += ResumeChunk)
                ThreadPool.UnsafeQueueUserWorkItem(new ResumeChunkItem(_calls.AsSpan(start, Math.Min(ResumeChunk, inlineFrom - start)).ToArray()), preferLocal: false);
            for (var c = inlineFrom; c < count; c++)
                _calls[c].Finish();
        }

        public void Return()
        {
            _plan.Return();
            ArrayPool<PendingCall>.Shared.Return(_calls, clearArray: true);
            _calls = [];
            Count = 0;
            _claimed = 0;
        }
    }
}
