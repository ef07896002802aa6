// `ws` bench case (issue 11): 1,000 concurrent WebSocket streams on this 2-core machine, THROUGH
// THE REAL REQUEST PATH. The daemon (bench/_ws-process.ts, {"real":...}) is startDaemon in its own
// process - wallet, routing, the lifecycle, SQLite, the change queue's worker - funded at the
// mint of a test world that runs in a third process (bench/_world-process.ts: the mint and one
// Routstr provider, which thinks 2 s before it answers, so the streams overlap, then replays
// its buffered stream as a v0.4.5 node does). This process plays the clients (100 connections x
// 10 streams, after a warm-up of two short streams per connection) and checks every stream ends
// with its `done`; the daemon then compares every `done` cost with its request row and verifies
// its books (`audit verify` without the mint round trips).
//   ws_streams_completed   streams that ended with `done`, chunks, and a cost equal to the request row (of 1,000)
//   ws_rss_growth_mb       the daemon's peak RSS from before the clients connect to the end (target < 200)
//   ws_loop_delay_max_ms   the daemon's worst event-loop delay during the run (target < 50); its
//                          baseline is an idle node process's over the same window: what the
//                          machine's other load alone does
// WS_BENCH_STANDIN=1 runs the WebSocket API alone instead, with the tests' stand-in lifecycle
// (40 synthetic chunks every 25-75 ms per stream), under the same names.
// WS_BENCH_SYNCHRONOUS=NORMAL opens the daemon's database with synchronous=NORMAL (no fsync per
// commit) instead of the default FULL: on this shared disk the commits' fsyncs, on the event loop,
// are what the loop delay is made of.
// WS_BENCH_CONNECTIONS=1000 runs 1,000 connections x 1 stream instead (WS_BENCH_STREAMS: another total); WS_BENCH_PROFILE=FILE
// writes a CPU profile of the daemon over the measured window.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { DAEMON_NODE_FLAGS } from '../bin/node-flags.js';
import type { Figure } from './_figure.ts';
import { startWorldChild, type WorldChild } from './_world-child.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const STANDIN = process.env.WS_BENCH_STANDIN === '1';
const CONNECTIONS = Number(process.env.WS_BENCH_CONNECTIONS ?? 100);
const STREAMS_PER_CONNECTION = Number(process.env.WS_BENCH_STREAMS ?? 1000) / CONNECTIONS;
const CHUNKS = 40;
const INTERVAL_MS = 50;
const MSAT_PER_CHUNK = 150; // the stand-in's price (test/daemon/api/ws-fixture.ts)
const DEADLINE_MS = 300_000;
// The real path's model: cheap (a stream costs a few sats), and answers of ~20 chunks.
const MODEL = { id: 'bench-stream', promptSatsPerToken: 0.001, completionSatsPerToken: 0.004, contextLength: 1000, maxCompletionTokens: 200 };
const FILLER = ' and then some more words to make the answer a stream of about twenty chunks'.repeat(4);
const CHUNK_PREFIX = '{"type":"chunk","id":"';

interface Daemon {
  first: { url: string; key: string };
  command(cmd: string | { check: Record<string, number> }): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startDaemon(opts: { idle?: boolean; world?: WorldChild } = {}): Promise<Daemon> {
  const { world, ...rest } = opts;
  const synchronous = process.env.WS_BENCH_SYNCHRONOUS === 'NORMAL' ? 'NORMAL' : undefined;
  const real = world ? { mint: world.info.mints[0], providers: world.info.providers.map((p) => p.url), fundSat: 60_000, synchronous } : undefined;
  // The daemon's own flags (bin/node-flags.js: as the shebang and the systemd unit run it), then any the caller adds.
  const flags = [...DAEMON_NODE_FLAGS, ...(process.env.WS_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)];
  const proc = spawn(process.execPath, ['--expose-gc', ...flags, '--import', 'tsx', path.join(here, '_ws-process.ts'), JSON.stringify({ intervalMs: INTERVAL_MS, ...rest, real })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout! });
  const queue: ((line: string) => void)[] = [];
  lines.on('line', (line) => queue.shift()?.(line));
  const next = () => new Promise<Record<string, unknown>>((resolve) => queue.push((l) => resolve(JSON.parse(l) as Record<string, unknown>)));
  let first = (await next()) as { url: string; key: string; invoice?: string };
  if (first.invoice) {
    // the real daemon funds its wallet: the world's Lightning pays the mint's invoice
    await world!.pay(first.invoice);
    first = (await next()) as { url: string; key: string };
  }
  return {
    first,
    command(cmd) {
      const answer = next();
      proc.stdin!.write(JSON.stringify(cmd) + '\n');
      return answer;
    },
    stop: () => new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.stdin!.end();
    }),
  };
}

