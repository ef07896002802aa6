// What the request-lifecycle tests share: the real parts of a daemon's request path - a funded
// wallet with its payment path (inline swaps), the market probing world providers, routing
// (breakers, statistics, router) on an injected clock, the request books - and the lifecycle
// itself, driven through contract.ts with a sink that records what a client would receive.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Market } from '../../../daemon/market.ts';
import { ClientKeys, type ClientKey } from '../../../daemon/api/auth.ts';
import type { ApiError } from '../../../daemon/api/errors.ts';
import { DaemonMetrics } from '../../../daemon/api/metrics.ts';
import { Budgets } from '../../../daemon/requests/budgets.ts';
import type { Accepted, ApiRequest, Done, ResponseSink } from '../../../daemon/requests/contract.ts';
import { EventHub } from '../../../daemon/requests/events.ts';
import { RequestLedger } from '../../../daemon/requests/ledger.ts';
import { RequestLifecycle, type LifecycleOptions } from '../../../daemon/requests/lifecycle.ts';
import { MintFees } from '../../../daemon/requests/mint-fees.ts';
import type { SessionOptions } from '../../../daemon/requests/session-contract.ts';
import { SessionManager } from '../../../daemon/requests/sessions.ts';
import { openRouting, type Routing } from '../../../daemon/route/index.ts';
import type { DB } from '../../../db/sqlite.ts';
import { openWallet } from '../../../wallet/open.ts';
import type { CashuWallet } from '../../../wallet/index.ts';
import type { Payments } from '../../../wallet/payments/index.ts';
import { InlineSwapEngine } from '../../../wallet/swap/engine.ts';
import type { World } from '../../world/index.ts';
import type { Logger } from '../../../protocol/logger.ts';
import { assertAccounted } from './books.ts';

/** What a client would have received for one request. */
export class Capture implements ResponseSink {
  acceptedWith?: Accepted;
  body?: unknown;
  doneWith?: Done;
  chunks: unknown[] = [];
  errorWith?: ApiError;
  errorRequestId?: string;
  /** Order of the calls, to check the contract's order. */
  calls: string[] = [];

  accepted(a: Accepted): void {
    this.calls.push('accepted');
    this.acceptedWith = a;
  }
  response(body: unknown, done: Done): void {
    this.calls.push('response');
    this.body = body;
    this.doneWith = done;
  }
  chunk(data: unknown): void {
    if (this.calls.at(-1) !== 'chunk') this.calls.push('chunk');
    this.chunks.push(data);
  }
  done(done: Done): void {
    this.calls.push('done');
    this.doneWith = done;
  }
  error(err: ApiError, requestId?: string): void {
    this.calls.push('error');
    this.errorWith = err;
    this.errorRequestId = requestId;
  }
  get requestId(): string {
    return this.acceptedWith?.requestId ?? this.doneWith?.requestId ?? this.errorRequestId ?? '';
  }
}

export interface Harness {
  world: World;
  db: DB;
  wallet: CashuWallet;
  payments: Payments;
  market: Market;
  routing: Routing;
  ledger: RequestLedger;
  budgets: Budgets;
  keys: ClientKeys;
  events: EventHub;
  metrics: DaemonMetrics;
  lifecycle: RequestLifecycle;
  /** Session mode, when the harness was asked for it. */
  sessions?: SessionManager;
  client: ClientKey;
  /** The routing clock; advance it to age breakers. */
  clock: { now: number; advance(ms: number): void };
  ask(model: string, o?: AskOptions): Promise<Capture>;
  /** A second lifecycle on the same wallet, books and routing, with other options (e.g. short timeouts); closed with the harness. */
  lifecycleWith(options: LifecycleOptions): RequestLifecycle;
  accounted(): Promise<void>;
  close(): Promise<void>;
}

export interface AskOptions {
  stream?: boolean;
  maxTokens?: number;
  client?: ClientKey;
  maxSats?: number;
  provider?: string;
  signal?: AbortSignal;
  content?: string;
  /** Another lifecycle on the same parts (see Harness.lifecycleWith). */
  lifecycle?: RequestLifecycle;
  /** x-satroute-payment. */
  payment?: 'xcashu' | 'session';
  /** Called with each chunk as the client receives it. */
  onChunk?: (data: unknown) => void;
  /** Called as a JSON answer is written to the client. */
  onResponse?: (done: Done) => void;
}

