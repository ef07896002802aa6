// `overhead` bench case: what satroute adds to one paid request. The same non-streaming request
// goes to a provider directly (carrying an X-Cashu token, as satroute pays) and through a running
// satroute daemon (HTTP API, routing, a token from the wallet, the call, settlement and
// reconciliation in SQLite, change swapped in, the reserve refilled, as the daemon runs), in the
// same run, interleaved. Providers, mint and replays run in other processes: this process measures
// the daemon and the load generator (the same for both ways).
//
// The figures the issue names are taken as it states them: "the same non-streaming request to one
// world provider directly and through satroute, payment included". The world provider (a
// routstr-core node's behaviour: each token redeemed at the mint, change sent back) is paid by both
// ways, the direct way with tokens made beforehand:
//     overhead_p50_ms     added latency at p50, one request at a time (target < 1 ms)
//     overhead_p99_ms     added latency at p99 with 10 connections (target < 5 ms)
//     throughput_ratio    requests/s through satroute / directly, 10 connections (target >= 0.5)
//     overhead_serial_p99_ms, overhead_c10_p50_ms
// The world's mint and provider share one process and two cores with everything else, so
// satroute's own swaps at that mint (change, refills) hold the provider up too: harsher than a
// node and a mint on other machines.
//
// Then satroute's own work alone: a replay of the world provider's recorded answer (no redemption:
// a network round trip; a 1-sat change token made beforehand in each answer, as a node returns
// change) against which every millisecond and every curve multiplication is satroute's:
//     overhead_replay_p50_ms, overhead_replay_p99_ms (10 connections), throughput_replay_ratio,
//     overhead_replay_c10_p50_ms, overhead_internal_p50_ms (the daemon's own
//     x-satroute-overhead-ms: its time less the provider's)
// And the floor of any gateway written this way: a bare pass-through proxy in this process
// (node:http, keep-alive, body parsed and sent on with its X-Cashu header, the answer passed back
// with its change; no auth, routing, payment or ledger):
//     overhead_bare_proxy_world_p50_ms  in front of the world provider, interleaved with the
//                                       serial pairs above (so the three ways share the drift)
//     overhead_bare_proxy_p50_ms        in front of the replay
// And how much the p99 at 10 connections moves with no satroute in it at all: the direct way's two
// measured blocks against each other (overhead_p99_direct_vs_direct_ms), the noise floor under
// overhead_p99_ms.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { getEncodedToken, Wallet, type Proof } from '@cashu/cashu-ts';
import type { Figure } from './_figure.ts';
import { startHelper, startWorldChild } from './_world-child.ts';
import { loadConfig } from '../daemon/config.ts';
import { startDaemon } from '../daemon/daemon.ts';
import { splitAmount } from '../wallet/select.ts';
import { requiredMsat, type ModelSpec } from '../test/world/provider.ts';

