// One WebSocket connection: authentication, the client's messages, its requests by `id`, its
// subscriptions, and a send buffer that never grows without bound.
//
// Auth: the upgrade's `Authorization: Bearer sr_...` header, else the first message must be
// `{"type":"auth","key"}` within `authTimeoutMs`; anything else, or a bad key, gets an
// `unauthorized` error and the socket closes (1008). The key is checked again (by name) for
// every request, so a key revoked meanwhile is refused from its next request on.
// Memory: a streaming request waits for the buffer to drain (ws-request.ts); subscription
// events are dropped while the buffer is over its high-water mark and counted, the count sent
// as `{"type":"event","topic","dropped":N}` once the client reads again; replies to a client
// that sends but does not read stop our reading its messages until it does.
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import type { Logger } from '../../protocol/logger.ts';
import type { ApiRequest, RequestHandler } from '../requests/contract.ts';
import type { ClientKey, ClientKeys } from './auth.ts';
import { BadRequestError, CanceledError, DaemonError, toApiError, UnauthorizedError } from './errors.ts';
import { isStreaming } from '../../protocol/openai.ts';
import { droppedMessage, errorMessage, parseClientMessage, PONG, requestIdOf, type RequestMsg, type Topic } from './ws-messages.ts';
import { WsRequest, type RequestChannel, type WsTimers } from './ws-request.ts';
import type { Inbox, InboxOwner } from './ws-inbox.ts';

export interface WsLimits {
  /** Without a Bearer header, the `auth` message must come within this (DESIGN: 5 s). */
  authTimeoutMs: number;
  /** A message over this gets a `bad_request` error and the connection lives. */
  maxMessageBytes: number;
  /** A message over this closes the connection (1009, by the ws library) before it is read in full. */
  maxPayloadBytes: number;
  /** Requests running at once on one connection. */
  maxRequestsPerConnection: number;
  /** A streaming request waits while more than this is queued on the socket. */
  highWaterBytes: number;
  /** A request that would queue more than this is failed (and canceled). */
  hardLimitBytes: number;
  /** A request waiting for its client to read longer than this is failed (and canceled). */
  stallTimeoutMs: number;
}

/** The server's counters, shared by its connections. */
export interface WsCounters {
  requestsInFlight: number;
  droppedEvents: number;
  backpressureWaits: number;
  backpressureFailures: number;
}

export interface ConnectionContext {
  keys: Pick<ClientKeys, 'authenticate' | 'verify' | 'get'>;
  handler: RequestHandler;
  logger: Logger;
  clock: () => number;
  timers: WsTimers;
  limits: WsLimits;
  counters: WsCounters;
  inbox: Inbox;
  /** New requests are refused (the daemon is shutting down). */
  draining: () => boolean;
}

const closeReason = { unauthorized: 1008, shutdown: 1001 } as const;

export class WsConnection implements InboxOwner {
  client: ClientKey | null = null;
  /** Answered the last heartbeat ping (or sent anything since). */
  alive = true;
  private readonly topics = new Set<Topic>();
  private readonly dropped = new Map<Topic, number>();
  /** Requests whose `id` is live: no terminal message sent yet. */
  private readonly live = new Map<string, WsRequest>();
  /** Every request whose `handle()` has not returned yet. */
  private readonly running = new Set<WsRequest>();
  private readonly settledWaiters: (() => void)[] = [];
  private readonly drainListeners = new Set<() => void>();
  private authTimer: unknown;
  private closed = false;
  /** Why reading this client's messages is paused: its backlog in the inbox, or it not reading our replies. */
  private readonly holds = new Set<'inbox' | 'output'>();
  private readonly channel: RequestChannel;
  private corked = false;
  /** The ws library's TCP socket (private there, `_socket` throughout ws 8): its 'drain' and cork. */
  private readonly socket: Socket;