/** A funded request path on `world`: its providers probed, `fund` sats minted at each named mint. */
export async function harness(world: World, o: { fund: Record<string, number>; options?: LifecycleOptions; sessions?: Partial<SessionOptions>; sleep?: (ms: number) => Promise<void>; logger?: Logger }): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-lifecycle-'));
  const clock = { now: Date.UTC(2026, 10, 30, 12, 0, 0), advance(ms: number) { this.now += ms; } };
  const now = () => clock.now;
  const opened = openWallet({
    dataDir: dir, mints: world.mints.map((m) => m.url), engine: new InlineSwapEngine(), synchronous: 'NORMAL',
    // The refund endpoint is asked briefly: a test does not wait out a provider that never answers.
    payments: { refund: { pollAttempts: 2, pollDelayMs: 20, maxRefundRounds: 3 } },
  });
  const { wallet, db } = opened;
  const payments = wallet.payments;
  const market = new Market({ db, config: { relays: [], providers: world.providers.map((p) => p.url) }, autoSchedule: false, clock: now });
  await market.start();
  await Promise.all(market.providers().map((p) => market.probe(p.id)));
  const routing = openRouting({ db, market, config: {}, clock: now, random: () => 0.5 });
  await routing.start();
  const ledger = new RequestLedger(db, now);
  const budgets = new Budgets(db, now);
  const keys = new ClientKeys(db, now);
  const events = new EventHub();
  const metrics = new DaemonMetrics({ version: 'test', processMetrics: false });
  const sessions = o.sessions ? new SessionManager({ db, payments, clock: now, options: o.sessions, sleep: o.sleep ?? (async () => {}), logger: o.logger }) : undefined;
  const fees = new MintFees(wallet.mints, now);
  await fees.refresh(world.mints.map((m) => wallet.mints.assertTrusted(m.url)));
  const lifecycles: RequestLifecycle[] = [];
  const newLifecycle = (options?: LifecycleOptions) => {
    const l = new RequestLifecycle({
      db, router: routing.router, ledger, budgets, payments, metrics, events, clock: now, options, sessions, logger: o.logger,
      balances: () => new Map(wallet.store.balances().filter((b) => b.unit === 'sat').map((b) => [b.mint, b.unspent])),
      feePpk: (m) => fees.feePpk(m),
    });
    lifecycles.push(l);
    return l;
  };
  const lifecycle = newLifecycle(o.options);
  await wallet.start();
  for (const [name, sat] of Object.entries(o.fund)) {
    const q = await wallet.createFundingQuote(sat, { mint: world.mint(name).url });
    world.lightning.pay(q.bolt11);
    await wallet.waitForFunding(q.quoteId, { pollMs: 5, timeoutMs: 10_000 });
  }
  const client = keys.create({ name: 'tester' }).client;
  const h: Harness = {
    world, db, wallet, payments, market, routing, ledger, budgets, keys, events, metrics, lifecycle, sessions, client, clock,
    async ask(model, a = {}) {
      const sink = new Capture();
      if (a.onChunk) {
        const chunk = sink.chunk.bind(sink);
        sink.chunk = (data: unknown) => (a.onChunk!(data), chunk(data));
      }
      if (a.onResponse) {
        const response = sink.response.bind(sink);
        sink.response = (body: unknown, done: Done) => (a.onResponse!(done), response(body, done));
      }
      const body: Record<string, unknown> = { model, messages: [{ role: 'user', content: a.content ?? 'Say hello to the test world.' }], max_tokens: a.maxTokens ?? 40 };
      if (a.stream) body.stream = true;
      const req: ApiRequest = {
        client: a.client ?? client, endpoint: '/v1/chat/completions', body: body as ApiRequest['body'], stream: a.stream === true,
        signal: a.signal ?? new AbortController().signal, receivedAt: clock.now, explain: true,
        ...(a.maxSats !== undefined ? { maxSats: a.maxSats } : {}), ...(a.provider ? { provider: a.provider } : {}), ...(a.payment ? { payment: a.payment } : {}),
      };
      await (a.lifecycle ?? lifecycle).handle(req, sink);
      return sink;
    },
    lifecycleWith: newLifecycle,
    accounted: () => assertAccounted({ db, wallet, payments, lifecycle: { idle: async () => void (await Promise.all(lifecycles.map((l) => l.idle()))) } }),
    async close() {
      for (const l of lifecycles) {
        await l.drain(5_000);
        l.close();
      }
      routing.stop();
      await market.stop();
      await opened.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}
