// What the WebSocket API tests share: a daemon-side HTTP server with the API attached (a real
// ClientKeys table in SQLite, real sockets on 127.0.0.1:0), timers the test fires by hand, a
// client that collects the daemon's messages, and a STAND-IN FOR THE REQUEST LIFECYCLE
// (daemon/requests/lifecycle.ts is being written beside this): it answers through the
// ResponseSink in the order contract.ts prescribes, streams synthetic chunks whose pace the
// test controls, honours the signal, and publishes one `payments` event per settled request.
// The same API against the real daemon, lifecycle and test/world: ws-daemon.e2e.ts.
import type { TestContext } from 'node:test';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket } from 'ws';
import { ClientKeys } from '../../../daemon/api/auth.ts';
import { CanceledError, NoProviderError, toApiError } from '../../../daemon/api/errors.ts';
import { attachWebSocket, type WebSocketApi, type WsServerLimits, type WsTimers } from '../../../daemon/api/ws.ts';
import type { ApiRequest, DaemonEvent, DaemonEvents, Done, PaymentEvent, RequestHandler, ResponseSink } from '../../../daemon/requests/contract.ts';
import { createLogger } from '../../../protocol/logger.ts';
import { openDatabase } from '../../../db/sqlite.ts';

/** Timers fired by `advance`, never by the wall clock. */
export class ManualTimers implements WsTimers {
  now = 0;
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): number {
    this.pending.set(++this.seq, { at: this.now + ms, fn });
    return this.seq;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Move the clock forward, firing every timer due by then, in order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= until && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = until;
  }
}

/** A stand-in for the daemon's event hub (the lifecycle, breakers and market publish into it). */
export class EventHub implements DaemonEvents {
  private readonly listeners = new Set<(e: DaemonEvent) => void>();
  subscribe(listener: (e: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  publish(e: DaemonEvent): void {
    for (const l of this.listeners) l(e);
  }
}

/** The price of one synthetic chunk: a stream of N chunks is charged N x this. */
export const MSAT_PER_CHUNK = 150;

/** What the stand-in saw of one request. */
export interface Seen {
  req: ApiRequest;
  requestId: string;
  chunksSent: number;
  /** Times `sink.chunk` returned a promise (the client was behind). */
  backpressure: number;
  /** `sink.chunk` is being awaited right now. */
  waiting: boolean;
  /** The daemon's send buffer (stats().bufferedBytes) after each chunk the sink took. */
  bufferedAfterChunk: number[];
  aborted: boolean;
  settled: boolean;
}

export interface StandInOptions {
  /** Bytes of content per synthetic chunk. */
  chunkBytes?: number;
  /** Awaited before each chunk (default: one setImmediate turn), so streams interleave. */
  pace?: (seen: Seen, index: number) => Promise<void>;
  /** Bytes of a non-streaming answer's content. */
  responseBytes?: number;
  /** Sample the daemon's send buffer after every chunk (Seen.bufferedAfterChunk); default true. */
  recordBuffered?: boolean;
}

/**
 * STAND-IN for the request lifecycle. Chunks per stream = the body's `max_tokens` (default 3);
 * model `unserved` is refused with no_provider; model `throws` makes handle() throw; model
 * `silent` returns without a word to the sink.
 */
export class StandInLifecycle implements RequestHandler {
  readonly seen = new Map<string, Seen>();
  api: WebSocketApi | undefined;
  private n = 0;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly events: EventHub, private readonly opts: StandInOptions = {}) {}

  async handle(req: ApiRequest, sink: ResponseSink): Promise<void> {
    const body = req.body as { model: string; max_tokens?: number | null; messages?: { content?: unknown }[] };
    const requestId = `req-${++this.n}`;
    const seen: Seen = { req, requestId, chunksSent: 0, backpressure: 0, waiting: false, bufferedAfterChunk: [], aborted: false, settled: false };
    this.seen.set(String(body.messages?.[0]?.content ?? requestId), seen);
    req.signal.addEventListener('abort', () => {
      seen.aborted = true;
      this.notify();
    });
    try {
      if (body.model === 'unserved') return void (await sink.error(toApiError(new NoProviderError(`no provider serves ${body.model}`, { retryable: false }))));
      if (body.model === 'throws') throw new Error('boom (a bug in the lifecycle)');
      if (body.model === 'silent') return;
      sink.accepted({ requestId, provider: 'alpha', providerUrl: 'http://alpha.invalid', model: body.model, reservedSats: 10, payment: 'xcashu', failedAttempts: 0 });
      const chunks = body.max_tokens ?? 3;
      if (!req.stream) {
        const content = 'x'.repeat(this.opts.responseBytes ?? 16);
        const done = this.finish(seen, chunks);
        await sink.response({ id: requestId, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content } }] }, done);
        return;
      }
      const content = 'x'.repeat(this.opts.chunkBytes ?? 8);
      for (let i = 0; i < chunks; i++) {
        await (this.opts.pace ? this.opts.pace(seen, i) : new Promise<void>((r) => setImmediate(r)));
        if (req.signal.aborted) return this.canceled(seen, sink);
        const wait = sink.chunk({ id: requestId, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
        seen.chunksSent++;
        if (this.opts.recordBuffered !== false) seen.bufferedAfterChunk.push(this.api?.stats().bufferedBytes ?? 0);
        if (wait) {
          seen.backpressure++;
          seen.waiting = true;
          this.notify();
          await wait;
          seen.waiting = false;
        }
      }
      if (req.signal.aborted) return this.canceled(seen, sink);
      await sink.done(this.finish(seen, chunks));
    } finally {
      seen.settled = true;
      this.notify();
    }
  }

