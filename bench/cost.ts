// `cost` bench case: sats paid per successful request in a market where the cheapest on paper
// overcharge (20-50 %) or fail (30 %) and two announced providers are dead, through
//   (a) satroute (its router: rank by expected real cost, breakers, statistics),
//   (b) the existing Routstr client's rule exactly (daemon/route/baseline.ts RoutstrClientRule:
//       cheapest prompt + completion list price first, failover by completion price, each
//       provider once, no cap; its cooldowns),
//   (c) a random order among the providers the market lists.
// All three pay through the same request lifecycle, wallet path and ledger (each its own wallet
// and books), so only the choice of provider differs; what each paid is sent - change + change
// lost, from its ledger, once the change has been swapped in and failed tokens reclaimed. The
// world runs in another process.
//   sats_per_success_vs_list_price  satroute / (b)   target <= 0.8
//   sats_per_success_vs_random      satroute / (c)   target <= 0.6
//   success_rate                    satroute's (baselines' in the unit)
//   mint_roundtrips_per_request     satroute's tokens that needed a mint swap, per request (target < 0.05)
import fs from 'node:fs';
import { normalizeMintUrl } from '@cashu/cashu-ts';
import type { Figure } from './_figure.ts';
import { openBenchPath, type BenchPath } from './_request-path.ts';
import { startWorldChild, type WorldChild } from './_world-child.ts';
import { Market } from '../daemon/market.ts';
import type { Offer } from '../daemon/market-index.ts';
import type { ApiRequest, ResponseSink } from '../daemon/requests/contract.ts';
import { requestCostMsat } from '../daemon/requests/ledger.ts';
import { queryRequests } from '../daemon/requests/audit.ts';
import { type AttemptReport, type PlannedAttempt, type RoutePlan, type RouteRequest } from '../daemon/route/index.ts';
import { NoProviderError } from '../daemon/route/errors.ts';
import { randomLiveOrder, RoutstrClientRule } from '../daemon/route/baseline.ts';
import { msatToSatCeil, reservationMsatFor, reserveInputOf, tokenCostMsat } from '../protocol/pricing.ts';
import { seededRandom, type Scenario } from '../test/world/index.ts';

const N = Number(process.env.SATROUTE_BENCH_COST_N ?? 1000);
const WORKERS = 4;
const MODEL = 'bench-chat';
export const BODY = {
  model: MODEL,
  messages: [
    { role: 'system', content: 'You are a helpful assistant that answers in one short paragraph.' },
    { role: 'user', content: 'Explain in a few sentences why the sky looks blue during the day and red at sunset.' },
  ],
  max_tokens: 300,
};

/**
 * 20 providers, list prices spread 1x-4x. The cheapest on paper misbehave: the two cheapest are
 * announced but dead, the next ones overcharge 20-50 % or fail 30 % (refunded), with the first
 * honest provider among them at 1.2x; the rest are honest (a third bill their upstream's USD cost,
 * BTC/USD having moved +-1 %).
 */
export function scenario(): Scenario {
  const list = [1.0, 1.05, 1.1, 1.12, 1.15, 1.2, 1.25, 1.3];
  for (let i = list.length; i < 20; i++) list.push(Number((1.35 + ((i - 8) * 2.65) / 11).toFixed(4)));
  const faults: Record<number, Record<string, unknown>> = {
    2: { overchargeFactor: 1.5 }, 3: { failureRate: 0.3 }, 4: { overchargeFactor: 1.3 }, 6: { overchargeFactor: 1.2 }, 7: { failureRate: 0.3 },
  };
  const providers: Scenario['providers'] = list.map((x, i) => ({
    name: `p${String(i).padStart(2, '0')}`,
    announce: false,
    models: [{ id: MODEL, promptSatsPerToken: Number((0.05 * x).toFixed(5)), completionSatsPerToken: Number((0.2 * x).toFixed(5)), contextLength: 4000, maxCompletionTokens: 512 }],
    knobs: { completionTokens: 120, ...(faults[i] ?? (i >= 8 && i % 3 === 0 ? { usdCost: true, usdDrift: i % 2 ? 0.01 : -0.01 } : {})) },
  }));
  // p00 and p01 are killed once the market has probed them: announced, then dead.
  return { seed: 5, mints: [{ name: 'benchmint' }], nwcBalanceSat: 0, providers };
}

