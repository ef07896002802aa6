// The daemon side of the `ws` bench, in its own process so its memory and event-loop delay are
// the daemon's alone. Two kinds:
//   {"real":{"mint","providers":[url],"fundSat","synchronous"?}}  THE REAL PATH: startDaemon (wallet, routing,
//       the request lifecycle, SQLite, the change queue's worker) on a fresh data directory,
//       funded at the world's mint (it prints {"invoice"} first; the bench pays it on the world's
//       Lightning), the WebSocket API on its HTTP server, a client key
//   otherwise  an HTTP server with the WebSocket API attached, a client key, and the STAND-IN
//       LIFECYCLE of the tests (test/daemon/api/ws-fixture.ts: synthetic chunks, one every
//       `intervalMs`, as a model streams tokens): the WebSocket API alone
// With `"idle": true` it serves nothing and only measures its own event-loop delay: the
// baseline, what this (shared, busy) machine does to an idle node process meanwhile.
// Prints {"url","key"} on stdout; then each stdin line is a command answered with one line:
//   "baseline"  RSS before the clients connect                          -> {}
//   "start"     event-loop delay and CPU measured from now (after warm-up) -> {}
//   "stop"      {"rss_growth_mb" (peak since baseline),"loop_delay_max_ms","loop_delay_p99_ms","cpu_ms","wall_ms","stats"}
//   {"check":{"<request_id>":<charged_msat>,...}}  real path: the money work settled, then each
//               `done` cost compared with its request row, and the books verified
//               -> {"requests","mismatches","differences":[...]}
// and it exits when stdin closes.
//   node --import tsx bench/_ws-process.ts '{"intervalMs":50,"chunkBytes":16}'
import fs from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import readline from 'node:readline';
import { ClientKeys } from '../daemon/api/auth.ts';
import { attachWebSocket, type WebSocketApi } from '../daemon/api/ws.ts';
import { loadConfig } from '../daemon/config.ts';
import { startDaemon, type Daemon } from '../daemon/daemon.ts';
import { paymentFactsLookup } from '../daemon/requests/payment-facts.ts';
import { verifyRequests } from '../daemon/requests/verify.ts';
import { openDatabase } from '../db/sqlite.ts';
import { EventHub, StandInLifecycle } from '../test/daemon/api/ws-fixture.ts';

interface RealOptions { mint: string; providers: string[]; fundSat: number; synchronous?: 'FULL' | 'NORMAL' }
const opts = JSON.parse(process.argv[2] ?? '{}') as { intervalMs?: number; chunkBytes?: number; idle?: boolean; real?: RealOptions };
const intervalMs = opts.intervalMs ?? 50;
const MB = 1024 * 1024;

let api: WebSocketApi | undefined;
let server: http.Server | undefined;
let daemon: Daemon | undefined;
let dataDir: string | undefined;
if (opts.idle) {
  process.stdout.write('{}\n');
} else if (opts.real) {
  const real = opts.real;
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-bench-ws-'));
  // The world's one process (its mint and provider, on this shared 2-core machine) accepts 1,000
  // connections slowly: at the default 5 s connect timeout some fail, three in a row open the
  // provider's breaker and the rest are refused (no_provider) - the breaker working, not the
  // WebSocket path being measured. A real node runs on its own machine.
  fs.writeFileSync(path.join(dataDir, 'satroute.json'), JSON.stringify({ requests: { timeouts: { connectMs: 60_000 } } }));
  const d = (daemon = await startDaemon(loadConfig({
    SATROUTE_DATA_DIR: dataDir, SATROUTE_MINTS: real.mint, SATROUTE_RELAYS: '', SATROUTE_PROVIDERS: real.providers.join(','), SATROUTE_LISTEN: '127.0.0.1:0',
  }), real.synchronous ? { wallet: { synchronous: real.synchronous } } : {}));
  await Promise.all(d.market.providers().map((p) => d.market.probe(p.id)));
  const quote = await d.wallet.createFundingQuote(real.fundSat, { mint: real.mint });
  process.stdout.write(JSON.stringify({ invoice: quote.bolt11 }) + '\n');
  await d.wallet.waitForFunding(quote.quoteId, { pollMs: 20, timeoutMs: 60_000 });
  api = d.ws;
  const { key } = d.keys.create({ name: 'bench' });
  process.stdout.write(JSON.stringify({ url: `ws://${d.info.listen}/v1/ws`, key }) + '\n');
} else {
  const keys = new ClientKeys(openDatabase(':memory:'));
  const { key } = keys.create({ name: 'bench' });
  const events = new EventHub();
  // Chunks every intervalMs on average, 0.5x to 1.5x (seeded): real streams come from many
  // upstream sockets at their own pace, not from timers that all fire in the same millisecond.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pace = () => new Promise<void>((r) => setTimeout(r, intervalMs * (0.5 + random())));
  const lifecycle = new StandInLifecycle(events, { chunkBytes: opts.chunkBytes ?? 16, recordBuffered: false, pace });
  const srv = (server = http.createServer((_req, res) => res.writeHead(404).end()));
  api = lifecycle.api = attachWebSocket(srv, { keys, handler: lifecycle, events });
  srv.listen(0, '127.0.0.1', () => {
    const { port } = srv.address() as AddressInfo;
    process.stdout.write(JSON.stringify({ url: `ws://127.0.0.1:${port}/v1/ws`, key }) + '\n');
  });
}

