using System.Buffers;

namespace Legate.RateLimit.Stores;

/// <summary>
/// A layer in front of a shared store that answers some updates from what it knows in this process and sends the rest
/// to the shared store, in their order, in one call; then learns from what the store answered. A call it answers
/// entirely completes without an await, and a call it answers none of goes through as it is, without copies.
/// </summary>
public abstract class LocalFirstCounterStore : ICounterStore
{
    private readonly ICounterStore _inner;

    protected LocalFirstCounterStore(ICounterStore inner, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(time);
        _inner = inner;
        Time = time;
    }

    /// <summary>The shared store's name: this layer is not a store of its own.</summary>
    public string Name => _inner.Name;

    /// <summary>Calls not answered here wait for the shared store, within its bound.</summary>
    public TimeSpan? Deadline => _inner.Deadline;

    /// <summary>The store the updates not answered here go to.</summary>
    public ICounterStore Inner => _inner;

    protected TimeProvider Time { get; }

    public ValueTask UpdateAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, CancellationToken cancellationToken)
    {
        if (results.Length < updates.Length)
            throw new ArgumentException("There must be a result slot for every update.", nameof(results));
        cancellationToken.ThrowIfCancellationRequested();
        var now = Time.GetTimestamp();
        var source = updates.Span;
        var target = results.Span;
        int[]? slots = null; // positions of the forwarded updates, rented only once one is answered here
        var forwarded = 0;
        for (var i = 0; i < source.Length; i++)
        {
            ArgumentNullException.ThrowIfNull(source[i].Key, nameof(updates));
            if (TryAnswer(source[i], now, out target[i]))
            {
                if (slots is null)
                {
                    slots = ArrayPool<int>.Shared.Rent(source.Length);
                    for (var j = 0; j < i; j++)
                        slots[j] = j; // every update before the first answered one was forwarded
                }
                continue;
            }
            if (slots is not null)
                slots[forwarded] = i;
            forwarded++;
        }
        Counted(source.Length - forwarded, forwarded);

        if (slots is null)
        {
            if (forwarded == 0)
                return ValueTask.CompletedTask;
            // None answered here: the call goes through as it is.
            ValueTask pending;
            try
            {
                pending = _inner.UpdateAsync(updates, results, cancellationToken);
            }
            catch
            {
                Unanswered(updates.Span);
                throw;
            }
            if (!pending.IsCompletedSuccessfully)
                return LearnAfterAsync(pending, updates, results);
            pending.GetAwaiter().GetResult();
            Learn(updates.Span, results.Span);
            return ValueTask.CompletedTask;
        }
        if (forwarded == 0)
        {
            ArrayPool<int>.Shared.Return(slots);
            return ValueTask.CompletedTask;
        }
        return ForwardAsync(updates, results, slots, forwarded, cancellationToken);
    }

    /// <summary>Answers the update from what this layer knows; false sends it to the shared store.</summary>
    protected abstract bool TryAnswer(in CounterUpdate update, long now, out CounterResult result);

    /// <summary>What the shared store answered for the updates sent to it (in their order).</summary>
    protected abstract void Learn(ReadOnlySpan<CounterUpdate> updates, ReadOnlySpan<CounterResult> results);

    /// <summary>The shared store failed (or the caller cancelled) the updates sent to it: no answer to learn from.</summary>
    protected virtual void Unanswered(ReadOnlySpan<CounterUpdate> updates)
    {
    }

    /// <summary>How many updates of a call were answered here and how many were sent on.</summary>
    protected virtual void Counted(int answered, int forwarded)
    {
    }

    private async ValueTask LearnAfterAsync(ValueTask pending, ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        catch
        {
            Unanswered(updates.Span);
            throw;
        }
        Learn(updates.Span, results.Span);
    }

    // Sends only the updates not answered here, in their order, and puts each answer back in its slot.
    private async ValueTask ForwardAsync(ReadOnlyMemory<CounterUpdate> updates, Memory<CounterResult> results, int[] slots, int count, CancellationToken cancellationToken)
    {
        var forwarded = ArrayPool<CounterUpdate>.Shared.Rent(count);
        var answers = ArrayPool<CounterResult>.Shared.Rent(count);
        try
        {
            var source = updates.Span;
            for (var j = 0; j < count; j++)
                forwarded[j] = source[slots[j]];
            try
            {
                await _inner.UpdateAsync(forwarded.AsMemory(0, count), answers.AsMemory(0, count), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                Unanswered(forwarded.AsSpan(0, count));
                throw;
            }
            Learn(forwarded.AsSpan(0, count), answers.AsSpan(0, count));
            var target = results.Span;
            for (var j = 0; j < count; j++)
                target[slots[j]] = answers[j];
        }
        finally
        {
            ArrayPool<CounterUpdate>.Shared.Return(forwarded, clearArray: true);
            ArrayPool<CounterResult>.Shared.Return(answers);
            ArrayPool<int>.Shared.Return(slots);
        }
    }
}
