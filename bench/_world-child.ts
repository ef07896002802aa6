// Starting bench/_world-process.ts and talking to it, for the benchmarks of the request path.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Scenario, WorldInfo } from '../test/world/index.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface WorldChild {
  info: WorldInfo;
  pay(bolt11: string): Promise<void>;
  knobs(provider: string, set: Record<string, unknown>): Promise<void>;
  stats(provider: string): Promise<{ requests: number; succeeded: number; earnedMsat: number }>;
  stop(): Promise<void>;
}

/** A bench helper process (bench/_*.ts) that prints one JSON line once ready and stops when its stdin closes. */
export async function startHelper<T>(script: string, arg: unknown): Promise<{ first: T; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, script), JSON.stringify(arg)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve) => readline.createInterface({ input: child.stdout! }).once('line', resolve));
  return {
    first: JSON.parse(first) as T,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.stdin!.end();
      }),
  };
}

export async function startWorldChild(scenario: Scenario): Promise<WorldChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, '_world-process.ts'), JSON.stringify(scenario)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout! });
  const queue: ((line: string) => void)[] = [];
  lines.on('line', (line) => queue.shift()?.(line));
  const next = () => new Promise<string>((resolve) => queue.push(resolve));
  // One command at a time: answers come back in order.
  let chain: Promise<unknown> = Promise.resolve();
  const send = <T>(cmd: unknown): Promise<T> => {
    const run = chain.then(async () => {
      const answer = next();
      child.stdin!.write(JSON.stringify(cmd) + '\n');
      const a = JSON.parse(await answer) as T & { error?: string };
      if (a.error) throw new Error(a.error);
      return a;
    });
    chain = run.catch(() => undefined);
    return run;
  };
  const info = JSON.parse(await next()) as WorldInfo;
  return {
    info,
    pay: async (bolt11) => void (await send({ pay: bolt11 })),
    knobs: async (provider, set) => void (await send({ knobs: { provider, set } })),
    stats: (provider) => send({ stats: provider }),
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.stdin!.end();
      }),
  };
}
