// One long-lived subscription on each of several Nostr relays. Every relay is on its own:
// a relay that is down, slow or refuses us never delays the others. A lost connection is
// retried after a delay from a short table (with jitter), and the subscription is sent
// again on reconnect. Relays cap how many stored events one request returns (often 100 to
// 500), so after the first batch older events are fetched page by page with `until`.
// Signatures are NOT checked here: the caller verifies what it keeps.
import { AbstractRelay, type Subscription } from 'nostr-tools/abstract-relay';
import type { Filter } from 'nostr-tools/filter';
import { WebSocket as WsWebSocket } from 'ws';
import { nullLogger, type Logger } from './logger.ts';

/** Reconnect delays in ms: attempt n waits RECONNECT_BACKOFF_MS[min(n, last)], +/-25% jitter. */
export const RECONNECT_BACKOFF_MS: readonly number[] = [1_000, 2_000, 5_000, 15_000, 30_000, 60_000];

export type RelayState = 'connecting' | 'open' | 'waiting' | 'stopped';

export interface RelayStatus {
  url: string;
  state: RelayState;
  /** Failed connection attempts since the last subscription that reached EOSE. */
  attempts: number;
  /** When the current connection opened (ms). */
  openSince?: number;
  /** When the next attempt is due while `waiting` (ms). */
  retryAt?: number;
  lastError?: string;
  /** Whether the relay has sent everything it stored (EOSE) on this connection. */
  eose: boolean;
  events: number;
}

export interface RelayPoolOptions {
  urls: readonly string[];
  filters: Filter[];
  /** Called for every event any relay sends (unverified, possibly a duplicate). */
  onEvent: (event: unknown, relayUrl: string) => void;
  /** Called when a relay has sent all it stored (EOSE, or the EOSE timeout). */
  onEose?: (relayUrl: string) => void;
  WebSocketImpl?: unknown;
  logger?: Logger;
  clock?: () => number;
  random?: () => number;
  backoffMs?: readonly number[];
  connectTimeoutMs?: number;
  eoseTimeoutMs?: number;
  /** Ping interval to detect silently dead connections; 0 disables. */
  pingIntervalMs?: number;
  /** Events asked for per request; older ones are fetched page by page (`until`). Default 500. */
  pageLimit?: number;
  /** Most pages fetched after the first one, per connection. Default 100. */
  maxPages?: number;
}

/** Subscriptions to a set of relays that reconnect on their own until stop(). */
export class RelayPool {
  private readonly links: RelayLink[];

  constructor(options: RelayPoolOptions) {
    const unique = [...new Set(options.urls.map((u) => u.trim()).filter(Boolean))];
    this.links = unique.map((url) => new RelayLink(url, options));
  }

  start(): void {
    for (const link of this.links) link.start();
  }

  stop(): void {
    for (const link of this.links) link.stop();
  }

  statuses(): RelayStatus[] {
    return this.links.map((l) => l.status());
  }
}

class RelayLink {
  private relay: AbstractRelay | undefined;
  private sub: Subscription | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private state: RelayState = 'waiting';
  private attempts = 0;
  private openSince: number | undefined;
  private retryAt: number | undefined;
  private lastError: string | undefined;
  private eose = false;
  private events = 0;
  private junkFrames = 0;
  private readonly log: Logger;
  private readonly clock: () => number;

  constructor(
    private readonly url: string,
    private readonly opts: RelayPoolOptions,
  ) {
    this.log = opts.logger ?? nullLogger;
    this.clock = opts.clock ?? Date.now;
  }

  status(): RelayStatus {
    return { url: this.url, state: this.state, attempts: this.attempts, openSince: this.openSince, retryAt: this.retryAt, lastError: this.lastError, eose: this.eose, events: this.events };
  }

  start(): void {
    if (this.state === 'stopped' || this.relay || this.timer) return;
    void this.connect();
  }

  stop(): void {
    this.state = 'stopped';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.drop();
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    this.retryAt = undefined;
    if (this.state === 'stopped') return;
    this.state = 'connecting';
    this.eose = false;
    let relay: AbstractRelay;
    try {
      relay = new AbstractRelay(this.url, {
        verifyEvent: () => true, // verified by the consumer, once per event it keeps
        websocketImplementation: (this.opts.WebSocketImpl ?? WsWebSocket) as typeof WebSocket,
        enablePing: (this.opts.pingIntervalMs ?? 30_000) > 0,
      });
    } catch (err) {
      return this.lost(undefined, err);
    }
    if (this.opts.pingIntervalMs) relay.pingFrequency = this.opts.pingIntervalMs;
    this.quietJunk(relay);
    relay.onnotice = (msg) => this.log.debug('relay notice', { relay: this.url, notice: String(msg).slice(0, 200) });
    this.relay = relay;
    try {
      await relay.connect({ timeout: this.opts.connectTimeoutMs ?? 10_000 });
    } catch (err) {
      return this.lost(relay, err); // "connection failed" / "connection timed out"
    }
    if (this.relay !== relay) return; // stopped or replaced meanwhile
    if (!relay.connected) return this.lost(relay, 'connection closed while opening');
    relay.onclose = () => this.lost(relay, 'connection closed');
    this.state = 'open';
    this.openSince = this.clock();
    this.log.debug('relay connected', { relay: this.url });
    const limit = this.opts.pageLimit ?? 500;
    const seen = new Set<string>();
    let oldest = Infinity;
    const deliver = (event: unknown) => {
      const e = event as { id?: unknown; created_at?: unknown };
      if (typeof e.id === 'string') seen.add(e.id);
      if (typeof e.created_at === 'number' && e.created_at < oldest) oldest = e.created_at;
      this.events++;
      try {
        this.opts.onEvent(event, this.url);
      } catch (err) {
        this.log.warn('relay event handler failed', { relay: this.url, err });
      }
    };
    this.sub = relay.subscribe(
      this.opts.filters.map((f) => ({ ...f, limit })),
      {
        eoseTimeout: this.opts.eoseTimeoutMs ?? 10_000,
        onevent: deliver,
        oneose: () => {
          if (this.relay !== relay) return;
          void this.backfill(relay, seen, oldest, deliver).then(() => {
            if (this.relay !== relay) return;
            this.eose = true;
            this.attempts = 0; // a relay that serves its events counts as healthy again
            this.opts.onEose?.(this.url);
          });
        },
        onclose: (reason) => this.lost(relay, `subscription closed: ${reason}`),
      },
    );
  }

