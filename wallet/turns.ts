// Work and waiters let through one per turn of the event loop, in order, urgent ones first. Three
// uses, one mechanism:
//   - the swap thread's curve arithmetic in slices (wallet/swap/steps.ts): a background refill of
//     40 outputs is ~250 ms of unblinding and DLEQ checks, and a payment whose token waits for a
//     split of its own would queue behind all of it; each slice runs in a turn of its own, the
//     payment's (urgent) first, so it waits for at most one slice of someone else's work;
//   - payments released together (wallet/payments/reserve.ts): all those woken by the end of one
//     split would resume in the same turn, each taking its token (a commit each) - hundreds at once
//     held the loop for 50-100 ms in the 1,000-stream bench; one a turn, the loop reads sockets and
//     fires timers between them;
//   - requests released together (daemon/requests/lifecycle.ts): a burst read in one poll of the
//     sockets, or a thousand streams ending in one, pay and settle one per turn, a commit each.
// Same-priority work takes turns: a job that queues its next slice when it ends goes behind the
// others already waiting.
export class TurnQueue {
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

  /** Resolves in a turn of its own, after those already waiting (not urgent). */
  pass(): Promise<void> {
    return this.run(false, () => undefined);
  }

  /** Jobs waiting, urgent and not. */
  get size(): { urgent: number; rest: number } {
    return { urgent: this.urgent.length, rest: this.rest.length };
  }

  private readonly next = (): void => {
    (this.urgent.shift() ?? this.rest.shift())?.();
    if (this.urgent.length || this.rest.length) setImmediate(this.next);
    else this.scheduled = false;
  };
}
