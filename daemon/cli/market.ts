// `satroute providers` and `satroute models`: the market as the running daemon sees it, or,
// with no daemon, as it was last stored in the data directory.
// Only types are imported up front; `read` loads the market code when a command runs.
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../config.ts';
import type { ModelView, ProviderView } from '../market.ts';
import type { ProviderHealth } from '../route/health.ts';
import { CliError, currentConfig, output, table } from './common.ts';

/** Ask the daemon; with none running, read the stored market (WAL lets us read beside a writer). */
async function read<T>(config: Config, method: 'market.providers' | 'market.models'): Promise<T> {
  const { callDaemon, DaemonNotRunningError } = await import('../control/server.ts');
  try {
    return await callDaemon<T>(config.dataDir, method);
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw new CliError((err as Error).message);
  }
  const { databaseFile, openDatabase } = await import('../../db/sqlite.ts');
  const { Market } = await import('../market.ts');
  if (!fs.existsSync(databaseFile(config.dataDir))) return [] as T;
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    const market = new Market({ db, config, autoSchedule: false });
    return (method === 'market.providers' ? market.providers() : market.models()) as T;
  } finally {
    db.close();
  }
}

/** Routing's view of each provider (breakers, avoidance): the daemon's, else the data directory's. */
async function readHealth(config: Config): Promise<Record<string, ProviderHealth>> {
  const { callDaemon, ControlCallError, DaemonNotRunningError } = await import('../control/server.ts');
  try {
    return await callDaemon<Record<string, ProviderHealth>>(config.dataDir, 'route.health');
  } catch (err) {
    const older = err instanceof ControlCallError && err.code === 'unknown_method'; // a daemon without the router
    if (!(err instanceof DaemonNotRunningError) && !older) throw new CliError((err as Error).message);
  }
  const { databaseFile, openDatabase } = await import('../../db/sqlite.ts');
  const { storedProviderHealth } = await import('../route/health.ts');
  if (!fs.existsSync(databaseFile(config.dataDir))) return {};
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    return storedProviderHealth(db);
  } finally {
    db.close();
  }
}

/** A provider as `providers --json` shows it: the market's view and routing's. */
export type ProviderRow = ProviderView & { routing: ProviderHealth | null };

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

/** One short phrase for a table's STATUS column; null when routing has nothing to add. */
function healthStatus(h: ProviderHealth | undefined, now = Date.now()): string | null {
  if (!h) return null;
  if (h.avoided) return `avoided (${h.avoided.reason.replace('_', ' ')})`;
  const b = h.breaker;
  const left = (iso: string | null) => (iso ? `${Math.max(0, Math.ceil((Date.parse(iso) - now) / 1000))}s` : '');
  if (b?.state === 'open') return Date.parse(b.open_until ?? '') > now ? `breaker open (${left(b.open_until)})` : 'breaker half-open';
  if (b?.state === 'half_open') return 'breaker half-open';
  if (b?.cooldown_until && Date.parse(b.cooldown_until) > now) return `rate limited (${left(b.cooldown_until)})`;
  if (h.models.length) return `${h.models.length} model${h.models.length === 1 ? '' : 's'} open`;
  return null;
}

function status(p: ProviderRow, now: number): string {
  if (p.excluded) return `excluded (${p.review_label ?? 'bad review'})`;
  if (p.status === 'unreachable') return `unreachable (${ago(p.status_since, now).replace(' ago', '')})`;
  return healthStatus(p.routing ?? undefined, now) ?? p.status;
}

export function providersTable(list: ProviderRow[], now = Date.now()): string {
  if (list.length === 0) return 'No providers known yet. Start the daemon (`satroute start`) to discover them over Nostr, or add URLs to "providers" in satroute.json.';
  const rows = list.map((p) => [
    p.name,
    p.url ?? '-',
    status(p, now),
    p.models,
    p.cheapest ? `${p.cheapest.model} ${satsPerM(p.cheapest.prompt_sats_per_mtok)}/${satsPerM(p.cheapest.completion_sats_per_mtok)}` : '-',
    p.mints.map(host).join(',') || '-',
    ago(p.last_seen, now),
  ]);
  const reachable = list.filter((p) => p.status === 'reachable' && !p.excluded).length;
  const why = list.flatMap((p) => {
    const r = p.routing;
    if (r?.avoided) return [`${p.name}: avoided, ${r.avoided.detail}`];
    if (r?.breaker && r.breaker.state !== 'closed') return [`${p.name}: breaker ${r.breaker.state.replace('_', '-')}${r.breaker.last_error ? ` after: ${r.breaker.last_error}` : ''}`];
    return [];
  });
  return `${table(['NAME', 'URL', 'STATUS', 'MODELS', 'CHEAPEST (sat/Mtok in/out)', 'MINTS', 'LAST SEEN'], rows)}\n${list.length} providers, ${reachable} usable${why.length ? `\n\n${why.join('\n')}` : ''}`;
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
    .description('list known providers: status (breakers, avoided and why), models, cheapest price, mints, last seen')
    .option('--json', 'print one JSON document (an array of providers)')
    .action(async (o: { json?: boolean }) => {
      const config = await currentConfig();
      const list = await read<ProviderView[]>(config, 'market.providers');
      const health = list.length ? await readHealth(config) : {};
      const rows: ProviderRow[] = list.map((p) => ({ ...p, routing: health[p.id] ?? null }));
      output(o.json, rows, () => providersTable(rows));
    });
  program
    .command('models')
    .description('list the models on offer with their cheapest price')
    .option('--json', 'print one JSON document (an array of models)')
    .action(async (o: { json?: boolean }) => {
      const list = await read<ModelView[]>(await currentConfig(), 'market.models');
      output(o.json, list, () => modelsTable(list));
    });
}
