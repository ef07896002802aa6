// `npm run bench -- --soak` (minutes, not in CI, not in a plain `npm run bench`): steady paid
// traffic through a running daemon (`satroute start`, its own process, so its RSS is its own) to
// a world provider that redeems every token at the mint and returns change, which the daemon
// swaps in in the background. Figures:
//   soak_paid_rps                 paid requests per second sustained (CONNECTIONS in flight)
//   soak_rss_growth_mb            daemon RSS at the end less RSS after warm-up (target: ~0, no growth)
//   soak_sqlite_mb_per_10k        growth of the data directory's SQLite files per 10,000 requests
//   soak_added_p99_ms             p99 of the daemon's own time per request (x-satroute-overhead-ms:
//                                 its time less the provider's) at that load
// SATROUTE_SOAK_SECONDS (default 180) and SATROUTE_SOAK_CONNECTIONS (default 8) tune it.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Figure } from './_figure.ts';
import { startWorldChild } from './_world-child.ts';
import { control, startDaemonProcess } from '../test/chaos/daemon-process.ts';

const SECONDS = Number(process.env.SATROUTE_SOAK_SECONDS ?? 180);
const CONNECTIONS = Number(process.env.SATROUTE_SOAK_CONNECTIONS ?? 8);
const WARMUP_SHARE = 0.2;
const SAMPLE_MS = 5_000;
const MODEL = { id: 'soak', promptSatsPerToken: 0.01, completionSatsPerToken: 0.04, contextLength: 2000, maxCompletionTokens: 256 };
const BODY = Buffer.from(JSON.stringify({ model: MODEL.id, messages: [{ role: 'user', content: 'Name three prime numbers.' }], max_tokens: 64 }));

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const dbBytes = (dir: string) => fs.readdirSync(dir).filter((f) => /\.(db|sqlite)(-wal|-shm)?$/.test(f)).reduce((t, f) => t + fs.statSync(path.join(dir, f)).size, 0);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

function post(agent: http.Agent, url: string, key: string): Promise<{ status: number; overheadMs: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(BODY.length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, overheadMs: Number(res.headers['x-satroute-overhead-ms']) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(BODY);
  });
}

export async function run(): Promise<Figure[]> {
  const world = await startWorldChild({ mints: [{ name: 'soakmint' }], nwcBalanceSat: 0, providers: [{ name: 'soak', announce: false, models: [MODEL] }] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-soak-'));
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS * 2 });
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: world.info.mints[0], SATROUTE_RELAYS: '', SATROUTE_PROVIDERS: world.info.providers[0].url, SATROUTE_LISTEN: '127.0.0.1:0', SATROUTE_FROM_SOURCE: '1', SATROUTE_LOG_LEVEL: 'warn' };
  const daemon = await startDaemonProcess(env, 1);
  try {
    const q = await control<{ quote_id: string; bolt11: string }>(dir, 'wallet.fund.create', { amount_sat: 2_000_000 });
    await world.pay(q.bolt11);
    await control(dir, 'wallet.fund.status', { quote_id: q.quote_id });
    const { key } = await control<{ key: string }>(dir, 'keys.create', { name: 'soak' });
    const url = `${daemon.base}/v1/chat/completions`;

    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    const warm = t0 + SECONDS * 1000 * WARMUP_SHARE;
    const rss: { s: number; mb: number }[] = [];
    const sampler = setInterval(() => rss.push({ s: Math.round((performance.now() - t0) / 1000), mb: rssMb(daemon.pid) }), SAMPLE_MS);
    let ok = 0;
    let failed = 0;
    let okAfterWarm = 0;
    let dbAtWarm = -1;
    let rssAtWarm = -1;
    const added: number[] = [];
    await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < end) {
        const r = await post(agent, url, key).catch(() => ({ status: 0, overheadMs: NaN }));
        const now = performance.now();
        if (r.status !== 200) {
          failed++;
          continue;
        }
        ok++;
        if (now >= warm) {
          if (dbAtWarm < 0) {
            dbAtWarm = dbBytes(dir);
            rssAtWarm = rssMb(daemon.pid);
          }
          okAfterWarm++;
          if (Number.isFinite(r.overheadMs)) added.push(r.overheadMs);
        }
      }
    }));
    clearInterval(sampler);
    const seconds = (performance.now() - warm) / 1000;
    const rssEnd = rssMb(daemon.pid);
    const dbEnd = dbBytes(dir);
    added.sort((a, b) => a - b);
    const curve = rss.map((x) => `${x.s}s:${x.mb.toFixed(0)}`).join(' ');
    return [
      { name: 'soak_paid_rps', value: okAfterWarm / seconds, unit: `paid requests/s after warm-up, ${CONNECTIONS} connections, ${SECONDS} s (${ok} ok, ${failed} failed; each redeemed at the mint, change swapped in)` },
      { name: 'soak_rss_growth_mb', value: rssEnd - rssAtWarm, unit: `MB daemon RSS end less after warm-up (${rssAtWarm.toFixed(0)} -> ${rssEnd.toFixed(0)} MB; RSS over time ${curve})` },
      { name: 'soak_sqlite_mb_per_10k', value: ((dbEnd - dbAtWarm) / Math.max(okAfterWarm, 1)) * 10_000 / 2 ** 20, unit: `MB of SQLite (db + WAL) per 10,000 requests (${(dbEnd / 2 ** 20).toFixed(1)} MB after ${ok})` },
      { name: 'soak_added_p99_ms', value: pct(added, 0.99), unit: `ms the daemon adds per request at p99 at that load (x-satroute-overhead-ms; p50 ${pct(added, 0.5)?.toFixed(2)})` },
    ];
  } finally {
    agent.destroy();
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    await world.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
