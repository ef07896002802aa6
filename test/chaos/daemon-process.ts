// The daemon as a user runs it - `satroute start` in its own process on a data directory - so the
// chaos suite can SIGKILL it at any instruction and start it again on the same directory.
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { callDaemon } from '../../daemon/control/server.ts';
import { bin, root } from '../daemon/cli/run.ts';

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  /** http://127.0.0.1:PORT */
  base: string;
  exited: Promise<number | null>;
  /** Everything it wrote on stderr (its log). */
  log(): string;
}

/** Resolves once `cond()` holds; bounded (another process's progress is waited for, never slept on). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000, pollMs = 5): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** `satroute start --json` with these environment additions; resolves once it listens and knows `providers` providers. */
export async function startDaemonProcess(env: Record<string, string>, providers: number): Promise<DaemonProcess> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [bin, 'start', '--json'], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
    if (stderr.length > 2_000_000) stderr = stderr.slice(-1_000_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    void exited.then((code) => reject(new Error(`satroute start exited with ${code}: ${stderr.slice(-4000)}`)));
  });
  const base = `http://${(JSON.parse(line) as { listen: string }).listen}`;
  if (process.env.CHAOS_DEBUG_START) process.stderr.write(`listening after ${Date.now() - t0} ms\n`);
  await until(async () => {
    const h = (await fetch(`${base}/healthz`).then((r) => r.json()).catch(() => ({}))) as { providers?: number };
    return h.providers === providers;
  }, `the daemon to know ${providers} providers`);
  return { child, pid: child.pid!, base, exited, log: () => stderr };
}

/** SIGKILL: no handler runs, nothing is flushed. Resolves once the process is gone. */
export async function kill9(d: DaemonProcess): Promise<void> {
  d.child.kill('SIGKILL');
  await d.exited;
}

/** A control-socket call to the daemon running on `dir`. */
export function control<T>(dir: string, method: string, params?: unknown): Promise<T> {
  return callDaemon<T>(dir, method, params);
}
