// What every CLI command shares: one-line failures, --json output, a clear "not yet" for
// commands a later version brings. Loaded by every command, so it imports nothing heavy:
// command files import only types up front and load the rest inside their actions (a
// dynamic import), which keeps `satroute --help` and calls through the daemon fast.
import type { Command } from 'commander';
import type { Config } from '../config.ts';

/** A failure the user should see as one line on stderr, with this exit code. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

/** Print a value as one JSON document (with --json) or through the human formatter. */
export function output(json: boolean | undefined, value: unknown, human: () => string): void {
  if (json) process.stdout.write(JSON.stringify(value) + '\n');
  else process.stdout.write(human().replace(/\n?$/, '\n'));
}

/** A command that exists in the interface but not yet in this version. */
export function notYet(cmd: Command, what: string): Command {
  return cmd.option('--json', 'print one JSON document').action(() => {
    throw new CliError(`${what} is not implemented yet in this version of satroute`, 2);
  });
}

/** The configuration from the data directory and the environment (loads config.ts and zod on first use). */
export async function currentConfig(): Promise<Config> {
  const { loadConfig } = await import('../config.ts');
  return loadConfig(process.env);
}

/** Format rows as an aligned text table. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}
