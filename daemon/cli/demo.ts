// `satroute demo [--serve]` (= `npm run demo`): the whole thing in a local market - see
// demo-run.ts. Registered here with types only; the demo, test/world included, loads in the action.
import type { Command } from 'commander';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the whole thing in a local market: providers, mints, Lightning/NWC, the daemon, requests, failover, the audit; ends with one JSON line')
    .option('--serve', 'keep the market and the daemon running; print {"http","ws","key","data_dir","relay","mints"} first (stop with Ctrl-C or SIGTERM)')
    .option('--keep', 'keep the temporary data directory')
    .option('--json', 'progress on stderr: stdout is only the final JSON line')
    .addHelpText('after', `
Progress goes to stdout (stderr with --json or --serve); the last line on stdout is always
  {"requests","succeeded","funded_sats","spent_sats","balance_sats","unaccounted_sats"}
Exit code 0 only if every request was answered, failover and the breaker worked, \`audit verify\`
passed and unaccounted_sats is 0.`)
    .action(async (o: { serve?: boolean; keep?: boolean; json?: boolean }) => {
      const { runDemo } = await import('./demo-run.ts');
      const code = await runDemo({ serve: !!o.serve, keep: !!o.keep, json: !!o.json });
      if (code === 1) process.stderr.write(`satroute: ${o.serve ? 'the demo could not be served' : 'the demo did not hold (see the lines above)'}\n`);
      // Sockets of HTTP client pools may linger for a while; everything of ours is closed.
      process.exit(code);
    });
}
