// `ws` bench case (issue 11): 1,000 concurrent WebSocket streams on this 2-core machine.
// The daemon side (bench/_ws-process.ts) runs in its own process with the STAND-IN LIFECYCLE of
// the tests - each stream is 40 synthetic chunks, one every 50 ms (a model streaming ~20
// tokens/s) - so what is measured is the WebSocket API: connections, framing, per-request
// sinks, backpressure bookkeeping. This process plays the clients (100 connections x 10
// streams, after a warm-up of two short streams per connection) and checks every stream ends
// with its `done` and the right cost. The stand-in's chunks come every 25-75 ms (seeded), as
// from many upstream sockets, not from timers that all fire in the same millisecond.
//   ws_streams_completed   streams that ended with `done`, every chunk and the right cost (of 1,000)
//   ws_rss_growth_mb       the daemon's peak RSS from before the clients connect to the end (target < 200)
//   ws_loop_delay_max_ms   the daemon's worst event-loop delay during the run (target < 50); its
//                          baseline is an idle node process's over the same window: what the
//                          machine's other load alone does
// WS_BENCH_CONNECTIONS=1000 runs 1,000 connections x 1 stream instead; WS_BENCH_PROFILE=FILE
// writes a CPU profile of the daemon over the measured window.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import type { Figure } from './_figure.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const CONNECTIONS = Number(process.env.WS_BENCH_CONNECTIONS ?? 100);
const STREAMS_PER_CONNECTION = 1000 / CONNECTIONS;
const CHUNKS = 40;
const INTERVAL_MS = 50;
const MSAT_PER_CHUNK = 150; // the stand-in's price (test/daemon/api/ws-fixture.ts)
const DEADLINE_MS = 120_000;
const CHUNK_PREFIX = '{"type":"chunk","id":"';

interface Daemon {
  first: { url: string; key: string };
  command(cmd: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startDaemon(opts: { idle?: boolean } = {}): Promise<Daemon> {
  const proc = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(here, '_ws-process.ts'), JSON.stringify({ intervalMs: INTERVAL_MS, ...opts })], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: proc.stdout! });
  const queue: ((line: string) => void)[] = [];
  lines.on('line', (line) => queue.shift()?.(line));
  const next = () => new Promise<Record<string, unknown>>((resolve) => queue.push((l) => resolve(JSON.parse(l) as Record<string, unknown>)));
  const first = (await next()) as { url: string; key: string };
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

/** Run `n` streams of `chunks` chunks on one connection; resolves with how many completed correctly. */
function streams(socket: WebSocket, tag: string, n: number, chunks: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const seen = new Map<string, number>();
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
      const m = JSON.parse(text) as { type: string; id: string; cost?: { charged_msat: number } };
      if (m.type !== 'done' && m.type !== 'error') return;
      if (m.type === 'done' && seen.get(m.id) === chunks && m.cost?.charged_msat === chunks * MSAT_PER_CHUNK) ok++;
      if (++ended < n) return;
      socket.off('message', onMessage);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onClose = () => reject(new Error(`connection ${tag} closed after ${ended} of ${n} streams`));
    socket.on('message', onMessage);
    socket.once('close', onClose);
    for (let i = 0; i < n; i++) {
      socket.send(JSON.stringify({
        type: 'request', id: `${tag}-${i}`, endpoint: '/v1/chat/completions',
        body: { model: 'bench', messages: [{ role: 'user', content: `${tag}-${i}` }], max_tokens: chunks, stream: true },
      }));
    }
  });
}

interface Measured { rss_growth_mb: number; loop_delay_max_ms: number; loop_delay_p99_ms: number; cpu_ms: number; wall_ms: number; stats: Record<string, number> | null }

export async function run(): Promise<Figure[]> {
  const [daemon, idle] = await Promise.all([startDaemon(), startDaemon({ idle: true })]);
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
    const completed = (await Promise.race([all, timedOut])).reduce((a, b) => a + b, 0);
    const [m, base] = (await Promise.all([daemon.command('stop'), idle.command('stop')])) as unknown as [Measured, Measured];
    process.stderr.write(
      `bench ws: stand-in lifecycle; ${CONNECTIONS} connections x ${STREAMS_PER_CONNECTION} streams x ${CHUNKS} chunks every ${INTERVAL_MS} ms; ` +
        `daemon cpu ${Math.round(m.cpu_ms)} ms in ${Math.round(m.wall_ms)} ms, loop delay p99 ${m.loop_delay_p99_ms.toFixed(1)} ms ` +
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
  }
}
