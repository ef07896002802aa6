// The running process: one data directory, one writer. Composes the market (discovery and
// prices), the wallet with its payment path, routing (breakers, statistics, router), the request
// books and the request lifecycle, the control socket for the CLI, and the HTTP API.
//
// Start: everything is opened, then RECOVERY RUNS BEFORE THE DAEMON LISTENS - the wallet settles
// every token a crash left out (NUT-07, refund endpoints, losses with evidence) and the request
// rows a crash left pending are finished from those facts - so no request is admitted beside
// unresolved money. Stop (SIGTERM): stop accepting, let requests in flight finish (bounded by
// `requests.shutdownGraceMs`) or cancel and settle them, then stop the rest in reverse order,
// the wallet last. Nothing is lost: `audit verify` passes after.
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';
import { startControlServer, type ControlServer } from './control/server.ts';
import { marketControlHandlers } from './control/market.ts';
import { walletControlHandlers } from './control/wallet.ts';
import { Market } from './market.ts';
import { isOnionUrl } from '../protocol/discovery.ts';
import { nullLogger, type Logger } from '../protocol/logger.ts';
import { socksFetch } from '../protocol/socks.ts';
import type { CashuWallet, RecoveryReport, SweepReport } from '../wallet/index.ts';
import { openWallet, type OpenedWallet } from '../wallet/open.ts';
import type { DB } from '../db/sqlite.ts';
import type { Payments } from '../wallet/payments/index.ts';
import { ClientKeys } from './api/auth.ts';
import { startHttpApi, type HttpApi } from './api/http.ts';
import { DaemonMetrics } from './api/metrics.ts';
import { attachWebSocket, type WebSocketApi, type WsServerLimits, type WsTimers } from './api/ws.ts';
import { booksControlHandlers } from './control/books.ts';
import { Durability } from './durability.ts';
import { auditReport } from './requests/audit.ts';
import { Budgets } from './requests/budgets.ts';
import { EventHub } from './requests/events.ts';
import { RequestLedger } from './requests/ledger.ts';
import { RequestLifecycle, within } from './requests/lifecycle.ts';
import { MintFees } from './requests/mint-fees.ts';
import { paymentFactsLookup } from './requests/payment-facts.ts';
import { recoverInterrupted } from './requests/recover.ts';
import { SessionManager } from './requests/sessions.ts';
import { openRouting, routeControlHandlers, type Routing } from './route/index.ts';
import { providerHealth } from './route/health.ts';
import { booksStatus, pendingSettlements } from './status.ts';
import { VERSION } from './version.ts';

export { VERSION };

/** `<dataDir>/daemon.json`: how other processes find the running daemon. */
export const daemonFile = (dataDir: string) => path.join(dataDir, 'daemon.json');

/** Default time requests in flight get to finish on SIGTERM before they are canceled and settled. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 20_000;

export interface DaemonInfo {
  pid: number;
  listen: string;
  startedAt: string;
  version: string;
}

export interface DaemonOptions {
  logger?: Logger;
  clock?: () => number;
  /** Monotonic ms for durations (overhead, latency); default performance.now. */
  now?: () => number;
  /** Wallet options for tests (e.g. an inline swap engine, refund polling). */
  wallet?: Pick<Parameters<typeof openWallet>[0], 'engine' | 'payments' | 'synchronous'>;
  /** Breaker jitter and the like (tests). */
  random?: () => number;
  /** The WebSocket API's limits and timers (tests: a small buffer, a stall timeout fired by hand). */
  ws?: { limits?: Partial<WsServerLimits>; timers?: WsTimers };
}

export interface Daemon {
  readonly info: DaemonInfo;
  readonly market: Market;
  readonly wallet: CashuWallet;
  readonly payments: Payments;
  readonly routing: Routing;
  readonly lifecycle: RequestLifecycle;
  /** Session balances at providers (live streaming). */
  readonly sessions: SessionManager;
  readonly ledger: RequestLedger;
  readonly keys: ClientKeys;
  readonly budgets: Budgets;
  readonly events: EventHub;
  readonly metrics: DaemonMetrics;
  readonly http: HttpApi;
  /** The WebSocket API on the HTTP server's /v1/ws. */
  readonly ws: WebSocketApi;
  /** The data directory's database (the wallet's, the market's and the books' tables). */
  readonly db: DB;
  stop(): Promise<void>;
}

