// The daemon's Prometheus metrics (`GET /metrics`). One registry owned by the daemon, never
// prom-client's global one, so two daemons in one process (tests) never mix their series.
// The request path reports through small typed calls (`requestFinished`, `flagRaised`,
// `breakerState`, ...); what is state rather than an event - wallet balances, pending
// settlements - is read from callbacks when Prometheus scrapes, so it can never drift.
// Money is counted in integer msat, with the unit in the series name.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WsStats } from './ws.ts';

/** How a request ended: `ok`, or the API error code it ended with (DESIGN.md "Interfaces"). */
export type RequestOutcome = 'ok' | 'unauthorized' | 'bad_request' | 'budget_exceeded' | 'no_provider' | 'payment_failed' | 'provider_failed' | 'canceled' | 'internal';

export type BreakerState = 'closed' | 'open' | 'half_open';
const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];

/** The provider label when a request ended before any provider was tried. */
export const NO_PROVIDER = 'none';
/** The model label of a breaker that covers the whole provider (not one model). */
export const ALL_MODELS = '*';

export interface FinishedRequest {
  outcome: RequestOutcome;
  /** The provider that served it (or was tried last); null when none was tried. */
  provider: string | null;
  payment?: 'xcashu' | 'session';
  /** What the provider kept (sent - change); 0 when nothing was spent. */
  chargedMsat: number;
  /** usage x the price it was routed at, when usage is known. */
  expectedMsat?: number;
  /** Flags known when the request settled (late ones come through flagRaised). */
  flags?: readonly string[];
  /** Admission to the end of the response. */
  durationMs: number;
  /** satroute's own share of durationMs (routing, paying, settling on the request path). */
  overheadMs?: number;
  /** Streams: admission to the first chunk sent to the client. */
  firstChunkMs?: number;
}

export interface BalanceSource {
  mint: string;
  /** The keyset unit the amounts are in (sat or msat). */
  unit: string;
  unspent: number;
  pending: number;
}

/** The WebSocket API's figures, as gauges: ws.ts's own stats, one type. */
export type WsFigures = WsStats;

const WS_GAUGES: [key: keyof WsFigures, name: string, help: string][] = [
  ['connections', 'satroute_ws_connections', 'WebSocket connections open'],
  ['authenticated', 'satroute_ws_authenticated_connections', 'WebSocket connections that have authenticated'],
  ['requestsInFlight', 'satroute_ws_requests_in_flight', 'Requests running over WebSocket'],
  ['bufferedBytes', 'satroute_ws_buffered_bytes', 'Bytes queued to WebSocket clients, not yet taken by the kernel'],
  ['droppedEvents', 'satroute_ws_dropped_events', 'Subscription events not sent to clients that were not reading, since start'],
  ['backpressureWaits', 'satroute_ws_backpressure_waits', 'Times a stream waited for its WebSocket client to read, since start'],
  ['backpressureFailures', 'satroute_ws_backpressure_failures', 'Requests failed because their WebSocket client did not read, since start'],
];

/** State read at scrape time. */
export interface MetricsSources {
  /** Wallet balance per mint and unit. */
  balances?: () => readonly BalanceSource[];
  /** Requests whose settlement is not final yet (change still to swap, outcome unknown). */
  pendingSettlements?: () => number;
  /** Requests running now (HTTP and WebSocket). */
  requestsInFlight?: () => number;
  /** The WebSocket API's figures; null before it listens. */
  ws?: () => WsFigures | null;
  /** Sats held in session balances at each provider now, and that provider's cap. */
  sessionExposure?: () => readonly { providerId: string; heldSat: number; capSat: number }[];
  /** Every provider the market knows (ids): each shows a breaker state, closed until it fails. */
  providers?: () => readonly string[];
}

export interface MetricsOptions {
  version: string;
  sources?: MetricsSources;
  /** Node's process metrics and event-loop lag (prom-client's defaults). Default true. */
  processMetrics?: boolean;
}

const DURATION_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const OVERHEAD_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

const breakerKey = (provider: string, model: string): string => JSON.stringify([provider, model]);

