// The clients' messages are handled in slices of at most `sliceMs` per turn of the event loop,
// one queue for all connections (first come, first served; each connection's messages stay in
// order). A burst - a thousand requests arriving in one poll of the sockets - is spread over a
// few turns instead of holding the loop for its whole length, so streams already running keep
// their pace. A slice also ends after `maxPerTurn` messages: what a request message starts goes
// on in promise continuations after the slice (taking the token, its commit, the provider call),
// outside the clock the slice reads, so a slice of cheap admissions could still hold the loop
// for tens of ms. A connection with more than `maxQueuedPerConnection` messages waiting is paused
// (TCP pushes back on the client) until its backlog is handled.
import { performance } from 'node:perf_hooks';

export interface InboxOwner {
  /** Stop / restart reading this connection's socket. */
  pause(): void;
  resume(): void;
}

interface Task {
  owner: InboxOwner;
  run: () => void;
}

export class Inbox {
  private queue: Task[] = [];
  private head = 0;
  private scheduled = false;
  private readonly queued = new Map<InboxOwner, number>();
  private readonly paused = new Set<InboxOwner>();

  private readonly sliceMs: number;
  private readonly maxPerTurn: number;
  private readonly maxQueuedPerConnection: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;

  constructor(opts: { sliceMs?: number; maxPerTurn?: number; maxQueuedPerConnection?: number; now?: () => number; onError?: (err: unknown) => void } = {}) {
    this.sliceMs = opts.sliceMs ?? 5;
    this.maxPerTurn = opts.maxPerTurn ?? 2;
    this.maxQueuedPerConnection = opts.maxQueuedPerConnection ?? 256;
    this.now = opts.now ?? (() => performance.now());
    this.onError = opts.onError ?? (() => {});
  }

  /** Messages waiting, all connections. */
  get size(): number {
    return this.queue.length - this.head;
  }

  push(owner: InboxOwner, run: () => void): void {
    this.queue.push({ owner, run });
    const n = (this.queued.get(owner) ?? 0) + 1;
    this.queued.set(owner, n);
    if (n > this.maxQueuedPerConnection && !this.paused.has(owner)) {
      this.paused.add(owner);
      owner.pause();
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  /** Forget a closed connection's waiting messages. */
  drop(owner: InboxOwner): void {
    if (!this.queued.has(owner)) return;
    this.queue = this.queue.slice(this.head).filter((t) => t.owner !== owner);
    this.head = 0;
    this.queued.delete(owner);
    this.paused.delete(owner);
  }

  private readonly drain = (): void => {
    const end = this.now() + this.sliceMs;
    let n = 0;
    do {
      const task = this.queue[this.head++];
      const left = this.queued.get(task.owner)! - 1;
      if (left === 0) this.queued.delete(task.owner);
      else this.queued.set(task.owner, left);
      if (left === 0 && this.paused.delete(task.owner)) task.owner.resume();
      try {
        task.run();
      } catch (err) {
        this.onError(err); // one bad message must not stop everyone's
      }
    } while (this.head < this.queue.length && ++n < this.maxPerTurn && this.now() < end);
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      this.scheduled = false;
    } else {
      if (this.head > 1024) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      setImmediate(this.drain);
    }
  };
}