const MODEL: ModelSpec = { id: 'bench', promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 2000, maxCompletionTokens: 256 };
const BODY = { model: MODEL.id, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name three prime numbers.' }], max_tokens: 64 };
const N = Number(process.env.SATROUTE_BENCH_OVERHEAD_N ?? 1000);
const WORLD_N = Number(process.env.SATROUTE_BENCH_OVERHEAD_WORLD_N ?? 200);
const WORLD_C10 = Number(process.env.SATROUTE_BENCH_OVERHEAD_WORLD_C10 ?? 150); // requests per block, 3 blocks, the first warm-up
const CONCURRENCY = 10;

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const p50 = (x: number[]) => pct(x, 0.5);
const p99 = (x: number[]) => pct(x, 0.99);
const f = (n: number) => n.toFixed(3);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function post(agent: http.Agent, url: string, headers: Record<string, string>, payload: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': String(payload.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        JSON.parse(text);
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        else resolve({ status: res.statusCode, headers: res.headers, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

type Ways = Record<'direct' | 'through', () => Promise<Answer>>;

/** Every order of these ways, one after another: each way goes first, second, ... equally often. */
function orders<K extends string>(names: readonly K[]): K[][] {
  if (names.length <= 1) return [[...names]];
  return names.flatMap((first, i) => orders([...names.slice(0, i), ...names.slice(i + 1)]).map((rest) => [first, ...rest]));
}

/**
 * The least a Node gateway adds: a proxy that reads the body, parses it, sends it on over a
 * keep-alive agent (with the X-Cashu token, if any) and passes the answer back (with the change,
 * if any): the calibration beside satroute's own figures.
 */
async function bareProxy(upstream: string): Promise<{ url: string; close(): Promise<void> }> {
  const up = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.from(JSON.stringify(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      const cashu = req.headers['x-cashu'];
      const headers = { 'content-type': 'application/json', 'content-length': String(body.length), ...(typeof cashu === 'string' ? { 'x-cashu': cashu } : {}) };
      const out = http.request(`${upstream}${req.url}`, { method: 'POST', agent: up, headers }, (answer) => {
        const got: Buffer[] = [];
        answer.on('data', (c: Buffer) => got.push(c));
        answer.on('end', () => {
          const text = Buffer.concat(got);
          const change = answer.headers['x-cashu'];
          res.writeHead(answer.statusCode ?? 502, { 'content-type': 'application/json', 'content-length': String(text.length), ...(typeof change === 'string' ? { 'x-cashu': change } : {}) });
          res.end(text);
        });
      });
      out.on('error', () => res.destroy());
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => { up.destroy(); server.closeAllConnections(); server.close(() => resolve()); }) };
}

/** Serial latencies, the ways interleaved (each order in turn) so drift hits them alike. */
async function serial<K extends string>(ways: Record<K, () => Promise<Answer>>, n: number, warmup: number): Promise<Record<K, number[]>> {
  const names = Object.keys(ways) as K[];
  const turns = orders(names);
  const out = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let i = 0; i < warmup + n; i++) {
    for (const name of turns[i % turns.length]) {
      const t = performance.now();
      await ways[name]();
      if (i >= warmup) out[name].push(performance.now() - t);
    }
  }
  for (const name of names) out[name].sort((a, b) => a - b);
  return out;
}

/** `concurrency` requests in flight, blocks alternating between the ways; the first block of each is warm-up. */
async function concurrent(ways: Ways, perBlock: number, blocks: number, onThrough?: (a: Answer) => void) {
  const lat = { direct: [] as number[], through: [] as number[] };
  const wall = { direct: 0, through: 0 };
  /** The direct way's latencies block by block (measured blocks only): its p99 against itself. */
  const directBlocks: number[][] = [];
  for (let b = 0; b < blocks; b++) {
    for (const name of (b % 2 ? ['direct', 'through'] : ['through', 'direct']) as ('direct' | 'through')[]) {
      let left = perBlock;
      const t0 = performance.now();
      const block: number[] = [];
      if (b > 0 && name === 'direct') directBlocks.push(block);
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (left-- > 0) {
          const t = performance.now();
          const a = await ways[name]();
          if (b > 0) {
            lat[name].push(performance.now() - t);
            block.push(performance.now() - t);
            if (name === 'through') onThrough?.(a);
          }
        }
      }));
      if (b > 0) wall[name] += performance.now() - t0;
    }
  }
  lat.direct.sort((a, b) => a - b);
  lat.through.sort((a, b) => a - b);
  for (const block of directBlocks) block.sort((a, b) => a - b);
  return { lat, directBlocks, rate: (name: 'direct' | 'through') => lat[name].length / (wall[name] / 1000) };
}