  /** Resolves once `pred` holds (checked whenever a request waits, is aborted or settles). */
  until(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!pred()) return;
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Settled as the lifecycle will: what was streamed is charged, and the client told. */
  private async canceled(seen: Seen, sink: ResponseSink): Promise<void> {
    const done = this.finish(seen, seen.chunksSent, 'canceled');
    void done;
    await sink.error(toApiError(seen.req.signal.reason ?? new CanceledError()), seen.requestId);
  }

  private finish(seen: Seen, chunks: number, status = 'succeeded'): Done {
    const chargedMsat = chunks * MSAT_PER_CHUNK;
    const cost = { sent_sats: 10, change_sats: 10 - Math.ceil(chargedMsat / 1000), charged_msat: chargedMsat, expected_msat: chargedMsat, reported_msat: chargedMsat };
    const usage = { prompt_tokens: 5, completion_tokens: chunks, total_tokens: 5 + chunks };
    const body = seen.req.body as { model: string };
    const event: PaymentEvent = {
      topic: 'payments', request_id: seen.requestId, time: new Date(0).toISOString(), client: seen.req.client.name, endpoint: seen.req.endpoint,
      model: body.model, provider: 'alpha', status, payment: 'xcashu', usage, cost, flags: [], attempts: 1, late: false,
    };
    this.events.publish(event);
    return { requestId: seen.requestId, provider: 'alpha', model: body.model, usage, cost, flags: [], overheadMs: 1 };
  }
}

/** A pace that holds a stream until its request is aborted, as an upstream read does. */
export function untilAborted(seen: Seen): Promise<void> {
  if (seen.req.signal.aborted) return Promise.resolve();
  return new Promise((resolve) => seen.req.signal.addEventListener('abort', () => resolve(), { once: true }));
}

export interface Harness {
  url: string;
  key: string;
  keys: ClientKeys;
  api: WebSocketApi;
  timers: ManualTimers;
  events: EventHub;
  lifecycle: StandInLifecycle;
  logs: string[];
  server: http.Server;
}

export async function startApi(t: TestContext, opts: { limits?: Partial<WsServerLimits>; standIn?: StandInOptions; handler?: RequestHandler } = {}): Promise<Harness> {
  const db = openDatabase(':memory:');
  const keys = new ClientKeys(db);
  const { key } = keys.create({ name: 'laptop' });
  const timers = new ManualTimers();
  const events = new EventHub();
  const lifecycle = new StandInLifecycle(events, opts.standIn);
  const logs: string[] = [];
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const api = attachWebSocket(server, {
    keys, handler: opts.handler ?? lifecycle, events, timers, clock: () => timers.now,
    logger: createLogger({ level: 'debug', write: (line) => void logs.push(line) }),
    limits: { heartbeatMs: 0, ...opts.limits },
  });
  lifecycle.api = api;
  t.after(async () => {
    await api.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    db.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/v1/ws`, key, keys, api, timers, events, lifecycle, logs, server };
}

export type Msg = Record<string, unknown> & { type: string; id?: string | null };

/** A WebSocket client that keeps every message the daemon sent, in order. */
export class Client {
  readonly messages: Msg[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  private readonly waiters = new Set<() => void>();

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as Msg);
      for (const w of [...this.waiters]) w();
    });
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => {
      resolve({ code, reason: String(reason) });
      for (const w of [...this.waiters]) w();
    }));
  }

  static async open(h: Harness, auth: 'header' | 'message' | 'none' = 'header', key = h.key): Promise<Client> {
    const c = new Client(new WebSocket(h.url, auth === 'header' ? { headers: { authorization: `Bearer ${key}` } } : {}));
    await c.opened;
    if (auth === 'message') c.send({ type: 'auth', key });
    return c;
  }

  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  /**
   * Resolves with the first message (from index `from` on) matching `pred`, which sees each
   * message once, in order; rejects if the socket closes first.
   */
  next(pred: (m: Msg) => boolean, from = 0): Promise<Msg> {
    let i = from;
    return new Promise((resolve, reject) => {
      const check = () => {
        for (; i < this.messages.length; i++) {
          if (!pred(this.messages[i])) continue;
          this.waiters.delete(check);
          return resolve(this.messages[i]);
        }
        if (this.ws.readyState === WebSocket.CLOSED) {
          this.waiters.delete(check);
          reject(new Error(`socket closed before the expected message; got ${JSON.stringify(this.messages.slice(-3))}`));
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  /** A round trip: everything sent before it has been handled by the daemon. */
  async sync(): Promise<void> {
    const from = this.messages.length;
    this.send({ type: 'ping' });
    await this.next((m) => m.type === 'pong', from);
  }

  /** Every message for request `id`. */
  of(id: string): Msg[] {
    return this.messages.filter((m) => m.id === id);
  }

  /** Stop reading from the socket: the daemon's writes pile up in the kernel, then in its own buffer. */
  pauseReading(): void {
    (this.ws as unknown as { _socket: Socket })._socket.pause();
  }

  resumeReading(): void {
    (this.ws as unknown as { _socket: Socket })._socket.resume();
  }
}

/** A chat request message; `tag` is the stand-in's key for what it saw of it. */
export function chat(id: string, opts: { chunks?: number; stream?: boolean; model?: string; tag?: string } = {}): Record<string, unknown> {
  return {
    type: 'request', id, endpoint: '/v1/chat/completions',
    body: { model: opts.model ?? 'gpt-test', messages: [{ role: 'user', content: opts.tag ?? id }], max_tokens: opts.chunks ?? 3, stream: opts.stream ?? true },
  };
}