/** Start everything; on any failure, stop what already started and rethrow. */
export async function startDaemon(config: Config, opts: DaemonOptions = {}): Promise<Daemon> {
  const logger = opts.logger ?? nullLogger;
  const clock = opts.clock ?? Date.now;
  const stack: (() => Promise<void> | void)[] = [];
  const unwind = async () => {
    for (const stop of stack.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.error('stop step failed', { error: err as Error });
      }
    }
  };
  try {
    // Refunds from .onion providers go through the same SOCKS proxy as their probes.
    const onionFetch = config.socksProxy ? socksFetch(config.socksProxy) : undefined;
    // The writer lock, the database and the wallet with its payment path, opened as the CLI opens
    // them; the commits a mint call must not outlive (its outputs) reach the disk through the WAL
    // thread, without stalling requests - from the wallet's first commit on.
    let durable: Durability | undefined;
    let opened: OpenedWallet;
    try {
      opened = openWallet({
        dataDir: config.dataDir, mints: config.mints, logger, clock, autoTopup: config.autoTopup, ...opts.wallet,
        payments: { fetch: (url, init) => (onionFetch && isOnionUrl(url) ? onionFetch : fetch)(url, init), ...opts.wallet?.payments },
        flushFor: (db) => (durable = new Durability(db, config.storage, clock, logger)).flush,
      });
    } catch (err) {
      await durable?.close();
      throw err;
    }
    stack.push(() => opened.close());
    const durability = durable!;
    stack.push(() => durability.close());
    const { wallet, db } = opened;
    const payments = wallet.payments;

    const market = new Market({ db, config, logger, clock });
    stack.push(() => market.stop());
    const routing = openRouting({ db, market, config, clock, random: opts.random, logger });
    stack.push(() => routing.stop());

    const keys = new ClientKeys(db, clock);
    const budgets = new Budgets(db, clock);
    const ledger = new RequestLedger(db, clock);
    const events = new EventHub(logger);
    const fees = new MintFees(wallet.mints, clock, logger);
    const paymentFacts = paymentFactsLookup(payments);
    // The lifecycle and the WebSocket API come later; the scrape reads them once they exist.
    let lifecycleRef: RequestLifecycle | undefined;
    let wsRef: WebSocketApi | undefined;
    let sessionsRef: SessionManager | undefined;
    const metrics = new DaemonMetrics({
      version: VERSION,
      sources: {
        balances: () => wallet.balance().mints.map((b) => ({ mint: b.mint, unit: b.unit, unspent: b.unspent, pending: b.pending })),
        pendingSettlements: () => pendingSettlements(db),
        requestsInFlight: () => lifecycleRef?.running ?? 0,
        ws: () => wsRef?.stats() ?? null,
        sessionExposure: () => sessionsRef?.exposure() ?? [],
        providers: () => market.providers().map((p) => p.id),
      },
    });
    // A provider whose session balance shrank beyond what it reported, or that kept one: a
    // failure towards its breaker (demoted), and the flag counted.
    const sessions = new SessionManager({
      db, payments, clock, logger, options: config.payment, books: { ledger, budgets },
      onFlag: (providerId, flag) => {
        metrics.flagRaised(providerId, flag);
        routing.breakers.recordLate(providerId, '', { kind: 'failure', scope: 'provider', error: flag });
      },
    });
    sessionsRef = sessions;
    // Subscribed before the wallet's recovery runs: its outcomes reach the request books.
    const lifecycle = new RequestLifecycle({
      db, router: routing.router, ledger, budgets, payments, balances: () => spendable(wallet), feePpk: (m) => fees.feePpk(m),
      metrics, events, logger, clock, now: opts.now, options: config.requests, sessions,
    });
    stack.push(() => lifecycle.close());
    lifecycleRef = lifecycle;
    wireProviderEvents(routing, market, events, metrics, clock);

    await routing.start();
    await market.start();
    // After an unclean stop (kill, crash, power cut) the proofs counted unspent are checked with their mints.
    const recovery = await wallet.start(undefined, { sweep: durability.lastStop === 'unclean' });
    for (const step of recovery.steps) if (step.error) logger.warn('recovery step failed; retried on the next tick', { step: step.name, error: step.error });
    reportSweep(recovery.steps.find((s) => s.name === 'sweep'), durability, logger);
    const recovered = recoverInterrupted({ db, ledger, budgets }, paymentFacts, clock);
    if (recovered.requests) logger.warn('requests interrupted by the last stop were settled from the wallet', { ...recovered });
    // Session balances the last run left at providers come home (refund tries go on in the background past the bound).
    const leftBehind = sessions.recover().catch((err) => logger.warn('session refunds on start failed; retried at the next start', { error: (err as Error).message }));
    await within(leftBehind, 10_000);
    stack.push(sessions.followBreakers(routing.breakers));
    const sweepMs = Math.max(1_000, Math.min(30_000, Math.floor(sessions.options.idleRefundMs / 4)));
    const sweeper = setInterval(() => void sessions.sweep().catch((err) => logger.warn('idle session refund failed', { error: (err as Error).message })), sweepMs);
    sweeper.unref();
    stack.push(() => clearInterval(sweeper));
    await fees.refresh(config.mints.map((m) => wallet.mints.assertTrusted(m)));

    const startedAt = new Date(clock()).toISOString();
    let info: DaemonInfo = { pid: process.pid, listen: config.listen, startedAt, version: VERSION };
    const status = () => {
      const providers = market.providers();
      return {
        ...info, data_dir: config.dataDir, uptime_s: Math.max(0, Math.floor((clock() - Date.parse(startedAt)) / 1000)),
        wallet: wallet.balance(), providers: providers.length, providers_up: providers.filter((p) => p.status === 'reachable' && p.models > 0).length,
        models: market.models().length, payments: payments.stats(), requests_in_flight: lifecycle.running, session_exposure: sessions.exposure(), books: booksStatus(db, clock()),
      };
    };
    const control: ControlServer = await startControlServer(config.dataDir, {
      ...marketControlHandlers(market),
      ...walletControlHandlers(wallet),
      ...routeControlHandlers(routing),
      ...booksControlHandlers({ db, keys, budgets, paymentFacts }),
      'daemon.status': status,
    });
    stack.push(() => control.close());

    const http = await startHttpApi(config.listen, {
      keys, handler: lifecycle, metrics, logger, clock, maxBodyBytes: config.requests?.maxBodyBytes,
      models: () => market.models(),
      health: () => ({ version: VERSION, providers: market.providers().length }),
      admin: {
        status,
        providers: () => {
          const health = providerHealth(routing.breakers, routing.stats);
          return market.providers().map((p) => ({ ...p, health: health[p.id] ?? null }));
        },
        breakers: () => routing.breakers.views(),
        wallet: () => ({ ...wallet.balance(), payments: payments.stats() }),
        audit: ({ attempts, ...filter }) => auditReport(db, filter, { attempts }),
      },
    });
    stack.push(() => http.close());
    // Closed before the HTTP server (the stack unwinds in reverse): its sockets hold the server open.
    const ws = attachWebSocket(http.server, { keys, handler: lifecycle, events, logger, clock, ...opts.ws });
    stack.push(() => ws.close());
    wsRef = ws;
    info = { ...info, listen: http.address };

    fs.writeFileSync(daemonFile(config.dataDir), JSON.stringify(info) + '\n', { mode: 0o600 });
    stack.push(() => fs.rmSync(daemonFile(config.dataDir), { force: true }));
    logger.info('satroute started', { dataDir: config.dataDir, listen: info.listen, relays: config.relays.length, mints: config.mints.length, providersKnown: market.providers().length, balanceSat: wallet.balance().totalSat });
    let stopping: Promise<void> | undefined;
    return {
      info, market, wallet, payments, routing, lifecycle, sessions, ledger, keys, budgets, events, metrics, http, ws, db,
      stop: () => (stopping ??= (async () => {
        // No new connections; requests in flight finish (or are canceled and settled).
        await http.stopAccepting();
        // WebSocket clients get no new requests; the lifecycle's drain bounds how long the running ones get.
        void ws.drain();
        const drained = await lifecycle.drain(config.requests?.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS);
        if (drained.canceled || drained.unfinishedWork) logger.warn('stopped with requests canceled or money work left to recovery', drained);
        // Every session balance home before the wallet stops (its refund token waits in the change queue if not swapped yet).
        if (!(await within(sessions.closeAll('shutdown'), config.requests?.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS))) logger.warn('session refunds did not finish; the next start takes them home');
        await payments.changeQueue.drain().catch(() => undefined);
        durability.stopCleanly();
        await unwind();
        logger.info('satroute stopped');
      })()),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}

/** The sweep after an unclean stop: logged; once every mint answered, nothing is owed any more. */
function reportSweep(step: RecoveryReport['steps'][number] | undefined, durability: Durability, logger: Logger): void {
  if (!step) return;
  const reports = (step.result ?? []) as SweepReport[];
  const failed = reports.filter((r) => r.failed);
  if (!step.error && failed.length === 0) durability.markReconciled();
  const found = reports.filter((r) => r.spent.count || r.pending.count);
  const fields = {
    mints: reports.map((r) => ({ mint: r.mint, unit: r.unit, checked: r.checked, spent: r.spent.amount, held: r.pending.amount, ...(r.failed ? { failed: r.failed } : {}) })),
  };
  if (found.length || failed.length || step.error) logger.warn('the last stop was unclean: proofs counted unspent were checked with their mints; spent ones are booked as losses, and a mint that did not answer is asked at the next start', fields);
  else logger.info('the last stop was unclean: every proof counted unspent is unspent at its mint', fields);
}

/** Spendable sats per trusted mint (normalised URL), as the router wants them. */
function spendable(wallet: CashuWallet): Map<string, number> {
  const out = new Map<string, number>();
  for (const b of wallet.store.unspentTotals()) if (b.unit === 'sat' && wallet.mints.isTrusted(b.mint)) out.set(b.mint, b.unspent);
  return out;
}

/** The `providers` topic and the breaker metrics, from the breakers, the statistics and the market. */
function wireProviderEvents(routing: Routing, market: Market, events: EventHub, metrics: DaemonMetrics, clock: () => number): void {
  const time = () => new Date(clock()).toISOString();
  for (const b of routing.breakers.views()) metrics.breakerState(b.provider_id, b.model_id, b.state);
  routing.breakers.on('change', (c) => {
    metrics.breakerState(c.providerId, c.modelId, c.to, c.from);
    events.publish({ topic: 'providers', time: time(), provider: c.providerId, url: market.provider(c.providerId)?.url ?? null, kind: 'breaker', state: c.to, model: c.modelId, detail: c.reason });
  });
  routing.stats.on('avoidance', (a) => {
    events.publish({ topic: 'providers', time: time(), provider: a.providerId, url: market.provider(a.providerId)?.url ?? null, kind: 'avoidance', state: a.avoid ? 'avoided' : 'not_avoided', model: null, ...(a.avoid ? { detail: a.avoid.detail } : {}) });
  });
  const reach = new Map<string, string>();
  market.on('change', (c) => {
    if (c.type !== 'provider' || reach.get(c.provider.id) === c.provider.status) return;
    reach.set(c.provider.id, c.provider.status);
    events.publish({ topic: 'providers', time: time(), provider: c.provider.id, url: c.provider.url, kind: 'reachability', state: c.provider.status, model: null, ...(c.provider.last_error ? { detail: c.provider.last_error } : {}) });
  });
}
