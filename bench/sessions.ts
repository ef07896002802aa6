// `sessions` bench case: what session mode buys a streaming client, and what it leaves at
// providers. The world runs in another process; its provider makes each SSE chunk after
// CHUNK_MS (the chunkDelayMs knob, a real timer there).
//   stream_ttft_overhead_ms   time to the first chunk through satroute (session mode) minus
//                             straight to the provider with the same session's key, p50 of N
//                             requests each, alternated (target < 2 ms)
//   stream_ttft_xcashu_ratio  time to the first chunk through satroute in X-Cashu mode / the
//                             provider's whole generation time (the node buffers: ~1)
//   session_exposure_sats     the most held at providers at once during bench/cost.ts's workload
//                             (its 20-provider market, streamed, 4 at a time) in session mode
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Figure } from './_figure.ts';
import { scenario as costScenario, BODY as COST_BODY } from './cost.ts';
import { openBenchPath, type BenchPath } from './_request-path.ts';
import { startWorldChild, type WorldChild } from './_world-child.ts';
import type { ApiRequest, ResponseSink } from '../daemon/requests/contract.ts';
import { SessionApi } from '../daemon/requests/session-api.ts';
import { SessionManager } from '../daemon/requests/sessions.ts';
import type { Routing } from '../daemon/route/index.ts';
import { callProvider, createProviderAgents } from '../protocol/provider-call.ts';
import type { Scenario } from '../test/world/index.ts';

const N = Number(process.env.SATROUTE_BENCH_SESSIONS_N ?? 60);
const COST_N = Number(process.env.SATROUTE_BENCH_SESSIONS_COST_N ?? 200);
const CHUNK_MS = 5;
const MODEL = 'bench-live';
const BODY = { model: MODEL, messages: [{ role: 'user', content: 'Tell me, in a few words, why streaming matters to a chat client.' }], max_tokens: 100, stream: true };

const liveScenario = (): Scenario => ({
  seed: 12, mints: [{ name: 'benchmint' }], nwcBalanceSat: 0,
  providers: [{ name: 'live', announce: false, models: [{ id: MODEL, promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 2000, maxCompletionTokens: 300 }], knobs: { chunkDelayMs: CHUNK_MS } }],
});

type Path = BenchPath & { routing: Routing; sessions: SessionManager };

async function setUp(world: WorldChild, fundSat: number): Promise<Path> {
  const p = await openBenchPath(world, { name: 'sessions', fundSat, sessions: true });
  if (!p.routing || !p.sessions) throw new Error('a bench path with satroute\'s router and sessions was asked for');
  return { ...p, routing: p.routing, sessions: p.sessions };
}

async function tearDown(p: Path): Promise<void> {
  await p.lifecycle.drain(5_000);
  await p.sessions.closeAll();
  await p.opened.wallet.payments.changeQueue.drain().catch(() => undefined);
  p.lifecycle.close();
  p.routing.stop();
  await p.market.stop();
  await p.opened.close();
  fs.rmSync(p.dir, { recursive: true, force: true });
}

/** One request through satroute: ms to its first chunk and to its end. */
async function through(p: Path, body: Record<string, unknown>, payment?: 'session' | 'xcashu'): Promise<{ ttftMs: number; totalMs: number; ok: boolean }> {
  let first: number | undefined;
  let ok = false;
  const sink: ResponseSink = { accepted() {}, response() { ok = true; }, chunk() { first ??= performance.now(); }, done() { ok = true; }, error() {} };
  const req: ApiRequest = { client: p.client, endpoint: '/v1/chat/completions', body: body as ApiRequest['body'], stream: body.stream === true, signal: new AbortController().signal, receivedAt: 0, ...(payment ? { payment } : {}) };
  const t0 = performance.now();
  await p.lifecycle.handle(req, sink);
  const end = performance.now();
  return { ttftMs: (first ?? end) - t0, totalMs: end - t0, ok };
}