  constructor(private readonly ws: WebSocket, private readonly ctx: ConnectionContext, authorization: string | undefined) {
    const { limits, timers } = ctx;
    const socket = (ws as unknown as { _socket?: Socket })._socket;
    if (!socket || typeof socket.cork !== 'function') throw new Error('ws no longer exposes its socket as _socket; ws-connection.ts needs it for backpressure');
    this.socket = socket;
    // 'drain' comes when everything queued reached the kernel, after a write found the buffer
    // over Node's 16 KiB mark - always the case past our high-water mark, so a waiter is woken.
    socket.on('drain', this.onDrained);
    this.channel = {
      send: (text) => this.send(text),
      bufferedBytes: () => this.ws.bufferedAmount,
      onDrain: (fn) => {
        this.drainListeners.add(fn);
        return () => this.drainListeners.delete(fn);
      },
      release: (id) => {
        this.live.delete(id);
      },
      highWaterBytes: limits.highWaterBytes,
      hardLimitBytes: limits.hardLimitBytes,
      stallTimeoutMs: limits.stallTimeoutMs,
      timers,
      counters: ctx.counters,
    };
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.onClose());
    ws.on('error', (err) => ctx.logger.debug('ws connection error', { error: err }));
    if (authorization !== undefined) {
      try {
        this.client = ctx.keys.authenticate(authorization);
      } catch (err) {
        this.refuse(err instanceof DaemonError ? err : new UnauthorizedError());
      }
    } else {
      this.authTimer = timers.setTimeout(() => {
        this.authTimer = undefined;
        if (!this.client) this.refuse(new UnauthorizedError(`no auth message within ${Math.round(ctx.limits.authTimeoutMs / 1000)} s (send {"type":"auth","key":"sr_..."} first, or the Authorization header)`));
      }, ctx.limits.authTimeoutMs);
    }
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  /** Heartbeat: ping, or end a connection that did not answer the previous one. */
  heartbeat(): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    if (!this.alive) {
      this.ctx.logger.info('ws client stopped answering pings; connection dropped', { client: this.client?.name ?? null });
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /** A live event from the daemon, already serialised; dropped (and counted) while the client is behind. */
  deliver(topic: Topic, text: string): void {
    if (this.closed || !this.topics.has(topic)) return;
    if (this.ws.bufferedAmount > this.ctx.limits.highWaterBytes) {
      this.dropped.set(topic, (this.dropped.get(topic) ?? 0) + 1);
      this.ctx.counters.droppedEvents++;
      return;
    }
    this.flushDropped();
    this.send(text);
  }

  /** Shut down: abort every request, close the socket (1001); resolves once every handler returned. */
  shutdown(): Promise<void> {
    this.abandonAll(new CanceledError('satroute is shutting down'));
    if (!this.closed) this.ws.close(closeReason.shutdown, 'satroute is shutting down');
    return this.whenSettled();
  }

  /** Resolves once no request of this connection is running. */
  whenSettled(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  terminate(): void {
    this.ws.terminate();
  }

  pause(): void {
    this.hold('inbox');
  }

  resume(): void {
    this.unhold('inbox');
  }

  private hold(reason: 'inbox' | 'output'): void {
    if (this.holds.size === 0) this.ws.pause();
    this.holds.add(reason);
  }

  private unhold(reason: 'inbox' | 'output'): void {
    if (!this.holds.delete(reason) || this.holds.size > 0) return;
    this.ws.resume();
  }

  // ---- input -------------------------------------------------------------------------------

  private onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true;
    this.ctx.inbox.push(this, () => this.handleMessage(data, isBinary));
  }

  private handleMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    const text = rawText(data, isBinary);
    const size = Buffer.byteLength(text);
    if (size > this.ctx.limits.maxMessageBytes) {
      const err = new BadRequestError(`message is ${size} bytes, over the ${this.ctx.limits.maxMessageBytes}-byte limit`);
      if (!this.client) return this.refuse(new UnauthorizedError());
      const id = requestIdOf(text);
      return this.reply(errorMessage(id !== null && !this.live.has(id) ? id : null, toApiError(err)));
    }
    const parsed = parseClientMessage(text);
    if (!this.client) {
      if (parsed.ok && parsed.message.type === 'auth') return this.authenticate(parsed.message.key);
      return this.refuse(new UnauthorizedError('the first message must be {"type":"auth","key":"sr_..."} (or send the Authorization header)'));
    }
    if (!parsed.ok) {
      // A broken `request` still ends its `id`, unless that id belongs to a live request.
      const id = parsed.id !== null && !this.live.has(parsed.id) ? parsed.id : null;
      return this.reply(errorMessage(id, toApiError(parsed.error)));
    }
    const m = parsed.message;
    switch (m.type) {
      case 'auth':
        return this.reply(errorMessage(null, toApiError(new BadRequestError('this connection is already authenticated'))));
      case 'ping':
        return this.reply(PONG);
      case 'subscribe':
        for (const t of m.topics) this.topics.add(t);
        return;
      case 'cancel':
        // Idempotent: a request that already ended (or never was) has nothing to cancel.
        this.live.get(m.id)?.cancel();
        return;
      case 'request':
        return this.startRequest(m, this.client);
    }
  }

  private authenticate(key: string): void {
    const client = this.ctx.keys.verify(key);
    if (!client) return this.refuse(new UnauthorizedError());
    this.client = client;
    if (this.authTimer !== undefined) this.ctx.timers.clearTimeout(this.authTimer);
    this.authTimer = undefined;
  }

  private refuse(err: DaemonError): void {
    this.ctx.logger.info('ws connection refused', { reason: err.message });
    this.send(errorMessage(null, toApiError(err)));
    this.ws.close(closeReason.unauthorized, 'unauthorized');
    this.closed = true;
  }

  // ---- requests ----------------------------------------------------------------------------

