// `cli` bench case: how long a user waits for `satroute` to answer, whole process, as a shell
// runs it (median of RUNS, interleaved with the baseline so machine load hits both alike).
//   cli_help_ms            `satroute --help`
//   cli_balance_ms         `satroute wallet balance` with no daemon: opens the wallet in-process
//   cli_balance_daemon_ms  `satroute wallet balance` through a running daemon's control socket
//   cli_help_source_ms     `satroute --help` from the TypeScript sources (tsx; no build)
// Baseline: a bare `node -e 0`. The CLI runs from dist/ (built first when it is not current,
// as `npm ci` leaves it); every balance run is checked against the ecash actually received.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Figure } from './_figure.ts';
import { build } from '../bin/build.js';
import { staleReason } from '../bin/compiled.js';
import { LightningNetwork } from '../test/world/lightning.ts';
import { startMint } from '../test/world/mint.ts';
import { outsideToken } from '../test/wallet/world.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'satroute.js');
const RUNS = 9;

interface Run {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

function timed(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ ms: performance.now() - started, code, stdout, stderr }));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(): Promise<Figure[]> {
  const stale = staleReason(root, path.join(root, 'dist'));
  if (stale) {
    process.stderr.write(`bench cli: building dist/ first (${stale})\n`);
    await build();
  }

  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-bench-cli-'));
  const env = { ...process.env, SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url, SATROUTE_RELAYS: '', SATROUTE_LISTEN: '127.0.0.1:0' };
  let daemon: ReturnType<typeof spawn> | undefined;
  try {
    const received = await timed([bin, 'wallet', 'receive', await outsideToken(ln, mint.url, 1000), '--json'], env);
    if (received.code !== 0) throw new Error(`wallet receive failed: ${received.stderr}`);
    const expectedSat = (JSON.parse(received.stdout) as { amount_sat: number }).amount_sat;
    const balance = async () => {
      const r = await timed([bin, 'wallet', 'balance', '--json'], env);
      const total = r.code === 0 ? (JSON.parse(r.stdout) as { total_sat: number }).total_sat : null;
      if (total !== expectedSat) throw new Error(`wallet balance said ${total ?? r.stderr.trim()}, expected ${expectedSat} sat`);
      return r.ms;
    };
    const help = async (extra: NodeJS.ProcessEnv = {}) => {
      const r = await timed([bin, '--help'], { ...process.env, ...extra });
      if (r.code !== 0 || !r.stdout.includes('Usage: satroute')) throw new Error(`satroute --help failed: ${r.stderr}`);
      return r.ms;
    };

    // A baseline per phase: the running daemon is load on this machine too.
    const samples = { node: [] as number[], nodeBesideDaemon: [] as number[], help: [] as number[], balance: [] as number[], daemon: [] as number[], source: [] as number[] };
    await timed(['-e', '0']); // warm the file cache
    for (let i = 0; i < RUNS; i++) {
      samples.node.push((await timed(['-e', '0'])).ms);
      samples.help.push(await help());
      samples.balance.push(await balance());
    }
    for (let i = 0; i < 5; i++) {
      samples.node.push((await timed(['-e', '0'])).ms);
      samples.source.push(await help({ SATROUTE_FROM_SOURCE: '1' }));
    }

    daemon = spawn(process.execPath, [bin, 'start', '--json'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let daemonLog = '';
    daemon.stderr!.on('data', (d) => (daemonLog += d));
    const first = await new Promise<string>((resolve, reject) => {
      readline.createInterface({ input: daemon!.stdout! }).once('line', resolve);
      daemon!.once('exit', (code) => reject(new Error(`satroute start exited with ${code}: ${daemonLog}`)));
    });
    if (!JSON.parse(first).pid) throw new Error(`unexpected start line: ${first}`);
    for (let i = 0; i < RUNS; i++) {
      samples.nodeBesideDaemon.push((await timed(['-e', '0'])).ms);
      samples.daemon.push(await balance());
    }

    const fig = (name: string, xs: number[], base: number[]): Figure => ({ name, value: median(xs), unit: 'ms', baseline: median(base), ratio: median(xs) / median(base) });
    return [
      fig('cli_help_ms', samples.help, samples.node),
      fig('cli_balance_ms', samples.balance, samples.node),
      fig('cli_balance_daemon_ms', samples.daemon, samples.nodeBesideDaemon),
      fig('cli_help_source_ms', samples.source, samples.node),
    ];
  } finally {
    if (daemon && daemon.exitCode === null) {
      const exited = new Promise((resolve) => daemon!.once('exit', resolve));
      daemon.kill('SIGTERM');
      await exited;
    }
    await mint.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
