// `satroute keys create|list|revoke`: the client keys local programs use (Authorization:
// Bearer sr_...). A key is printed once, at creation; the data directory keeps only its hash.
import type { Command } from 'commander';
import { CliError, currentConfig, output, table } from './common.ts';
import { callBooks } from './books-session.ts';

interface KeyJson {
  name: string;
  prefix: string;
  admin: boolean;
  daily_sats: number | null;
  max_sats_per_request: number | null;
  created_at: string;
  revoked_at: string | null;
  spent_today_msat?: number;
}

function parseSats(text: string, flag: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) <= 0) throw new CliError(`${flag} must be a positive whole number of sats, got "${text}"`);
  return Number(text);
}

// Thousands separators by hand: toLocaleString loads ICU data (~20 ms of a command's start).
const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+$)/g, ',');

/** msat as sats for display, exact: 1500 -> "1.5", 2000 -> "2". */
export function msatAsSat(msat: number): string {
  const whole = thousands(Math.trunc(msat / 1000));
  const rest = Math.abs(msat % 1000);
  return rest === 0 ? whole : `${whole}.${String(rest).padStart(3, '0').replace(/0+$/, '')}`;
}

const limits = (k: KeyJson) => [
  k.daily_sats === null ? 'no daily budget' : `daily budget ${thousands(k.daily_sats)} sat`,
  k.max_sats_per_request === null ? null : `at most ${thousands(k.max_sats_per_request)} sat per request`,
  k.admin ? 'admin scope' : null,
].filter(Boolean).join(', ');

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('client API keys (Authorization: Bearer sr_...) with their budgets');

  keys.command('create').description('create a client key; it is printed once and stored only as a hash')
    .requiredOption('--name <name>', 'a name for the client (shown in the audit)')
    .option('--daily-sats <n>', 'daily budget in sats (UTC days)')
    .option('--max-sats-per-request <n>', 'the most one request may cost, in sats')
    .option('--admin', 'allow the admin routes (/admin/...)')
    .option('--json', 'print one JSON document')
    .action(async (o: { name: string; dailySats?: string; maxSatsPerRequest?: string; admin?: boolean; json?: boolean }) => {
      const params = {
        name: o.name,
        admin: o.admin ?? false,
        daily_sats: o.dailySats === undefined ? null : parseSats(o.dailySats, '--daily-sats'),
        max_sats_per_request: o.maxSatsPerRequest === undefined ? null : parseSats(o.maxSatsPerRequest, '--max-sats-per-request'),
      };
      const k = await callBooks<KeyJson & { key: string }>(await currentConfig(), 'keys.create', params);
      output(o.json, k, () =>
        `Created key "${k.name}" (${limits(k)}):\n\n  ${k.key}\n\n` +
        'This is the only time it is shown: store it now. Clients send it as `Authorization: Bearer <key>`.');
    });

  keys.command('list').description('every key with what it spent today and its budget')
    .option('--json', 'print one JSON document')
    .action(async (o: { json?: boolean }) => {
      const r = await callBooks<{ keys: KeyJson[] }>(await currentConfig(), 'keys.list');
      output(o.json, r, () => {
        if (r.keys.length === 0) return 'No client keys yet: create one with `satroute keys create --name <name>`.';
        return table(['NAME', 'KEY', 'SCOPE', 'SPENT TODAY', 'DAILY BUDGET', 'PER REQUEST', 'CREATED', 'STATUS'], r.keys.map((k) => [
          k.name, `${k.prefix}...`, k.admin ? 'admin' : 'client', `${msatAsSat(k.spent_today_msat ?? 0)} sat`,
          k.daily_sats === null ? '-' : `${thousands(k.daily_sats)} sat`,
          k.max_sats_per_request === null ? '-' : `${thousands(k.max_sats_per_request)} sat`,
          k.created_at.slice(0, 10), k.revoked_at ? `revoked ${k.revoked_at.slice(0, 10)}` : 'active',
        ]));
      });
    });

  keys.command('revoke').argument('<name>', 'the key to revoke').description('revoke a key: refused from the next request on')
    .option('--json', 'print one JSON document')
    .action(async (name: string, o: { json?: boolean }) => {
      const k = await callBooks<KeyJson>(await currentConfig(), 'keys.revoke', { name });
      output(o.json, k, () => `Revoked key "${k.name}"; requests with it are refused from now on.`);
    });
}