function open(url: string, key: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } });
  return new Promise<WebSocket>((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** What one connection's streams ended with. */
interface Outcome { ok: number; charged: Record<string, number>; errors: Record<string, number> }

/**
 * Run `n` streams on one connection. Stand-in: `chunks` chunks each at a known price. Real path:
 * an answer of at least one chunk and a `done` with a cost, handed back for the daemon to check.
 */
function streams(socket: WebSocket, tag: string, n: number, chunks: number): Promise<Outcome> {
  return new Promise<Outcome>((resolve, reject) => {
    const seen = new Map<string, number>();
    const charged: Record<string, number> = {};
    const errors: Record<string, number> = {};
    let ended = 0;
    let ok = 0;
    const onMessage = (data: WebSocket.RawData) => {
      const text = String(data);
      // The load generator must not eat the daemon's CPU share: chunks are counted by their
      // fixed prefix (the daemon writes `{"type":"chunk","id":"...",`), the rest parsed.
      if (text.startsWith(CHUNK_PREFIX)) {
        const id = text.slice(CHUNK_PREFIX.length, text.indexOf('"', CHUNK_PREFIX.length));
        seen.set(id, (seen.get(id) ?? 0) + 1);
        return;
      }
      const m = JSON.parse(text) as { type: string; id: string; request_id?: string; code?: string; message?: string; cost?: { charged_msat: number } };
      if (m.type !== 'done' && m.type !== 'error') return;
      if (m.type === 'error') {
        const why = `${m.code}: ${(m.message ?? '').replace(/\d+/g, 'N').slice(0, 120)}`;
        errors[why] = (errors[why] ?? 0) + 1;
      }
      if (m.type === 'done' && STANDIN && seen.get(m.id) === chunks && m.cost?.charged_msat === chunks * MSAT_PER_CHUNK) ok++;
      if (m.type === 'done' && !STANDIN && (seen.get(m.id) ?? 0) > 0 && m.cost && m.request_id) {
        ok++;
        charged[m.request_id] = m.cost.charged_msat;
      }
      if (++ended < n) return;
      socket.off('message', onMessage);
      socket.off('close', onClose);
      resolve({ ok, charged, errors });
    };
    const onClose = () => reject(new Error(`connection ${tag} closed after ${ended} of ${n} streams`));
    socket.on('message', onMessage);
    socket.once('close', onClose);
    for (let i = 0; i < n; i++) {
      const content = STANDIN ? `${tag}-${i}` : `stream ${tag}-${i}${FILLER}`;
      socket.send(JSON.stringify({
        type: 'request', id: `${tag}-${i}`, endpoint: '/v1/chat/completions',
        body: { model: STANDIN ? 'bench' : MODEL.id, messages: [{ role: 'user', content }], max_tokens: STANDIN ? chunks : 150, stream: true },
      }));
    }
  });
}

interface Measured { rss_growth_mb: number; loop_delay_max_ms: number; loop_delay_p99_ms: number; gc_pause_max_ms: number; gc_pauses_over_10ms: number; gc_ms: number; gc_long: string[]; cpu_ms: number; wall_ms: number; stats: Record<string, number> | null }

export async function run(): Promise<Figure[]> {
  const world = STANDIN ? undefined : await startWorldChild({
    mints: [{ name: 'benchmint' }], nwcBalanceSat: 0,
    providers: [{ name: 'bench', announce: false, knobs: { ttfbMs: 2_000 }, models: [MODEL] }],
  });
  const [daemon, idle] = await Promise.all([startDaemon({ world }), startDaemon({ idle: true })]);
  const sockets: WebSocket[] = [];
  let deadline: NodeJS.Timeout | undefined;
  try {
    const { url, key } = daemon.first;
    await Promise.all([daemon.command('baseline'), idle.command('baseline')]);
    sockets.push(...(await Promise.all(Array.from({ length: CONNECTIONS }, () => open(url, key)))));
    // Warm-up, as a daemon that has been running is: two short streams per connection.
    await Promise.all(sockets.map((s, i) => streams(s, `warm${i}`, 2, 2)));
    await Promise.all([daemon.command('start'), idle.command('start')]);
    const total = CONNECTIONS * STREAMS_PER_CONNECTION;
    const all = Promise.all(sockets.map((s, i) => streams(s, `c${i}`, STREAMS_PER_CONNECTION, CHUNKS)));
    const timedOut = new Promise<never>((_, reject) => (deadline = setTimeout(() => reject(new Error(`ws bench: streams not done within ${DEADLINE_MS} ms`)), DEADLINE_MS)));
    const outcomes = await Promise.race([all, timedOut]);
    const [m, base] = (await Promise.all([daemon.command('stop'), idle.command('stop')])) as unknown as [Measured, Measured];
    let completed = outcomes.reduce((a, o) => a + o.ok, 0);
    const errors: Record<string, number> = {};
    for (const o of outcomes) for (const [k, n] of Object.entries(o.errors)) errors[k] = (errors[k] ?? 0) + n;
    if (Object.keys(errors).length) process.stderr.write(`bench ws: streams that ended with an error: ${JSON.stringify(errors)}\n`);
    let books = '';
    if (!STANDIN) {
      const c = (await daemon.command({ check: Object.assign({}, ...outcomes.map((o) => o.charged)) as Record<string, number> })) as { requests: number; mismatches: number; differences: string[] };
      completed -= c.mismatches;
      books = `; done costs unlike their request row: ${c.mismatches} of ${c.requests}; books: ${c.differences.length ? c.differences.slice(0, 3).join('; ') : 'verified'}`;
      if (c.differences.length) completed = 0; // a stream paid with money the books cannot account for did not complete
    }
    process.stderr.write(
      `bench ws: ${STANDIN ? `stand-in lifecycle; ${CONNECTIONS} connections x ${STREAMS_PER_CONNECTION} streams x ${CHUNKS} chunks every ${INTERVAL_MS} ms` : `real request path against a world provider (2 s to answer); ${CONNECTIONS} connections x ${STREAMS_PER_CONNECTION} streams`}${books}; ` +
        `daemon cpu ${Math.round(m.cpu_ms)} ms in ${Math.round(m.wall_ms)} ms, loop delay p99 ${m.loop_delay_p99_ms.toFixed(1)} ms, ` +
        `gc ${Math.round(m.gc_ms)} ms (longest pause ${m.gc_pause_max_ms.toFixed(1)} ms, ${m.gc_pauses_over_10ms} over 10 ms: ${m.gc_long.join(', ')}) ` +
        `(idle process: max ${base.loop_delay_max_ms.toFixed(1)}, p99 ${base.loop_delay_p99_ms.toFixed(1)} ms); stats ${JSON.stringify(m.stats)}\n`,
    );
    return [
      { name: 'ws_streams_completed', value: completed, unit: 'streams', baseline: total, ratio: completed / total },
      { name: 'ws_rss_growth_mb', value: m.rss_growth_mb, unit: 'MB', baseline: null, ratio: null },
      // baseline: an idle node process's worst delay over the same window (what the machine's load alone does)
      { name: 'ws_loop_delay_max_ms', value: m.loop_delay_max_ms, unit: 'ms', baseline: base.loop_delay_max_ms, ratio: m.loop_delay_max_ms / base.loop_delay_max_ms },
    ];
  } finally {
    clearTimeout(deadline);
    for (const s of sockets) s.terminate();
    await Promise.all([daemon.stop(), idle.stop()]);
    await world?.stop();
  }
}
