// The swap thread's curve arithmetic in slices, a payment's first. A background refill of 40
// outputs is ~250 ms of unblinding and DLEQ checks; a payment whose token waits for a split of its
// own would queue behind all of it. Each slice of work runs in its own turn of the thread's event
// loop, urgent slices (a split a payment waits for) before the rest, so such a payment waits for at
// most one slice of someone else's work. Same-priority work takes turns slice by slice.
export class CpuQueue {
  private readonly urgent: (() => void)[] = [];
  private readonly rest: (() => void)[] = [];
  private scheduled = false;

  /** Run `fn` in a turn of its own, after the urgent work queued before it (and, if not urgent, all urgent work). */
  run<T>(urgent: boolean, fn: () => T): Promise<Awaited<T>> {
    return new Promise<Awaited<T>>((resolve, reject) => {
      (urgent ? this.urgent : this.rest).push(() => {
        try {
          Promise.resolve(fn()).then(resolve, reject);
        } catch (err) {
          reject(err);
        }
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.next);
      }
    });
  }

  /** Slices waiting, urgent and not. */
  get size(): { urgent: number; rest: number } {
    return { urgent: this.urgent.length, rest: this.rest.length };
  }

  private readonly next = (): void => {
    (this.urgent.shift() ?? this.rest.shift())?.();
    if (this.urgent.length || this.rest.length) setImmediate(this.next);
    else this.scheduled = false;
  };
}