/** Real path: every `done` cost against its request row, after the money work settled; then the books. */
async function check(charged: Record<string, number>): Promise<{ requests: number; mismatches: number; differences: string[] }> {
  const d = daemon!;
  await d.lifecycle.idle();
  await d.payments.changeQueue.drain();
  let mismatches = 0;
  for (const [id, msat] of Object.entries(charged)) if (d.ledger.get(id)?.chargedMsat !== msat) mismatches++;
  const books = verifyRequests(d.db, paymentFactsLookup(d.payments));
  const wallet = await d.wallet.verify({ checkMints: false });
  return { requests: Object.keys(charged).length, mismatches, differences: [...books.differences, ...wallet.differences] };
}

// WS_BENCH_PROFILE=FILE: a CPU profile of the measured window (the daemon's, not the idle one).
const profileTo = opts.idle ? undefined : process.env.WS_BENCH_PROFILE;
const profiler = new Session();
const loop = monitorEventLoopDelay({ resolution: 5 });
let rssBase = 0;
let rssMax = 0;
let sampler: NodeJS.Timeout | undefined;
let cpuBase = process.cpuUsage();
let wallBase = 0;
// Garbage-collection pauses in the measured window (the loop delay's usual suspect).
const gcPauses: number[] = [];
const gcLong: string[] = [];
const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcPauses.push(e.duration);
    if (e.duration > 10) gcLong.push(`${GC_KINDS[(e as unknown as { detail: { kind: number } }).detail.kind] ?? '?'} ${e.duration.toFixed(1)}`);
  }
});

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const cmd = JSON.parse(line) as string | { check: Record<string, number> };
  if (typeof cmd === 'object') {
    void check(cmd.check).then((r) => process.stdout.write(JSON.stringify(r) + '\n'), (err: Error) => process.stdout.write(JSON.stringify({ error: err.message }) + '\n'));
  } else if (cmd === 'baseline') {
    global.gc?.();
    rssBase = rssMax = process.memoryUsage.rss();
    sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage.rss())), 50);
    process.stdout.write('{}\n');
  } else if (cmd === 'start') {
    loop.reset();
    loop.enable();
    gcPauses.length = 0;
    gcObserver.observe({ entryTypes: ['gc'] });
    cpuBase = process.cpuUsage();
    wallBase = performance.now();
    if (profileTo) {
      profiler.connect();
      profiler.post('Profiler.enable');
      profiler.post('Profiler.start');
    }
    process.stdout.write('{}\n');
  } else if (cmd === 'stop') {
    loop.disable();
    gcObserver.disconnect();
    clearInterval(sampler);
    if (profileTo) profiler.post('Profiler.stop', (_err, r) => fs.writeFileSync(profileTo, JSON.stringify(r.profile)));
    rssMax = Math.max(rssMax, process.memoryUsage.rss());
    const cpu = process.cpuUsage(cpuBase);
    process.stdout.write(JSON.stringify({
      rss_growth_mb: (rssMax - rssBase) / MB,
      loop_delay_max_ms: loop.max / 1e6,
      loop_delay_p99_ms: loop.percentile(99) / 1e6,
      gc_pause_max_ms: Math.max(0, ...gcPauses),
      gc_pauses_over_10ms: gcPauses.filter((d) => d > 10).length,
      gc_long: gcLong,
      gc_ms: gcPauses.reduce((a, b) => a + b, 0),
      cpu_ms: (cpu.user + cpu.system) / 1000,
      wall_ms: performance.now() - wallBase,
      stats: api?.stats() ?? null,
    }) + '\n');
  }
});
lines.on('close', () => {
  if (daemon) {
    const dir = dataDir!;
    void daemon.stop().then(() => {
      fs.rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    });
    return;
  }
  if (!api || !server) process.exit(0);
  const srv = server;
  void api.close().then(() => srv.close(() => process.exit(0)));
});