  private startRequest(m: RequestMsg, authenticated: ClientKey): void {
    const refuse = (err: DaemonError, id: string | null = m.id) => this.reply(errorMessage(id, toApiError(err)));
    if (this.live.has(m.id)) return refuse(new BadRequestError(`request id "${m.id}" is already in flight; this message was ignored`), null);
    if (this.ctx.draining()) return refuse(new ShuttingDownError());
    if (this.running.size >= this.ctx.limits.maxRequestsPerConnection) {
      return refuse(new TooManyRequestsError(`${this.running.size} requests are already running on this connection (limit ${this.ctx.limits.maxRequestsPerConnection})`));
    }
    // Revoked or changed since the connection authenticated: the key's row decides, as over HTTP.
    const client = this.ctx.keys.get(authenticated.name);
    if (!client || client.revokedAt !== null) {
      refuse(new UnauthorizedError(`key "${authenticated.name}" was revoked`));
      this.abandonAll(new CanceledError('the client key was revoked'));
      this.ws.close(closeReason.unauthorized, 'unauthorized');
      this.closed = true;
      return;
    }
    this.client = client;
    const r = new WsRequest(m.id, this.channel);
    const req: ApiRequest = {
      client, endpoint: m.endpoint, body: m.body, stream: isStreaming(m.body as { stream?: boolean | null }),
      signal: r.controller.signal, receivedAt: this.ctx.clock(),
      ...(m.maxSats !== undefined ? { maxSats: m.maxSats } : {}),
      ...(m.policy !== undefined ? { policy: m.policy } : {}),
      ...(m.provider !== undefined ? { provider: m.provider } : {}),
      ...(m.payment !== undefined ? { payment: m.payment } : {}),
      ...(m.explain !== undefined ? { explain: m.explain } : {}),
    };
    this.live.set(m.id, r);
    this.running.add(r);
    this.ctx.counters.requestsInFlight++;
    let outcome: { error?: unknown } = {};
    let handled: Promise<void>;
    try {
      handled = this.ctx.handler.handle(req, r); // its synchronous admission counts in the inbox's slice
    } catch (err) {
      handled = Promise.reject(err);
    }
    handled
      .catch((err: unknown) => {
        outcome = { error: err };
        if (!(err instanceof DaemonError)) this.ctx.logger.error('request handler failed', { client: client.name, id: m.id, error: err });
      })
      .finally(() => {
        if (!this.closed) r.settled(outcome);
        this.running.delete(r);
        this.ctx.counters.requestsInFlight--;
        if (this.running.size === 0) for (const resolve of this.settledWaiters.splice(0)) resolve();
      });
  }

  private abandonAll(reason: CanceledError): void {
    for (const r of this.running) r.abandon(reason);
  }

  // ---- output ------------------------------------------------------------------------------

  private send(text: string): void {
    if (this.closed) return;
    if (!this.corked) {
      // Messages queued in one turn of the loop leave in one write (one syscall, not one each).
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
    this.ws.send(text);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /** A reply to a client's own message: if the client is not reading, stop reading it too. */
  private reply(text: string): void {
    this.send(text);
    if (this.ws.bufferedAmount > this.ctx.limits.hardLimitBytes) this.hold('output');
  }

  /** Everything queued reached the kernel: wake what waits for the client. */
  private readonly onDrained = (): void => {
    this.unhold('output');
    this.flushDropped();
    if (this.drainListeners.size === 0) return;
    const listeners = [...this.drainListeners];
    this.drainListeners.clear();
    for (const fn of listeners) fn();
  };

  private flushDropped(): void {
    if (this.dropped.size === 0) return;
    const notices = [...this.dropped];
    this.dropped.clear();
    for (const [topic, n] of notices) this.send(droppedMessage(topic, n));
  }

  private onClose(): void {
    this.closed = true;
    this.ctx.inbox.drop(this);
    if (this.authTimer !== undefined) this.ctx.timers.clearTimeout(this.authTimer);
    this.authTimer = undefined;
    this.abandonAll(new CanceledError('the client disconnected'));
    for (const fn of [...this.drainListeners]) fn();
    this.drainListeners.clear();
  }
}

/** The daemon stops taking requests while it drains for shutdown. */
export class ShuttingDownError extends DaemonError {
  override name = 'ShuttingDownError';
  override readonly status = 503;
  override readonly retryable = true;
  constructor() {
    super('satroute is shutting down; retry in a moment');
  }
}

/** Too many requests at once on one connection: the client's to fix, or to retry once some end. */
export class TooManyRequestsError extends BadRequestError {
  override name = 'TooManyRequestsError';
  override readonly status = 429;
  override readonly retryable = true;
}

function rawText(data: RawData, isBinary: boolean): string {
  void isBinary; // binary frames are read as UTF-8 JSON too
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
