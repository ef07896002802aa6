// What the demo shows while it runs: short progress lines on one stream (stdout, or stderr with
// --json/--serve, so that stdout carries only the JSON line), and `satroute ...` commands run as
// a user runs them - a separate process through bin/satroute.js - with their output indented.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export class DemoStepError extends Error {
  name = 'DemoStepError';
}

export class Screen {
  constructor(private readonly out: NodeJS.WritableStream, private readonly startedAt = Date.now()) {}

  /** A heading, with the time since the start. */
  section(title: string): void {
    this.out.write(`\n== ${title}  [${this.elapsed()}]\n`);
  }

  elapsed(): string {
    return `${((Date.now() - this.startedAt) / 1000).toFixed(1)} s`;
  }

  line(text = ''): void {
    this.out.write(text.replace(/\n?$/, '\n'));
  }

  /** Lines of another program's output, indented under the command that printed them. */
  block(text: string, indent = '    '): void {
    const body = text.replace(/\n+$/, '');
    if (body) this.out.write(body.split('\n').map((l) => (l ? indent + l : l)).join('\n') + '\n');
  }
}

/** The package root (where bin/satroute.js lives), found from this file. */
export function packageRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'bin', 'satroute.js')) && fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new DemoStepError(`bin/satroute.js not found above ${from}`);
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `satroute ...args` in its own process against the demo's data directory. Asynchronous on
 * purpose: the daemon it talks to (over the control socket) runs in this process.
 */
export function runSatroute(dataDir: string, args: string[], timeoutMs = 60_000): Promise<CliRun> {
  const root = packageRoot();
  // Only the data directory: the user's own SATROUTE_* settings must not point the demo elsewhere.
  const env: NodeJS.ProcessEnv = { ...process.env, SATROUTE_DATA_DIR: dataDir };
  for (const k of ['SATROUTE_LISTEN', 'SATROUTE_RELAYS', 'SATROUTE_MINTS', 'SATROUTE_PROVIDERS']) delete env[k];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'satroute.js'), ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 1, stdout, stderr: stderr + err.message });
    });
  });
}

/** An NWC URI as it may be shown: the secret is never printed. */
export function hideNwcSecret(uri: string): string {
  return uri.replace(/([?&]secret=)[^&]+/, '$1<hidden>');
}

/** A client key as it may be shown: its prefix only. */
export function hideKey(key: string): string {
  return `${key.slice(0, 7)}...`;
}
