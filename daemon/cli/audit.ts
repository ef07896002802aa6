// `satroute audit ...`: every request and what it cost - charged, expected at the price it was
// routed by, reported by the provider - as a table, CSV or JSON with totals per provider and
// client; and `audit verify`: the wallet's money invariant plus the request ledger's own sums.
import type { Command } from 'commander';
// Only types up front; each action loads what it needs (`--help` stays fast).
import type { Config } from '../config.ts';
import type { AuditFilter, AuditReport, Totals } from '../requests/audit.ts';
import type { RequestsVerifyReport } from '../requests/verify.ts';
import type { InvariantReport } from '../../wallet/invariant.ts';
import { CliError, currentConfig, output, table } from './common.ts';
import { callBooks } from './books-session.ts';
import { msatAsSat } from './keys.ts';
import { sat } from './wallet.ts';

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `--since`/`--until`: an ISO date or time (UTC unless it says otherwise), or an age such as 30m, 24h, 7d, 2w. */
export function parseTime(text: string, now: number, flag: string): number {
  const age = /^(\d+)([mhdw])$/.exec(text.trim());
  if (age) return now - Number(age[1]) * UNIT_MS[age[2]];
  const t = /^\d{4}-\d{2}-\d{2}$/.test(text.trim()) ? Date.parse(`${text.trim()}T00:00:00Z`) : Date.parse(text);
  if (Number.isNaN(t)) throw new CliError(`${flag} must be an ISO date or time (2026-11-30, 2026-11-30T09:00Z) or an age (30m, 24h, 7d), got "${text}"`);
  return t;
}

const time = (iso: unknown) => String(iso).replace('T', ' ').slice(0, 19);
const msat = (v: unknown) => (v === null || v === undefined ? '-' : msatAsSat(Number(v)));
const flags = (v: unknown) => (Array.isArray(v) && v.length ? v.join(',') : '');

function totalsTable(label: 'provider' | 'client', rows: (Totals & { provider?: string; client?: string })[]): string {
  if (rows.length === 0) return '';
  return `\nTotals per ${label}:\n` + table([label.toUpperCase(), label === 'provider' ? 'ATTEMPTS' : 'REQUESTS', 'OK', 'FLAGGED', 'SENT', 'CHANGE', 'CHARGED', 'EXPECTED', 'REPORTED'],
    rows.map((t) => [String(t[label]), t.requests, t.succeeded, t.flagged, t.sent_sats, t.change_sats, msat(t.charged_msat), msat(t.expected_msat), msat(t.reported_msat)]));
}

function human(r: AuditReport): string {
  const rows = r.attempts
    ? table(['TIME', 'REQUEST', '#', 'PROVIDER', 'MODEL', 'STATUS', 'HTTP', 'ERROR', 'SENT', 'CHANGE', 'FEE', 'CHARGED', 'EXPECTED', 'REPORTED', 'FLAGS'],
      r.attempts.map((a) => [time(a.time), String(a.request_id), Number(a.attempt), String(a.provider), String(a.model), String(a.status), a.http_status === null ? '-' : Number(a.http_status),
        a.error === null ? '' : String(a.error), Number(a.sent_sats), Number(a.change_sats), Number(a.fee_sats), msat(a.charged_msat), msat(a.expected_msat), msat(a.reported_msat), flags(a.flags)]))
    : table(['TIME', 'REQUEST', 'CLIENT', 'MODEL', 'PROVIDER', 'STATUS', 'TOKENS', 'SENT', 'CHANGE', 'CHARGED', 'EXPECTED', 'REPORTED', 'FLAGS', 'TRIES'],
      r.requests!.map((q) => [time(q.time), String(q.request_id), String(q.client), String(q.model), q.provider === null ? '-' : String(q.provider), String(q.status),
        q.prompt_tokens === null ? '-' : `${q.prompt_tokens}/${q.completion_tokens}`, Number(q.sent_sats), Number(q.change_sats), msat(q.charged_msat), msat(q.expected_msat), msat(q.reported_msat), flags(q.flags), Number(q.attempts)]));
  const count = (r.attempts ?? r.requests!).length;
  if (count === 0) return 'No requests match.';
  const a = r.totals.all;
  return `${rows}\n(amounts in sats; charged = what the provider kept, expected = usage x the price it was routed at)\n` +
    totalsTable('provider', r.totals.by_provider) + '\n' + totalsTable('client', r.totals.by_client) +
    `\n\nAll: ${a.requests} requests, ${a.succeeded} succeeded, ${a.flagged} flagged; sent ${sat(a.sent_sats)}, change ${sat(a.change_sats)}, ` +
    `charged ${msatAsSat(a.charged_msat)} sat (expected ${msatAsSat(a.expected_msat)} sat, reported ${msatAsSat(a.reported_msat)} sat)`;
}

