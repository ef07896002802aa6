// One WebSocket request as the lifecycle sees it: the `ResponseSink` that turns its calls into
// messages for the client's `id`, and the AbortController behind `ApiRequest.signal`.
//
// Every request ends with exactly one terminal message, `done` or `error`; after it the `id` is
// free again and anything more the lifecycle writes is dropped. Backpressure: past the high-water
// mark `chunk` returns a promise that resolves once the connection's send buffer has drained, so
// the lifecycle stops reading the upstream while the client is not reading. A request that
// would push the buffer past the hard limit, or waits longer than the stall timeout, is failed
// here (its error sent at once) and its signal aborted: the lifecycle stops the upstream call
// and settles what was charged (the client sees that on the `payments` topic).
// After a client's `cancel`, data (accepted, chunks, the response body) is no longer sent but
// the lifecycle's terminal message is: it says what the canceled request cost.
import type { Accepted, Done, ResponseSink } from '../requests/contract.ts';
import { CanceledError, toApiError, type ApiError } from './errors.ts';
import { acceptedMessage, chunkMessage, doneMessage, errorMessage, responseMessage } from './ws-messages.ts';

/** Timers as the WebSocket API uses them (injected: tests fire them by hand). */
export interface WsTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: WsTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** What a request needs from its connection. */
export interface RequestChannel {
  /** Queue one message on the socket. */
  send(text: string): void;
  /** Bytes queued on the socket, not yet handed to the kernel. */
  bufferedBytes(): number;
  /** Call `fn` once everything queued has been written (or the socket closed); returns a remover. */
  onDrain(fn: () => void): () => void;
  /** The request ended for the client (terminal sent or nothing more can be): its `id` is free. */
  release(id: string): void;
  readonly highWaterBytes: number;
  readonly hardLimitBytes: number;
  readonly stallTimeoutMs: number;
  readonly timers: WsTimers;
  /** Counters shared by the whole server (stats). */
  readonly counters: { backpressureWaits: number; backpressureFailures: number };
}

type Phase = 'open' | 'canceled' | 'ended';

export class WsRequest implements ResponseSink {
  readonly controller = new AbortController();
  /** Times `chunk` made the lifecycle wait for the client to read. */
  backpressureWaits = 0;
  private phase: Phase = 'open';
  private requestId: string | undefined;
  private wakeWaiter: (() => void) | undefined;

  constructor(readonly id: string, private readonly channel: RequestChannel) {}

  get ended(): boolean {
    return this.phase === 'ended';
  }

  accepted(a: Accepted): void {
    this.requestId = a.requestId;
    if (this.phase === 'open') this.channel.send(acceptedMessage(this.id, a));
  }

  response(body: unknown, done: Done): void {
    if (this.phase === 'ended') return;
    if (this.phase === 'open') {
      if (this.overHardLimit()) return;
      this.channel.send(responseMessage(this.id, body));
    }
    this.end(doneMessage(this.id, done));
  }

  chunk(data: unknown, event?: string): void | Promise<void> {
    if (this.phase !== 'open' || this.overHardLimit()) return;
    this.channel.send(chunkMessage(this.id, data, event));
    if (this.channel.bufferedBytes() > this.channel.highWaterBytes) return this.waitForDrain();
  }

  done(done: Done): void {
    if (this.phase !== 'ended') this.end(doneMessage(this.id, done));
  }

  error(err: ApiError, requestId?: string): void {
    if (this.phase !== 'ended') this.end(errorMessage(this.id, err, requestId ?? this.requestId));
  }

  /** The client sent `cancel`: abort the signal, stop sending data, wait for the lifecycle's terminal message. */
  cancel(): void {
    if (this.phase !== 'open') return;
    this.phase = 'canceled';
    this.wake();
    this.controller.abort(new CanceledError());
  }

  /** The connection is gone (or the daemon shuts down): nothing more can be sent. */
  abandon(reason: CanceledError): void {
    if (this.phase === 'ended') return; // answered in full: settlement goes on undisturbed
    this.phase = 'ended';
    this.wake();
    this.channel.release(this.id);
    this.controller.abort(reason);
  }

  /** `handle()` returned or threw: if the lifecycle wrote no terminal message, write one. */
  settled(outcome: { error?: unknown }): void {
    if (this.phase === 'ended') return;
    const err =
      outcome.error !== undefined ? toApiError(outcome.error)
      : this.phase === 'canceled' ? toApiError(new CanceledError())
      : toApiError(new Error('the request ended without an answer'));
    this.end(errorMessage(this.id, err, this.requestId));
  }

  private end(text: string): void {
    this.phase = 'ended';
    this.wake();
    this.channel.send(text);
    this.channel.release(this.id);
  }

  /** Fail this request because its client does not read: error now, then abort. */
  private failSlowReader(message: string): void {
    if (this.phase === 'ended') return;
    this.channel.counters.backpressureFailures++;
    const err = new CanceledError(message);
    this.end(errorMessage(this.id, toApiError(err), this.requestId));
    this.controller.abort(err);
  }

  private overHardLimit(): boolean {
    const buffered = this.channel.bufferedBytes();
    if (buffered < this.channel.hardLimitBytes) return false;
    this.failSlowReader(`request canceled: the client is not reading its messages (${buffered} bytes waiting, limit ${this.channel.hardLimitBytes})`);
    return true;
  }

  private waitForDrain(): Promise<void> {
    this.backpressureWaits++;
    this.channel.counters.backpressureWaits++;
    const { timers, stallTimeoutMs } = this.channel;
    return new Promise<void>((resolve) => {
      const finish = () => {
        timers.clearTimeout(timer);
        removeDrain();
        this.wakeWaiter = undefined;
        resolve();
      };
      const timer = timers.setTimeout(() => {
        finish();
        this.failSlowReader(`request canceled: the client read nothing for ${Math.round(stallTimeoutMs / 1000)} s`);
      }, stallTimeoutMs);
      const removeDrain = this.channel.onDrain(finish);
      this.wakeWaiter = finish;
    });
  }

  private wake(): void {
    this.wakeWaiter?.();
  }
}