type Strategy = 'satroute' | 'routstr' | 'random';

/** A baseline's choice as a router the lifecycle can run: same token sizing, same payment, another order. */
class BaselineRouter {
  private nextPermit = 1;
  private readonly rule = new RoutstrClientRule({ requirePositiveReview: false });
  private readonly random = seededRandom(99);

  constructor(
    private readonly kind: 'routstr' | 'random',
    private readonly market: Market,
  ) {}

  plan(req: RouteRequest): RoutePlan {
    const offers = this.market.providersFor(req.model);
    const mints = new Set(req.balances.keys());
    const order = this.kind === 'routstr' ? this.rule.order(offers, mints, req.model, Date.now()) : randomLiveOrder(offers, mints, this.random).slice(0, 3);
    const input = reserveInputOf(req.body);
    const attempts = order.map((offer, i) => this.attempt(i + 1, offer, input, mints));
    if (attempts.length === 0) throw new NoProviderError(req.model, []);
    return { model: req.model, attempts, skipped: [], prompt: { tokens: 0, exact: false, chars: 0 }, forcedProbe: false };
  }

  report(a: PlannedAttempt, r: AttemptReport): void {
    // 400/422 and the node's own 402 are no failures to the client (ROUTSTR.md section 6).
    if (r.breaker.kind === 'failure' || r.breaker.kind === 'rate_limited') this.rule.failure(a.providerId, a.model, Date.now());
    else if (r.breaker.kind === 'success') this.rule.success(a.providerId, a.model);
  }

  late(): void {}
  release(): void {}

  private attempt(n: number, offer: Offer, input: ReturnType<typeof reserveInputOf>, mints: Set<string>): PlannedAttempt {
    const reserveMsat = reservationMsatFor(offer.model.reserve, input, offer.price.maxCostMsat);
    const tokenMint = offer.mints.find((m) => mints.has(normalizeMintUrl(m)))!;
    const usage = { promptTokens: 0, completionTokens: 0 };
    return {
      n, offer, providerId: offer.provider.id, providerName: offer.provider.id, providerUrl: offer.provider.url ?? offer.provider.urls[0], model: offer.model.id,
      mint: normalizeMintUrl(tokenMint), tokenMint, price: offer.price, routedAt: Date.now(), reserveMsat, tokenSat: msatToSatCeil(reserveMsat),
      expected: { ...usage, costMsat: tokenCostMsat(usage, offer.price) }, estimatedPromptTokens: 0, score: 0,
      permit: { id: this.nextPermit++, providerId: offer.provider.id, modelId: offer.model.id, probes: [], done: false },
    };
  }
}

interface Run extends BenchPath {
  strategy: Strategy;
}

async function setUp(strategy: Strategy, world: WorldChild): Promise<Run> {
  const opened = await openBenchPath(world, {
    name: strategy, fundSat: Math.max(20_000, N * 120),
    ...(strategy === 'satroute' ? {} : { router: (market: Market) => new BaselineRouter(strategy, market) }),
  });
  return { ...opened, strategy };
}

const quietSink = (): ResponseSink & { ok: boolean } => {
  const s = { ok: false, accepted() {}, response() { s.ok = true; }, chunk() {}, done() { s.ok = true; }, error() {} };
  return s;
};

async function drive(run: Run, n: number): Promise<void> {
  let left = n;
  await Promise.all(Array.from({ length: WORKERS }, async () => {
    while (left-- > 0) {
      const req: ApiRequest = { client: run.client, endpoint: '/v1/chat/completions', body: BODY as ApiRequest['body'], stream: false, signal: new AbortController().signal, receivedAt: 0 };
      await run.lifecycle.handle(req, quietSink());
    }
  }));
}

