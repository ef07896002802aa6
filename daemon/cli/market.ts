// `satroute providers` and `satroute models`: the market as the running daemon sees it, or,
// with no daemon, as it was last stored in the data directory.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config.ts';
import { callDaemon, DaemonNotRunningError } from '../control/server.ts';
import { Market, type ModelView, type ProviderView } from '../market.ts';
import { databaseFile, openDatabase } from '../../db/sqlite.ts';
import { CliError, output, table } from './common.ts';

/** Ask the daemon; with none running, read the stored market (WAL lets us read beside a writer). */
async function read<T>(config: Config, method: 'market.providers' | 'market.models'): Promise<T> {
  try {
    return await callDaemon<T>(config.dataDir, method);
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw new CliError((err as Error).message);
  }
  if (!fs.existsSync(databaseFile(config.dataDir))) return [] as T;
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    const market = new Market({ db, config, autoSchedule: false });
    return (method === 'market.providers' ? market.providers() : market.models()) as T;
  } finally {
    db.close();
  }
}

/** "3m ago" style age of an ISO time. */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** sats per million tokens, short. */
export function satsPerM(n: number): string {
  if (n === 0) return '0';
  if (n >= 100) return n.toFixed(0);
  if (n >= 1) return Number(n.toFixed(2)).toString();
  return Number(n.toPrecision(2)).toString();
}

const host = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
};

function status(p: ProviderView): string {
  if (p.excluded) return `excluded (${p.review_label ?? 'bad review'})`;
  if (p.status === 'unreachable') return `unreachable (${ago(p.status_since).replace(' ago', '')})`;
  return p.status;
}

export function providersTable(list: ProviderView[]): string {
  if (list.length === 0) return 'No providers known yet. Start the daemon (`satroute start`) to discover them over Nostr, or add URLs to "providers" in satroute.json.';
  const rows = list.map((p) => [
    p.name,
    p.url ?? '-',
    status(p),
    p.models,
    p.cheapest ? `${p.cheapest.model} ${satsPerM(p.cheapest.prompt_sats_per_mtok)}/${satsPerM(p.cheapest.completion_sats_per_mtok)}` : '-',
    p.mints.map(host).join(',') || '-',
    ago(p.last_seen),
  ]);
  const reachable = list.filter((p) => p.status === 'reachable' && !p.excluded).length;
  return `${table(['NAME', 'URL', 'STATUS', 'MODELS', 'CHEAPEST (sat/Mtok in/out)', 'MINTS', 'LAST SEEN'], rows)}\n${list.length} providers, ${reachable} usable`;
}

export function modelsTable(list: ModelView[]): string {
  if (list.length === 0) return 'No models offered yet: no reachable provider is known (see `satroute providers`).';
  const usd = (m: ModelView) => (m.cheapest?.source === 'usd_pricing' ? '*' : '');
  const rows = list.map((m) => [
    m.id,
    m.providers,
    m.cheapest ? satsPerM(m.cheapest.prompt_sats_per_mtok) + usd(m) : '-',
    m.cheapest ? satsPerM(m.cheapest.completion_sats_per_mtok) : '-',
    m.cheapest ? String(m.cheapest.max_cost_msat / 1000) : '-',
    m.cheapest?.provider_name ?? '-',
    m.aliases.join(',') || '-',
  ]);
  const note = list.some((m) => usd(m)) ? '\n* no sats price listed: converted from the USD price at the configured usdPerSat' : '';
  return `${table(['MODEL', 'PROVIDERS', 'IN sat/Mtok', 'OUT sat/Mtok', 'MAX sat', 'CHEAPEST AT', 'ALIASES'], rows)}\n${list.length} models${note}`;
}

export function registerMarket(program: Command): void {
  program
    .command('providers')
    .description('list known providers: status, models, cheapest price, mints, last seen')
    .option('--json', 'print one JSON document (an array of providers)')
    .action(async (o: { json?: boolean }) => {
      const list = await read<ProviderView[]>(loadConfig(process.env), 'market.providers');
      output(o.json, list, () => providersTable(list));
    });
  program
    .command('models')
    .description('list the models on offer with their cheapest price')
    .option('--json', 'print one JSON document (an array of models)')
    .action(async (o: { json?: boolean }) => {
      const list = await read<ModelView[]>(loadConfig(process.env), 'market.models');
      output(o.json, list, () => modelsTable(list));
    });
}