  /**
   * nostr-tools prints a stack trace with console.warn for every frame it cannot read (not
   * JSON, an EVENT without a subscription, a null event); a relay sending junk would flood
   * the daemon's stderr, which is its JSON log. Frames are read synchronously, so the warning
   * is caught for just that call and counted as one debug line instead. Set before connect(),
   * which binds the handler.
   */
  private quietJunk(relay: AbstractRelay): void {
    const r = relay as unknown as { _onmessage?: (ev: unknown) => void };
    const read = r._onmessage;
    if (typeof read !== 'function') return;
    r._onmessage = (ev: unknown) => {
      const warn = console.warn;
      let unreadable = false;
      console.warn = () => {
        unreadable = true;
      };
      try {
        read.call(relay, ev);
      } finally {
        console.warn = warn;
      }
      if (unreadable) {
        this.junkFrames++;
        this.log.debug('relay sent a frame that is not a readable message', { relay: this.url, frames: this.junkFrames });
      }
    };
  }

  // Older events, one page at a time, until a page brings nothing new.
  private async backfill(relay: AbstractRelay, seen: Set<string>, oldest: number, deliver: (e: unknown) => void): Promise<void> {
    if (seen.size === 0) return;
    const limit = this.opts.pageLimit ?? 500;
    let until = oldest;
    for (let page = 0; page < (this.opts.maxPages ?? 100) && this.relay === relay && relay.connected; page++) {
      const events = await new Promise<unknown[]>((resolve) => {
        const got: unknown[] = [];
        const sub = relay.subscribe(
          this.opts.filters.map((f) => ({ ...f, until, limit })),
          {
            eoseTimeout: this.opts.eoseTimeoutMs ?? 10_000,
            onevent: (e) => got.push(e),
            oneose: () => sub.close(),
            onclose: () => resolve(got),
          },
        );
      });
      let fresh = 0;
      for (const e of events) {
        const { id, created_at } = e as { id?: unknown; created_at?: unknown };
        if (typeof created_at === 'number' && created_at < until) until = created_at;
        if (typeof id !== 'string' || seen.has(id)) continue;
        fresh++;
        deliver(e);
      }
      if (fresh === 0) return;
    }
  }

  // The connection `relay` is gone (or never came up): schedule the next attempt.
  private lost(relay: AbstractRelay | undefined, reason: unknown): void {
    if (relay !== this.relay || this.state === 'stopped') return;
    this.drop();
    this.lastError = typeof reason === 'string' ? reason : reason instanceof Error ? reason.message : String(reason);
    const table = this.opts.backoffMs ?? RECONNECT_BACKOFF_MS;
    const base = table[Math.min(this.attempts, table.length - 1)];
    const delay = Math.round(base * (0.75 + 0.5 * (this.opts.random ?? Math.random)()));
    this.attempts++;
    this.state = 'waiting';
    this.retryAt = this.clock() + delay;
    // the first failure is news; the retries that follow are not
    (this.attempts === 1 ? this.log.info : this.log.debug)('relay unavailable, retrying', { relay: this.url, reason: this.lastError, retryInMs: delay, attempt: this.attempts });
    this.timer = setTimeout(() => void this.connect(), delay);
    this.timer.unref?.();
  }

  // Close the current connection without triggering a reconnect.
  private drop(): void {
    const relay = this.relay;
    const sub = this.sub;
    this.relay = undefined;
    this.sub = undefined;
    this.openSince = undefined;
    if (sub && !sub.eosed) {
      sub.oneose = undefined;
      sub.receivedEose(); // clears nostr-tools' EOSE timer so it cannot keep the process alive
    }
    if (relay) {
      relay.onclose = null;
      // nostr-tools clears the socket's onerror before closing it; a socket still connecting
      // then emits "closed before the connection was established" with no listener, which
      // would crash the process. Keep a listener of our own on it.
      (relay as unknown as { ws?: { addEventListener?: (type: string, fn: () => void) => void } }).ws?.addEventListener?.('error', () => {});
      try {
        relay.close();
      } catch {
        // closing a half-open socket may throw; it is gone either way
      }
    }
  }
}