/** A counter only ever adds a whole, non-negative number of msat; anything else is not money. */
const msat = (n: number | undefined): number => (n !== undefined && Number.isSafeInteger(n) && n > 0 ? n : 0);

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'outcome' | 'provider'>;
  private readonly attempts: Counter<'provider' | 'result'>;
  private readonly spentMsat: Counter<'provider' | 'payment'>;
  private readonly expectedMsat: Counter<'provider' | 'payment'>;
  private readonly flags: Counter<'flag' | 'provider'>;
  private readonly breaker: Gauge<'provider' | 'model' | 'state'>;
  private readonly breakerOpened: Counter<'provider' | 'model'>;
  private readonly duration: Histogram<'provider'>;
  private readonly overhead: Histogram;
  private readonly firstChunk: Histogram<'provider'>;
  private readonly breakerNow = new Map<string, BreakerState>();
  /** Providers shown closed at scrape time because none of their breaker transitions was seen. */
  private readonly breakerDefaulted = new Set<string>();

  constructor(opts: MetricsOptions) {
    const registers = [this.registry];
    const sources = opts.sources ?? {};
    this.requests = new Counter({ name: 'satroute_requests_total', help: 'Requests finished, by outcome (ok or the error code) and provider', labelNames: ['outcome', 'provider'], registers });
    this.attempts = new Counter({ name: 'satroute_attempts_total', help: 'Provider attempts (a request tries up to 3 providers), by result', labelNames: ['provider', 'result'], registers });
    this.spentMsat = new Counter({ name: 'satroute_spent_msat_total', help: 'Paid to providers: what they kept (sent - change), in msat', labelNames: ['provider', 'payment'], registers });
    this.expectedMsat = new Counter({ name: 'satroute_expected_msat_total', help: 'What the same requests should have cost (usage x routed price), in msat', labelNames: ['provider', 'payment'], registers });
    this.flags = new Counter({ name: 'satroute_flags_total', help: 'Reconciliation flags raised (overcharged, usage_missing, cost_mismatch, change_invalid, change_surplus, ...)', labelNames: ['flag', 'provider'], registers });
    this.breaker = new Gauge({ name: 'satroute_breaker_state', help: `Circuit breaker state: 1 for the current state (model="${ALL_MODELS}": the whole provider)`, labelNames: ['provider', 'model', 'state'], registers, collect: () => this.closedUntilSeen(sources.providers?.() ?? []) });
    this.breakerOpened = new Counter({ name: 'satroute_breaker_opened_total', help: 'Times a circuit breaker opened', labelNames: ['provider', 'model'], registers });
    this.duration = new Histogram({ name: 'satroute_request_duration_seconds', help: 'Request time, admission to the end of the response', labelNames: ['provider'], buckets: DURATION_BUCKETS_S, registers });
    this.overhead = new Histogram({ name: 'satroute_overhead_seconds', help: "satroute's own time per request (routing, paying, settling on the request path)", buckets: OVERHEAD_BUCKETS_S, registers });
    this.firstChunk = new Histogram({ name: 'satroute_first_chunk_seconds', help: 'Streams: admission to the first chunk sent to the client', labelNames: ['provider'], buckets: DURATION_BUCKETS_S, registers });

    const info = new Gauge({ name: 'satroute_build_info', help: 'satroute version', labelNames: ['version'], registers });
    info.set({ version: opts.version }, 1);
    const balance: Gauge<'mint' | 'unit' | 'state'> = new Gauge({
      name: 'satroute_wallet_balance',
      help: 'Ecash held per mint, in the unit of the label unit (sat or msat); state unspent or pending (out with a request)',
      labelNames: ['mint', 'unit', 'state'],
      registers,
      collect: (): void => {
        balance.reset();
        for (const b of sources.balances?.() ?? []) {
          balance.set({ mint: b.mint, unit: b.unit, state: 'unspent' }, b.unspent);
          balance.set({ mint: b.mint, unit: b.unit, state: 'pending' }, b.pending);
        }
      },
    });
    const pending: Gauge = new Gauge({
      name: 'satroute_pending_settlements',
      help: 'Requests whose settlement is not final yet (change to swap, outcome unknown)',
      registers,
      collect: (): void => pending.set(sources.pendingSettlements?.() ?? 0),
    });
    const inFlight: Gauge = new Gauge({
      name: 'satroute_requests_in_flight',
      help: 'Requests running now (HTTP and WebSocket)',
      registers,
      collect: (): void => inFlight.set(sources.requestsInFlight?.() ?? 0),
    });
    const exposure: Gauge<'provider' | 'kind'> = new Gauge({
      name: 'satroute_session_exposure_sat',
      help: 'Sats held in session balances at a provider (kind held), and its cap (kind cap)',
      labelNames: ['provider', 'kind'],
      registers,
      collect: (): void => {
        exposure.reset();
        for (const e of sources.sessionExposure?.() ?? []) {
          exposure.set({ provider: e.providerId, kind: 'held' }, e.heldSat);
          exposure.set({ provider: e.providerId, kind: 'cap' }, e.capSat);
        }
      },
    });
    for (const [key, name, help] of WS_GAUGES) {
      const g: Gauge = new Gauge({ name, help, registers, collect: (): void => g.set(sources.ws?.()?.[key] ?? 0) });
    }
    // nodejs_eventloop_lag_* (monitorEventLoopDelay, max/p99 since the last scrape), memory, handles, GC.
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
  }

  /** A request ended (once per request, after settlement or failure). */
  requestFinished(r: FinishedRequest): void {
    const provider = r.provider ?? NO_PROVIDER;
    const payment = r.payment ?? 'xcashu';
    this.requests.inc({ outcome: r.outcome, provider });
    this.spentMsat.inc({ provider, payment }, msat(r.chargedMsat));
    this.expectedMsat.inc({ provider, payment }, msat(r.expectedMsat));
    for (const flag of r.flags ?? []) this.flags.inc({ flag, provider });
    this.duration.observe({ provider }, r.durationMs / 1000);
    if (r.overheadMs !== undefined) this.overhead.observe(r.overheadMs / 1000);
    if (r.firstChunkMs !== undefined) this.firstChunk.observe({ provider }, r.firstChunkMs / 1000);
  }

  /** One provider attempt ended (a request that fails over makes several). */
  attemptFinished(provider: string, result: 'ok' | 'failed'): void {
    this.attempts.inc({ provider, result });
  }

  /** A flag known only after the request finished (e.g. change_invalid after the swap). */
  flagRaised(provider: string, flag: string): void {
    this.flags.inc({ flag, provider });
  }

  /**
   * A breaker is now in this state: call once per breaker at start (no `from`), and on every
   * transition with the state it left - a breaker created by its first failure has not been
   * seen before its first opening, which counts all the same.
   */
  breakerState(provider: string, model: string | null, state: BreakerState, from?: BreakerState): void {
    const m = model ?? ALL_MODELS;
    const key = breakerKey(provider, m);
    const before = from ?? this.breakerNow.get(key);
    this.breakerNow.set(key, state);
    for (const s of BREAKER_STATES) this.breaker.set({ provider, model: m, state: s }, s === state ? 1 : 0);
    if (state === 'open' && before !== undefined && before !== 'open') this.breakerOpened.inc({ provider, model: m });
  }

  // A provider's breaker exists once it fails; until then it is closed, and a dashboard sees it so.
  // Shown for each provider the market knows now (one gone from the market drops out).
  private closedUntilSeen(known: readonly string[]): void {
    const now = new Set(known);
    for (const provider of this.breakerDefaulted) {
      const seen = this.breakerNow.has(breakerKey(provider, ALL_MODELS)); // a real state replaced the default
      if (!seen && now.has(provider)) continue;
      this.breakerDefaulted.delete(provider);
      if (!seen) for (const state of BREAKER_STATES) this.breaker.remove({ provider, model: ALL_MODELS, state });
    }
    for (const provider of now) {
      if (this.breakerDefaulted.has(provider) || this.breakerNow.has(breakerKey(provider, ALL_MODELS))) continue;
      this.breakerDefaulted.add(provider);
      for (const state of BREAKER_STATES) this.breaker.set({ provider, model: ALL_MODELS, state }, state === 'closed' ? 1 : 0);
    }
  }

  /** The Prometheus text exposition of every series. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** `GET /metrics`: the Prometheus text (the caller authenticates first, as for every route but /healthz). */
export function metricsHandler(metrics: DaemonMetrics): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'method_not_allowed', message: 'GET /metrics' } }));
      return;
    }
    let body: string;
    try {
      body = await metrics.render();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'internal', message: `metrics unavailable: ${(err as Error).message}` } }));
      return;
    }
    res.writeHead(200, { 'content-type': metrics.contentType });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
