// `route` bench case: how long one routing decision takes in a big market (issue 10,
// "Decision time": 1,000 providers x 300 models, target p99 < 0.2 ms). A decision is
// Router.plan() for a short chat request - prompt estimate (real tokenizer), every offer of the
// model filtered (avoidance, the node's reservation, budget, mints, breakers) and ranked by
// expected real cost, 3 attempts planned with their permits - then the plan released.
// Providers have history: observed charges, failures, some open breakers, some avoided.
import { performance } from 'node:perf_hooks';
import { Market } from '../daemon/market.ts';
import { MarketStore, type StoredModel, type StoredProvider } from '../daemon/market-store.ts';
import { Breakers } from '../daemon/route/breaker.ts';
import { Router } from '../daemon/route/router.ts';
import { ProviderStats } from '../daemon/route/stats.ts';
import { normalizePrice, reserveTermsFrom, type ModelPrice, type ReserveTerms } from '../protocol/pricing.ts';
import { PromptTokenizer } from '../protocol/tokens.ts';
import { openDatabase } from '../db/sqlite.ts';
import type { Figure } from './_figure.ts';

const MINT = 'https://mint.example';

/** The market: providers x models, stored and loaded as after a restart. */
function buildMarket(providers: number, models: number, now: number) {
  const db = openDatabase(':memory:', { synchronous: 'NORMAL' });
  const store = new MarketStore(db);
  const terms = new Map<string, { price: ModelPrice; reserve: ReserveTerms | null }>();
  const listing = (i: number, j: number) => {
    const prompt = 0.00001 * (1 + ((i + j) % 17));
    const completion = 0.00003 * (1 + ((i * j) % 13));
    const key = `${prompt}/${completion}`;
    let t = terms.get(key);
    if (!t) {
      const m = { context_length: 8192, top_provider: { context_length: 8192, max_completion_tokens: 1024 }, sats_pricing: { prompt, completion, max_prompt_cost: 8192 * prompt, max_completion_cost: 1024 * completion, max_cost: 7168 * prompt + 1024 * completion } };
      terms.set(key, (t = { price: normalizePrice(m)!, reserve: reserveTermsFrom(m) }));
    }
    return t;
  };
  for (let i = 0; i < providers; i++) {
    const url = `https://p${i}.example`;
    const p: StoredProvider = { id: `pk${i}:d`, source: 'nostr', pubkey: `pk${i}`, name: `P${i}`, urls: [url], url, announcedMints: [MINT], infoMints: [MINT], status: 'reachable', statusSince: now, firstSeenAt: now, lastSeenAt: now, nextProbeAt: now + 300_000, failures: 0 };
    const list: StoredModel[] = [];
    for (let j = 0; j < models; j++) list.push({ providerId: p.id, id: `model-${j}`, aliasIds: [`vendor/model-${j}`], ...listing(i, j), firstSeenAt: now, priceSince: now });
    store.saveProbe(p, list, [], []);
  }
  return { db, market: new Market({ db, config: { relays: [], providers: [] }, autoSchedule: false, clock: () => now }) };
}

const DECISIONS = 22_000;

async function decisions(providers: number, models: number): Promise<Figure[]> {
  let now = Date.now();
  const { db, market } = buildMarket(providers, models, now);
  let seed = 11;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const breakers = new Breakers({ clock: () => now, random: rand });
  const stats = new ProviderStats({ clock: () => now });
  // history: most providers honest and reliable, some overcharging (a few past the threshold), some flaky, 5 % open
  for (let i = 0; i < providers; i++) {
    const id = `pk${i}:d`;
    const charge = i % 10 === 0 ? 1.6 + rand() : i % 7 === 0 ? 1.2 : 1;
    for (let k = 0; k < 5; k++) stats.observe({ providerId: id, modelId: `model-${k}`, ok: i % 9 !== 0 || k % 2 === 0, latencyMs: 200 + rand() * 800, expectedMsat: 1000, chargedMsat: Math.round(1000 * charge), usage: { estimatedPromptTokens: 20, promptTokens: 21, completionTokens: 50 } });
    if (i % 20 === 0) for (let k = 0; k < 3; k++) breakers.record(breakers.acquire(id, 'model-0', now)!, { kind: 'failure', scope: 'provider', error: 'HTTP 502' }, now);
  }
  const tokenizer = new PromptTokenizer();
  await tokenizer.load();
  const router = new Router({ market, breakers, stats, tokenizer });
  const balances = new Map([[MINT, 50_000]]);
  const times: number[] = [];
  let planned = 0;
  let cpuStart = process.cpuUsage();
  for (let k = 0; k < DECISIONS; k++) {
    now += 5;
    const j = Math.floor(rand() * models);
    const model = j % 2 ? `model-${j}` : `vendor/model-${j}`;
    const body = { model, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: `Question ${k}: what is ${j} times ${k % 97}? Answer with the number only.` }], max_tokens: 64 };
    const t0 = performance.now();
    const plan = router.plan({ model, body, endpoint: '/v1/chat/completions', balances, budgetSats: 1_000 });
    router.release(plan);
    const dt = performance.now() - t0;
    if (k >= 2000) times.push(dt); // the first 2000 warm up the JIT
    if (k === 1999) cpuStart = process.cpuUsage();
    planned += plan.attempts.length;
  }
  const cpu = process.cpuUsage(cpuStart);
  db.close();
  if (planned < 3 * (DECISIONS - 2000)) throw new Error(`only ${planned} attempts planned`);
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.floor(times.length * q)];
  return [
    { name: 'route_decision_p99_ms', value: at(0.99), unit: `ms (${providers} providers x ${models} models: estimate, filter, rank, plan 3)`, baseline: 0.2, ratio: at(0.99) / 0.2 },
    { name: 'route_decision_p50_ms', value: at(0.5), unit: 'ms (same)' },
    // wall-clock percentiles on a shared machine include time the process was not running; CPU time does not
    { name: 'route_decision_cpu_mean_ms', value: (cpu.user + cpu.system) / 1000 / times.length, unit: 'ms of process CPU per decision over the run (GC and background threads included)' },
  ];
}

export async function run(): Promise<Figure[]> {
  return decisions(1000, 300);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of await run()) process.stdout.write(JSON.stringify(f) + '\n');
}