export async function run(): Promise<Figure[]> {
  const world = await startWorldChild({ mints: [{ name: 'benchmint' }], nwcBalanceSat: 0, providers: [{ name: 'bench', announce: false, models: [MODEL] }] });
  const mintUrl = world.info.mints[0];
  const worldUrl = world.info.providers[0].url;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4_000, scheduling: 'lifo' });
  const payload = Buffer.from(JSON.stringify(BODY));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-bench-overhead-'));
  let replay: { first: { url: string }; stop(): Promise<void> } | undefined;
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let bare: Awaited<ReturnType<typeof bareProxy>> | undefined;
  try {
    // Tokens for the direct requests to the world provider, made beforehand: each exactly what the node checks.
    const needSat = Math.ceil(requiredMsat(MODEL, BODY) / 1000);
    const split = splitAmount(needSat);
    const w = new Wallet(mintUrl, { unit: 'sat' });
    await w.loadMint();
    const mintTokens = async (count: number, parts: number[]): Promise<string[]> => {
      const out: string[] = [];
      for (let made = 0; made < count; ) {
        const batch = Math.min(200, count - made); // the mint reads bodies up to a limit
        const each = parts.reduce((a, b) => a + b, 0);
        // (a keep-alive socket the mint closed while it was busy fails a call now and then: the batch
        // is made again with a new quote; a lost answer only leaves the bench some unspendable sats)
        let proofs: Proof[] | undefined;
        for (let attempt = 1; !proofs; attempt++) {
          try {
            const quote = await w.createMintQuoteBolt11(batch * each);
            await world.pay(quote.request);
            proofs = await w.mintProofsBolt11(batch * each, quote.quote, undefined, { type: 'random', denominations: Array.from({ length: batch }, () => parts).flat() });
          } catch (err) {
            if (attempt === 3) throw err;
            process.stderr.write(`overhead: minting the direct way's tokens failed (${(err as { cause?: Error }).cause?.message ?? (err as Error).message}); again\n`);
          }
        }
        const byAmount = new Map<number, Proof[]>();
        for (const p of proofs) byAmount.set(Number(p.amount), [...(byAmount.get(Number(p.amount)) ?? []), p]);
        // Without DLEQ proofs, as satroute sends its tokens and a node its change (include_dleq=False).
        for (let i = 0; i < batch; i++) out.push(getEncodedToken({ mint: mintUrl, unit: 'sat', proofs: parts.map((a) => byAmount.get(a)!.pop()!) }, { removeDleq: true }));
        made += batch;
      }
      return out;
    };
    const tokens = await mintTokens(2 * (WORLD_N + 10) + 3 * WORLD_C10 + 20, split);
    // The replay's change: 1 sat per answer, valid at the world's mint.
    const changeFile = path.join(dir, 'change.txt');
    fs.writeFileSync(changeFile, (await mintTokens(Math.round(N * 1.2) + 2 * Math.round(N / 2) * 4 + 100, [1])).join('\n'));

    // Record the world provider's answers, and replay them from another process.
    const get = async (p: string) => (await fetch(`${worldUrl}${p}`)).text();
    const recorded = await post(agent, `${worldUrl}/v1/chat/completions`, { 'x-cashu': tokens.pop()! }, payload);
    const keep = Object.fromEntries(Object.entries(recorded.headers).filter(([k, v]) => typeof v === 'string' && !['connection', 'keep-alive', 'date', 'content-length', 'transfer-encoding', 'x-cashu'].includes(k))) as Record<string, string>;
    replay = await startHelper<{ url: string }>('_replay-provider.ts', { info: await get('/v1/info'), models: await get('/v1/models'), answer: { headers: keep, body: recorded.text }, changeFile });
    const replayUrl = replay.first.url;

    // The replay keeps all but 1 sat of each token, whatever it asked: the statistics would call that overcharging and avoid it.
    fs.writeFileSync(path.join(dir, 'satroute.json'), JSON.stringify({ routing: { stats: { avoidOverchargeRatio: 1e6 } } }));
    daemon = await startDaemon(loadConfig({ SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mintUrl, SATROUTE_RELAYS: '', SATROUTE_PROVIDERS: `${replayUrl},${worldUrl}`, SATROUTE_LISTEN: '127.0.0.1:0' }));
    await Promise.all(daemon.market.providers().map((p) => daemon!.market.probe(p.id)));
    const q = await daemon.wallet.createFundingQuote(30_000, { mint: mintUrl });
    await world.pay(q.bolt11);
    await daemon.wallet.waitForFunding(q.quoteId, { pollMs: 20, timeoutMs: 30_000 });
    const key = daemon.keys.create({ name: 'bench' }).key;
    const through = (pin: string) => () => post(agent, `http://${daemon!.info.listen}/v1/chat/completions`, { authorization: `Bearer ${key}`, 'x-satroute-provider': pin }, payload);

    // The world provider, both ways paying (the headline figures).
    const worldWays: Ways = { direct: () => post(agent, `${worldUrl}/v1/chat/completions`, { 'x-cashu': tokens.pop()! }, payload), through: through(worldUrl) };
    const bareWorld = await bareProxy(worldUrl);
    let ws;
    try {
      ws = await serial({ ...worldWays, bare: () => post(agent, `${bareWorld.url}/v1/chat/completions`, { 'x-cashu': tokens.pop()! }, payload) }, WORLD_N, 10);
    } finally {
      await bareWorld.close();
    }
    const wc = await concurrent(worldWays, WORLD_C10, 3);

    // The replay: satroute's own work. (The direct way sends no X-Cashu to the replay, which then sends no change: it needs none.)
    const replayWays: Ways = { direct: () => post(agent, `${replayUrl}/v1/chat/completions`, { 'x-satroute-bench': tokens[0] }, payload), through: through(replayUrl) };
    const s = await serial(replayWays, N, Math.round(N / 5));
    bare = await bareProxy(replayUrl);
    const bareUrl = bare.url;
    const b = await serial({ direct: replayWays.direct, through: () => post(agent, `${bareUrl}/v1/chat/completions`, {}, payload) }, N, Math.round(N / 5));
    const internal: number[] = [];
    const c = await concurrent(replayWays, Math.round(N / 2), 4, (a) => internal.push(Number(a.headers['x-satroute-overhead-ms'])));
    internal.sort((a, b) => a - b);

    const vs = (through: number, direct: number) => `${f(through)} vs ${f(direct)} ms`;
    return [
      { name: 'overhead_p50_ms', value: p50(ws.through) - p50(ws.direct), unit: `ms satroute adds at p50, serial, a world provider redeeming each token at the mint (${vs(p50(ws.through), p50(ws.direct))} direct; target < 1)`, baseline: p50(ws.direct), ratio: p50(ws.through) / p50(ws.direct) },
      { name: 'overhead_p99_ms', value: p99(wc.lat.through) - p99(wc.lat.direct), unit: `ms satroute adds at p99, ${CONCURRENCY} connections, world provider (${vs(p99(wc.lat.through), p99(wc.lat.direct))}; target < 5)`, baseline: p99(wc.lat.direct), ratio: p99(wc.lat.through) / p99(wc.lat.direct) },
      { name: 'throughput_ratio', value: wc.rate('through') / wc.rate('direct'), unit: `requests/s through / direct at ${CONCURRENCY} connections, world provider (${wc.rate('through').toFixed(1)} vs ${wc.rate('direct').toFixed(1)}; target >= 0.5)`, baseline: wc.rate('direct'), ratio: wc.rate('through') / wc.rate('direct') },
      { name: 'overhead_serial_p99_ms', value: p99(ws.through) - p99(ws.direct), unit: `ms added at p99, serial, world provider (${vs(p99(ws.through), p99(ws.direct))})`, baseline: p99(ws.direct), ratio: p99(ws.through) / p99(ws.direct) },
      { name: 'overhead_c10_p50_ms', value: p50(wc.lat.through) - p50(wc.lat.direct), unit: `ms added at p50 with ${CONCURRENCY} connections, world provider (${vs(p50(wc.lat.through), p50(wc.lat.direct))})`, baseline: p50(wc.lat.direct), ratio: p50(wc.lat.through) / p50(wc.lat.direct) },
      { name: 'overhead_replay_p50_ms', value: p50(s.through) - p50(s.direct), unit: `ms added at p50, serial, a replayed provider: satroute's own work (${vs(p50(s.through), p50(s.direct))})`, baseline: p50(s.direct), ratio: p50(s.through) / p50(s.direct) },
      { name: 'overhead_replay_p99_ms', value: p99(c.lat.through) - p99(c.lat.direct), unit: `ms added at p99, ${CONCURRENCY} connections, replay (${vs(p99(c.lat.through), p99(c.lat.direct))})`, baseline: p99(c.lat.direct), ratio: p99(c.lat.through) / p99(c.lat.direct) },
      { name: 'throughput_replay_ratio', value: c.rate('through') / c.rate('direct'), unit: `requests/s through / direct at ${CONCURRENCY} connections, replay (${c.rate('through').toFixed(0)} vs ${c.rate('direct').toFixed(0)}): bound by the wallet's curve arithmetic`, baseline: c.rate('direct'), ratio: c.rate('through') / c.rate('direct') },
      { name: 'overhead_replay_c10_p50_ms', value: p50(c.lat.through) - p50(c.lat.direct), unit: `ms added at p50 with ${CONCURRENCY} connections, replay (${vs(p50(c.lat.through), p50(c.lat.direct))})`, baseline: p50(c.lat.direct), ratio: p50(c.lat.through) / p50(c.lat.direct) },
      { name: 'overhead_bare_proxy_world_p50_ms', value: p50(ws.bare) - p50(ws.direct), unit: `ms a bare Node pass-through proxy adds at p50, serial, in front of the world provider, interleaved with the overhead_p50_ms pairs (${vs(p50(ws.bare), p50(ws.direct))})`, baseline: p50(ws.direct), ratio: p50(ws.bare) / p50(ws.direct) },
      { name: 'overhead_p99_direct_vs_direct_ms', value: p99(wc.directBlocks[1]) - p99(wc.directBlocks[0]), unit: `ms between the p99s of the direct way's two measured blocks at ${CONCURRENCY} connections, world provider (${vs(p99(wc.directBlocks[1]), p99(wc.directBlocks[0]))}): how far overhead_p99_ms moves with no satroute in it`, baseline: p99(wc.directBlocks[0]), ratio: p99(wc.directBlocks[1]) / p99(wc.directBlocks[0]) },
      { name: 'overhead_bare_proxy_p50_ms', value: p50(b.through) - p50(b.direct), unit: `ms a bare Node pass-through proxy adds at p50, serial, to the same replay: the floor under satroute's own figures (${vs(p50(b.through), p50(b.direct))})`, baseline: p50(b.direct), ratio: p50(b.through) / p50(b.direct) },
      { name: 'overhead_internal_p50_ms', value: p50(internal), unit: `ms the daemon reports as its own (x-satroute-overhead-ms) at ${CONCURRENCY} connections, replay, p99 ${f(p99(internal))}` },
    ];
  } finally {
    agent.destroy();
    await bare?.close();
    await daemon?.stop();
    await replay?.stop();
    await world.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
