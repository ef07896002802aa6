// The body of a streamed 200 answer: SSE events handed over one by one as they arrive, with
// the usage and cost they report collected on the way (the chat usage chunk, the Responses
// `response.completed` event, the balance mode's `event: cost`, before or after `[DONE]`).
// `[DONE]` itself is not handed over (the caller writes its own end). Non-JSON data lines are
// skipped, as routstr passes them through (ROUTSTR.md section 4); so are JSON chunks of the
// wrong shape (an array, a chat chunk without `choices`), whose usage is still read as
// evidence. A stream that ends having carried nothing but such chunks is malformed.
//
// Read it once, to the end, or call cancel(): an abandoned stream holds its connection until
// the call's total timeout.
import { StringDecoder } from 'node:string_decoder';
import type { IncomingMessage } from 'node:http';
import {
  ProviderBodyTooLargeError,
  ProviderCallCanceledError,
  ProviderConnectionLostError,
  ProviderMalformedError,
  ProviderTimeoutError,
  type CallErrorContext,
  type ProviderCallError,
} from './call-errors.ts';
import { ReportReader, type Reported } from './cost.ts';
import { parseNodeJson } from './json.ts';
import { chunkShapeProblem, errorObjectOf, MAX_BODY_DEPTH, nestedDeeperThan, type PaidEndpoint } from './openai.ts';
import { SseLimitError, SseReader, type SseEvent } from './sse.ts';

export interface StreamItem {
  /** data: an answer chunk to pass on; cost: the node's `event: cost`; error: a chunk carrying an `error` object. */
  kind: 'data' | 'cost' | 'error';
  /** The SSE event name, when the node gave one (the Responses API names every event). */
  event?: string;
  /** The data payload exactly as received. */
  data: string;
  /** The payload parsed. */
  json: unknown;
}

/** What the stream needs from the call that opened it. */
export interface StreamExchange {
  readonly res: IncomingMessage;
  readonly idleMs: number;
  /** (Re)start the idle timer; `ms` overrides its length. */
  armIdle(ms?: number): void;
  disarmIdle(): void;
  /** The failure a timer or the caller already decided, if any. */
  readonly failure: ProviderCallError | null;
  /** Record a failure (first one wins) and tear the connection down; returns the failure that stands. */
  fail(err: ProviderCallError): ProviderCallError;
  /** Map a stream error to the failure that stands. */
  mapError(err: unknown): ProviderCallError;
  errorContext(): CallErrorContext;
  /** Progress to put into errors raised from now on. */
  setProgress(progress: () => { eventsDelivered: number; reported: Reported }): void;
  /** Stop the timers; `destroy`: the connection cannot be reused. */
  finish(destroy: boolean): void;
  now(): number;
}

/** After `[DONE]`, how long to wait for a trailing `event: cost` before calling the stream done. */
const AFTER_DONE_GRACE_MS = 2_000;

export class ProviderStream implements AsyncIterable<StreamItem> {
  /** `[DONE]` arrived. */
  sawDone = false;
  /** Events handed over so far. */
  delivered = 0;
  /** Data lines that were not JSON (skipped). */
  skipped = 0;
  /** JSON chunks not of the endpoint's stream shape (skipped; their usage still read). */
  malformed = 0;
  /** ms from the start of the call to the first event handed over. */
  firstEventMs: number | undefined;
  private readonly reader = new ReportReader();
  private started = false;
  private ended = false;

  constructor(
    private readonly ex: StreamExchange,
    private readonly startedAt: number,
    private readonly maxBytes: number,
    headers: (name: string) => string | undefined,
    /** Checks each chunk's shape when given. */
    private readonly endpoint?: PaidEndpoint,
  ) {
    this.reader.addHeaders(headers);
    ex.setProgress(() => ({ eventsDelivered: this.delivered, reported: this.reported() }));
  }

  /** Usage and cost reported so far (complete once the stream ended). */
  reported(): Reported {
    return this.reader.result();
  }