/** Sats paid per successful request, from the run's ledger (after change and reclaims are settled). */
async function result(run: Run): Promise<{ satsPerSuccess: number; successRate: number; requests: number; failures: string }> {
  for (let i = 0; i < 3; i++) {
    await run.lifecycle.idle();
    await run.opened.wallet.payments.changeQueue.drain();
  }
  const rows = queryRequests(run.opened.db, { client: run.strategy });
  const paidMsat = rows.reduce((t, r) => t + requestCostMsat(r), 0);
  const ok = rows.filter((r) => r.status === 'succeeded').length;
  // Why the others failed, by error code and the providers tried (what a missed success rate needs explained).
  const why = new Map<string, number>();
  for (const r of rows.filter((x) => x.status !== 'succeeded')) {
    const tried = (run.opened.db.prepare('SELECT provider_id FROM attempts WHERE request_id = ? ORDER BY n').all(r.id) as { provider_id: string }[]).map((a) => a.provider_id);
    const k = `${r.errorCode ?? r.status} after [${tried.join(', ')}]`;
    why.set(k, (why.get(k) ?? 0) + 1);
  }
  const failures = [...why].map(([k, n]) => `${n} x ${k}`).join('; ');
  return { satsPerSuccess: ok ? paidMsat / 1000 / ok : Infinity, successRate: rows.length ? ok / rows.length : 0, requests: rows.length, failures };
}

export async function run(): Promise<Figure[]> {
  const world = await startWorldChild(scenario());
  const runs: Run[] = [];
  try {
    for (const s of ['satroute', 'routstr', 'random'] as Strategy[]) runs.push(await setUp(s, world));
    // Announced and probed, then dead (as about half of announced providers are).
    await world.knobs('p00', { dead: true });
    await world.knobs('p01', { dead: true });
    const before = runs[0].opened.wallet.payments.stats();
    await Promise.all(runs.map((r) => drive(r, N)));
    const after = runs[0].opened.wallet.payments.stats();
    const [a, b, c] = await Promise.all(runs.map(result));
    const roundtrips = (after.roundtrips - before.roundtrips) / a.requests;
    const f = (x: number) => x.toFixed(3);
    return [
      { name: 'sats_per_success_vs_list_price', value: a.satsPerSuccess / b.satsPerSuccess, unit: `satroute / Routstr client's rule: ${f(a.satsPerSuccess)} vs ${f(b.satsPerSuccess)} sat per successful request over ${N} requests each (target <= 0.8)`, baseline: b.satsPerSuccess, ratio: a.satsPerSuccess / b.satsPerSuccess },
      { name: 'sats_per_success_vs_random', value: a.satsPerSuccess / c.satsPerSuccess, unit: `satroute / random live provider: ${f(a.satsPerSuccess)} vs ${f(c.satsPerSuccess)} sat (target <= 0.6)`, baseline: c.satsPerSuccess, ratio: a.satsPerSuccess / c.satsPerSuccess },
      { name: 'success_rate', value: a.successRate, unit: `satroute's share of requests served (Routstr client's rule ${f(b.successRate)}, random ${f(c.successRate)})${a.failures ? `; satroute's failures: ${a.failures}` : ''}${b.failures ? `; the rule's: ${b.failures}` : ''}`, baseline: b.successRate, ratio: b.successRate ? a.successRate / b.successRate : null },
      { name: 'mint_roundtrips_per_request', value: roundtrips, unit: `satroute's tokens that needed (or waited for) a mint swap, per request, with the whole request path running, ${WORKERS} at a time (target < 0.05)` },
    ];
  } finally {
    for (const r of runs) {
      await r.lifecycle.drain(5_000);
      r.lifecycle.close();
      r.routing?.stop();
      await r.market.stop();
      await r.opened.close();
      fs.rmSync(r.dir, { recursive: true, force: true });
    }
    await world.stop();
  }
}