/** Both checks: through the running daemon, else in-process holding the wallet lock. */
async function verifyBoth(config: Config, checkMints: boolean): Promise<{ wallet: InvariantReport; requests: RequestsVerifyReport }> {
  const { callDaemon, DaemonNotRunningError } = await import('../control/server.ts');
  try {
    const wallet = await callDaemon<InvariantReport>(config.dataDir, 'wallet.verify', { check_mints: checkMints });
    const requests = await callDaemon<RequestsVerifyReport>(config.dataDir, 'requests.verify');
    return { wallet, requests };
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw new CliError((err as Error).message);
  }
  const [{ openWallet }, { verifyRequests }, { paymentFactsLookup }] = await Promise.all([
    import('../../wallet/open.ts'), import('../requests/verify.ts'), import('../requests/payment-facts.ts'),
  ]);
  const { wallet, close } = openWallet({ dataDir: config.dataDir, mints: config.mints, autoTopup: config.autoTopup });
  try {
    await wallet.recover(); // finish anything a crash left behind before checking
    const walletReport = await wallet.verify({ checkMints });
    return { wallet: walletReport, requests: verifyRequests(wallet.ctx.db, paymentFactsLookup(wallet.payments)) };
  } catch (err) {
    throw err instanceof CliError ? err : new CliError((err as Error).message);
  } finally {
    await close();
  }
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('payment audit: every request, what it cost, what it should have cost, what the provider said');

  audit.addHelpText('after', `
With no command, \`satroute audit\` is \`satroute audit list\`:
  satroute audit [--since T] [--until T] [--client NAME] [--provider ID|URL] [--flagged] [--attempts] [--format table|csv|json]
(satroute audit list --help for the details)`);

  audit.command('list', { isDefault: true })
    .description('(the default) the requests, or every attempt, with totals per provider and client')
    .option('--since <time>', 'from this time (ISO date/time, or an age: 30m, 24h, 7d)')
    .option('--until <time>', 'before this time')
    .option('--client <name>', 'only this client key')
    .option('--provider <id|url>', 'only requests that tried this provider')
    .option('--flagged', 'only requests with a flag (overcharged, cost_mismatch, usage_missing, change_invalid, change_surplus, refunded, lost)')
    .option('--attempts', 'one line per provider tried instead of one per request')
    .option('--format <format>', 'table, csv or json', 'table')
    .option('--json', 'the same as --format json')
    .action(async (o: { since?: string; until?: string; client?: string; provider?: string; flagged?: boolean; attempts?: boolean; format: string; json?: boolean }) => {
      const format = o.json ? 'json' : o.format;
      if (!['table', 'csv', 'json'].includes(format)) throw new CliError(`--format must be table, csv or json, got "${o.format}"`);
      const now = Date.now();
      const filter: AuditFilter & { attempts?: boolean } = {
        ...(o.since !== undefined ? { since: parseTime(o.since, now, '--since') } : {}),
        ...(o.until !== undefined ? { until: parseTime(o.until, now, '--until') } : {}),
        ...(o.client !== undefined ? { client: o.client } : {}),
        ...(o.provider !== undefined ? { provider: o.provider } : {}),
        ...(o.flagged ? { flagged: true } : {}),
        ...(o.attempts ? { attempts: true } : {}),
      };
      const r = await callBooks<AuditReport>(await currentConfig(), 'audit.requests', filter);
      const { ATTEMPT_COLUMNS, REQUEST_COLUMNS, toCsv } = await import('../requests/audit.ts');
      if (format === 'csv') process.stdout.write(r.attempts ? toCsv(ATTEMPT_COLUMNS, r.attempts) : toCsv(REQUEST_COLUMNS, r.requests!));
      else output(format === 'json', r, () => human(r));
    });

  audit.command('verify')
    .description('check the money invariant per mint (funded + received - withdrawn - fees - paid to providers - losses = unspent + pending + held in sessions at providers; the mint agrees our unspent ecash is unspent and our pending ecash is not spent behind our back, NUT-07; no token counted twice) and that every request adds up (charged = sent - change - fee for each attempt, matching the wallet\'s payments)')
    .option('--offline', 'do not ask the mints (checks the ledger against the proofs only)')
    .option('--json', 'print one JSON document')
    .action(async (o: { json?: boolean; offline?: boolean }) => {
      const { wallet: w, requests: q } = await verifyBoth(await currentConfig(), !o.offline);
      const differences = [...w.differences, ...q.differences];
      const report = { ...w, ok: w.ok && q.ok, differences, wallet_ok: w.ok, requests: q };
      output(o.json, report, () => {
        const rows = w.totals.map((t) => [t.mint, t.unit, sat(t.funded + t.received, t.unit), sat(t.withdrawn + t.withdrawalFees, t.unit), sat(t.paidToProviders + (t.sessionCharged ?? 0), t.unit), sat(t.mintFees, t.unit), sat(t.losses + (t.sessionLost ?? 0), t.unit), sat(t.expected, t.unit), sat(t.unspent + t.pending + (t.heldInSessions ?? 0), t.unit)]);
        const head = rows.length ? table(['MINT', 'UNIT', 'IN', 'OUT', 'PAID', 'MINT FEES', 'LOST', 'EXPECTED', 'HELD'], rows) + '\n' : 'The wallet has no ledger entries yet.\n';
        const requests = `Requests: ${q.requests} checked, ${q.attempts} attempts${q.open ? ` (${q.open} still settling, not compared)` : ''}.\n`;
        return head + requests + (report.ok ? 'OK: every sat is accounted for.' : differences.map((d) => `DIFFERENCE: ${d}`).join('\n'));
      });
      if (!w.ok) throw new CliError(`the money invariant does not hold: ${w.differences.join('; ')}`);
      if (!q.ok) throw new CliError(`the request ledger does not add up: ${q.differences.join('; ')}`);
    });
}
