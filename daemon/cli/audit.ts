// `satroute audit ...`: the money invariant now; the request audit joins it with the router.
import type { Command } from 'commander';
import type { InvariantReport } from '../../wallet/invariant.ts';
import { CliError, notYet, output, table } from './common.ts';
import { run, sat } from './wallet.ts';

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('payment audit: every request and what it cost');
  notYet(audit.command('list', { isDefault: true, hidden: true }).option('--since <time>').option('--format <format>'), 'satroute audit (the request log)');

  audit
    .command('verify')
    .description('check the money invariant per mint: funded + received - withdrawn - fees - paid to providers - losses = unspent + pending, and that the mint agrees our unspent ecash is unspent (NUT-07)')
    .option('--offline', 'do not ask the mints (checks the ledger against the proofs only)')
    .option('--json', 'print one JSON document')
    .action((o: { json?: boolean; offline?: boolean }) =>
      run({ method: 'wallet.verify', params: { check_mints: !o.offline } }, (r: InvariantReport) => {
        output(o.json, r, () => {
          const rows = r.totals.map((t) => [t.mint, t.unit, sat(t.funded + t.received, t.unit), sat(t.withdrawn + t.withdrawalFees, t.unit), sat(t.paidToProviders, t.unit), sat(t.mintFees, t.unit), sat(t.losses, t.unit), sat(t.expected, t.unit), sat(t.unspent + t.pending, t.unit)]);
          const head = rows.length ? table(['MINT', 'UNIT', 'IN', 'OUT', 'PAID', 'MINT FEES', 'LOST', 'EXPECTED', 'HELD'], rows) + '\n' : 'The wallet has no ledger entries yet.\n';
          return head + (r.ok ? 'OK: every sat is accounted for.' : r.differences.map((d) => `DIFFERENCE: ${d}`).join('\n'));
        });
        if (!r.ok) throw new CliError(`the money invariant does not hold: ${r.differences.join('; ')}`);
      }),
    );
}