/** The same request straight to the provider with the session's key: ms to its first chunk and to its end. */
async function direct(providerUrl: string, apiKey: string, agents: ReturnType<typeof createProviderAgents>): Promise<{ ttftMs: number; totalMs: number }> {
  const t0 = performance.now();
  const out = await callProvider({ providerUrl, endpoint: '/v1/chat/completions', body: BODY, payment: { kind: 'bearer', apiKey } }, { agents });
  if (out.kind !== 'ok' || !out.stream) throw new Error(`direct call answered ${out.kind}`);
  let first: number | undefined;
  for await (const item of out.events) if (item.kind === 'data') first ??= performance.now();
  const end = performance.now();
  return { ttftMs: (first ?? end) - t0, totalMs: end - t0 };
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function ttft(): Promise<Figure[]> {
  const world = await startWorldChild(liveScenario());
  const p = await setUp(world, 5_000);
  const agents = createProviderAgents();
  try {
    // Warm up: the session is created, sockets and code paths are hot.
    for (let i = 0; i < 5; i++) if (!(await through(p, BODY)).ok) throw new Error('a warm-up request failed');
    // Straight to the provider: a balance of its own (satroute's session is satroute's to spend).
    const url = world.info.providers[0].url;
    const mint = world.info.mints[0];
    const payments = p.opened.wallet.payments;
    const dep = await payments.sessionDeposit({ sessionId: 'bench-direct', providerUrl: url, mint, tokenMint: mint, amountSat: 1_000 });
    const row = { url, key: (await new SessionApi().create(url, dep.token)).apiKey };
    payments.sessionDeposited(dep.paymentId);
    for (let i = 0; i < 3; i++) await direct(row.url, row.key, agents);
    const via: number[] = [];
    const straight: number[] = [];
    const gen: number[] = [];
    for (let i = 0; i < N; i++) {
      via.push((await through(p, BODY)).ttftMs);
      const d = await direct(row.url, row.key, agents);
      straight.push(d.ttftMs);
      gen.push(d.totalMs);
    }
    const x: number[] = [];
    for (let i = 0; i < Math.min(N, 15); i++) x.push((await through(p, BODY, 'xcashu')).ttftMs);
    const overhead = p50(via) - p50(straight);
    const ratio = p50(x) / p50(gen);
    return [
      { name: 'stream_ttft_overhead_ms', value: overhead, unit: `ms, p50 time to first chunk through satroute in session mode (${p50(via).toFixed(2)}) minus straight to the provider (${p50(straight).toFixed(2)}), ${N} streams each, ${CHUNK_MS} ms per chunk (target < 2)`, baseline: p50(straight), ratio: p50(via) / p50(straight) },
      { name: 'stream_ttft_xcashu_ratio', value: ratio, unit: `X-Cashu mode: p50 time to first chunk (${p50(x).toFixed(1)} ms) / the provider's whole generation (${p50(gen).toFixed(1)} ms); session mode's is ${(p50(via) / p50(gen)).toFixed(3)}`, baseline: p50(via) / p50(gen), ratio },
    ];
  } finally {
    agents.destroy();
    await tearDown(p);
    await world.stop();
  }
}

async function exposure(): Promise<Figure> {
  const world = await startWorldChild(costScenario());
  const p = await setUp(world, Math.max(20_000, COST_N * 120));
  try {
    await world.knobs('p00', { dead: true });
    await world.knobs('p01', { dead: true });
    let left = COST_N;
    let served = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (left-- > 0) if ((await through(p, { ...COST_BODY, stream: true })).ok) served++;
    }));
    const cap = p.sessions.options.globalCapSat;
    return { name: 'session_exposure_sats', value: p.sessions.peakExposureSat, unit: `sat, the most held at providers at once over bench/cost.ts's workload streamed in session mode (${COST_N} requests, 4 at a time, ${served} served; global cap ${cap})` };
  } finally {
    await tearDown(p);
    await world.stop();
  }
}

export async function run(): Promise<Figure[]> {
  return [...(await ttft()), await exposure()];
}
