// The daemon side of the `ws` bench, in its own process so its memory and event-loop delay are
// the daemon's alone: an HTTP server with the WebSocket API attached, a client key, and the
// STAND-IN LIFECYCLE of the tests (test/daemon/api/ws-fixture.ts: synthetic chunks, one every
// `intervalMs`, as a model streams tokens) until the lead switches the bench to the real path.
// With `"idle": true` it serves nothing and only measures its own event-loop delay: the
// baseline, what this (shared, busy) machine does to an idle node process meanwhile.
// Prints {"url","key"} on stdout; then each stdin line is a command answered with one line:
//   "baseline"  RSS before the clients connect                          -> {}
//   "start"     event-loop delay and CPU measured from now (after warm-up) -> {}
//   "stop"      {"rss_growth_mb" (peak since baseline),"loop_delay_max_ms","loop_delay_p99_ms","cpu_ms","wall_ms","stats"}
// and it exits when stdin closes.
//   node --import tsx bench/_ws-process.ts '{"intervalMs":50,"chunkBytes":16}'
import fs from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { ClientKeys } from '../daemon/api/auth.ts';
import { attachWebSocket, type WebSocketApi } from '../daemon/api/ws.ts';
import { openDatabase } from '../db/sqlite.ts';
import { EventHub, StandInLifecycle } from '../test/daemon/api/ws-fixture.ts';

const opts = JSON.parse(process.argv[2] ?? '{}') as { intervalMs?: number; chunkBytes?: number; idle?: boolean };
const intervalMs = opts.intervalMs ?? 50;
const MB = 1024 * 1024;

let api: WebSocketApi | undefined;
let server: http.Server | undefined;
if (opts.idle) {
  process.stdout.write('{}\n');
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

// WS_BENCH_PROFILE=FILE: a CPU profile of the measured window (the daemon's, not the idle one).
const profileTo = opts.idle ? undefined : process.env.WS_BENCH_PROFILE;
const profiler = new Session();
const loop = monitorEventLoopDelay({ resolution: 5 });
let rssBase = 0;
let rssMax = 0;
let sampler: NodeJS.Timeout | undefined;
let cpuBase = process.cpuUsage();
let wallBase = 0;

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const cmd = JSON.parse(line) as string;
  if (cmd === 'baseline') {
    global.gc?.();
    rssBase = rssMax = process.memoryUsage.rss();
    sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage.rss())), 50);
    process.stdout.write('{}\n');
  } else if (cmd === 'start') {
    loop.reset();
    loop.enable();
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
    clearInterval(sampler);
    if (profileTo) profiler.post('Profiler.stop', (_err, r) => fs.writeFileSync(profileTo, JSON.stringify(r.profile)));
    rssMax = Math.max(rssMax, process.memoryUsage.rss());
    const cpu = process.cpuUsage(cpuBase);
    process.stdout.write(JSON.stringify({
      rss_growth_mb: (rssMax - rssBase) / MB,
      loop_delay_max_ms: loop.max / 1e6,
      loop_delay_p99_ms: loop.percentile(99) / 1e6,
      cpu_ms: (cpu.user + cpu.system) / 1000,
      wall_ms: performance.now() - wallBase,
      stats: api?.stats() ?? null,
    }) + '\n');
  }
});
lines.on('close', () => {
  if (!api || !server) process.exit(0);
  const srv = server;
  void api.close().then(() => srv.close(() => process.exit(0)));
});
