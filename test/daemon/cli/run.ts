// Running `satroute` as a user does: a separate process through bin/satroute.js.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const bin = path.join(root, 'bin/satroute.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `satroute ...args` with these environment additions; never rejects. */
export function satroute(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

export interface DaemonProcess {
  child: ChildProcess;
  /** The JSON line `satroute start --json` printed first. */
  info: { pid: number; listen: string };
  /** Everything it wrote to stderr so far (empty when it went to `stderrFd`). */
  stderr(): string;
  /** Its exit code, once it exits. */
  exited: Promise<number | null>;
}

/**
 * `satroute start --json` in its own process (`script`: bin/satroute.js of this tree, or of a
 * clone; `stderrFd`: its stderr to that file instead of captured), resolved once it printed its
 * JSON line; killed after the test if still running.
 */
export async function startDaemonProcess(t: TestContext, env: Record<string, string>, opts: { script?: string; stderrFd?: number } = {}): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [opts.script ?? bin, 'start', '--json'], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', opts.stderrFd ?? 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => void (child.exitCode === null && child.kill('SIGKILL')));
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    void exited.then((code) => reject(new Error(`start exited with ${code}: ${stderr}`)));
  });
  return { child, info: JSON.parse(line) as DaemonProcess['info'], stderr: () => stderr, exited };
}
