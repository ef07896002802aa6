// The `satroute` command. Each group of subcommands lives in daemon/cli/<group>.ts and
// registers itself here; errors become one line on stderr and a non-zero exit code.
import { Command, CommanderError } from 'commander';
import { CliError } from './cli/common.ts';
import { registerWallet } from './cli/wallet.ts';
import { registerMarket } from './cli/market.ts';
import { registerStart } from './cli/start.ts';
import { registerAudit } from './cli/audit.ts';
import { registerKeys } from './cli/keys.ts';
import { registerStatus } from './cli/status.ts';
import { registerDemo } from './cli/demo.ts';
import { VERSION } from './version.ts';

export function buildProgram(): Command {
  const program = new Command('satroute')
    .description('Route AI requests to the cheapest healthy Routstr provider, paid per request with Cashu ecash.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Environment:
  SATROUTE_DATA_DIR   data directory (default $STATE_DIRECTORY, else ~/.local/share/satroute)
  SATROUTE_LISTEN     HTTP/WebSocket address (default 127.0.0.1:8340)
  SATROUTE_RELAYS     Nostr relays, comma-separated
  SATROUTE_MINTS      trusted Cashu mints, comma-separated`,
    );
  program.exitOverride();

  registerStart(program);
  registerStatus(program);
  registerMarket(program);

  registerWallet(program);

  registerKeys(program);

  registerAudit(program);

  registerDemo(program);
  return program;
}

/** Run the CLI with these arguments (without node and the script path). */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`satroute: ${message}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