  /** Stop reading and drop the connection (e.g. our client went away). */
  cancel(): void {
    if (this.ended) return;
    this.ex.fail(new ProviderCallCanceledError('stream canceled by caller', { ...this.ex.errorContext() }));
    if (!this.started) this.close(true);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamItem> {
    if (this.started) throw new Error('a provider stream can be read only once');
    this.started = true;
    const { ex } = this;
    if (ex.failure) {
      this.close(true);
      throw ex.failure;
    }
    const decoder = new StringDecoder('utf8');
    const sse = new SseReader({ maxEventChars: Math.min(this.maxBytes, 8 * 1024 * 1024) });
    let bytes = 0;
    let clean = false;
    ex.armIdle();
    try {
      try {
        for await (const chunk of ex.res as AsyncIterable<Buffer>) {
          ex.disarmIdle();
          bytes += chunk.length;
          if (bytes > this.maxBytes) throw ex.fail(new ProviderBodyTooLargeError(this.maxBytes, ex.errorContext()));
          for (const ev of sse.push(decoder.write(chunk))) {
            for (const item of this.decode(ev)) {
              yield this.hand(item);
            }
          }
          ex.armIdle(this.sawDone ? Math.min(ex.idleMs, AFTER_DONE_GRACE_MS) : undefined);
        }
        for (const ev of sse.push(decoder.end()).concat(sse.end())) {
          for (const item of this.decode(ev)) yield this.hand(item);
        }
        clean = true;
        if (this.delivered === 0 && this.malformed > 0) throw new ProviderMalformedError(`provider stream carried no ${this.endpoint} chunk (${this.malformed} of another shape)`, ex.errorContext());
      } catch (err) {
        if (err instanceof SseLimitError) throw ex.fail(new ProviderBodyTooLargeError(err.limitBytes, ex.errorContext()));
        throw err;
      }
    } catch (err) {
      const failure = ex.failure ?? ex.mapError(err);
      // A node that keeps the connection open (or drops it) after [DONE] has still said everything.
      const afterDone = this.sawDone && (failure instanceof ProviderTimeoutError || failure instanceof ProviderConnectionLostError);
      if (!afterDone) throw failure;
    } finally {
      this.close(!clean);
    }
  }

  private hand(item: StreamItem): StreamItem {
    if (this.delivered === 0) this.firstEventMs = this.ex.now() - this.startedAt;
    this.delivered += 1;
    return item;
  }

  private close(destroy: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.ex.finish(destroy);
  }

  private decode(ev: SseEvent): StreamItem[] {
    if (ev.data === '[DONE]') {
      this.sawDone = true;
      return [];
    }
    const one = this.parse(ev.event, ev.data);
    if (one) return this.accept([one], ev.event);
    // Data lines written without blank lines between them arrive as one multi-line event:
    // read each line on its own when every line is JSON (or [DONE]).
    if (ev.data.indexOf('\n') !== -1) {
      const lines = ev.data.split('\n');
      const items: StreamItem[] = [];
      let done = false;
      for (const line of lines) {
        if (line === '[DONE]') {
          done = true;
          continue;
        }
        const it = this.parse(ev.event, line);
        if (!it) {
          this.skipped += 1;
          return [];
        }
        items.push(it);
      }
      if (done) this.sawDone = true;
      return this.accept(items, ev.event);
    }
    this.skipped += 1;
    return [];
  }

  /** Read each item's report; hand over those of the stream's shape. */
  private accept(items: StreamItem[], event: string | undefined): StreamItem[] {
    const out: StreamItem[] = [];
    for (const it of items) {
      this.reader.addBody(it.json, event);
      if (it.kind === 'data' && this.endpoint && chunkShapeProblem(this.endpoint, it.json) !== null) this.malformed += 1;
      else out.push(it);
    }
    return out;
  }

  private parse(event: string | undefined, data: string): StreamItem | null {
    // A Python node writes a NaN usage bare: read the chunk, refuse the value (json.ts).
    const json = parseNodeJson(data);
    if (json === undefined) return null;
    // JSON too deep to be written back out (JSON.stringify would overflow the stack): skipped like a non-JSON line.
    if (nestedDeeperThan(json, MAX_BODY_DEPTH)) return null;
    const kind: StreamItem['kind'] = event === 'cost' ? 'cost' : errorObjectOf(json) ? 'error' : 'data';
    const it: StreamItem = { kind, data, json };
    if (event) it.event = event;
    return it;
  }
}
