// `satroute status`: the daemon, the wallet and the market at a glance - balance per mint,
// today's spend, providers up and breakers not closed, pending settlements, version, uptime.
// Asks the running daemon; with none running, reads the data directory (WAL lets us read beside
// a writer) and shows the same figures, less the uptime.
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../config.ts';
import type { BooksStatus } from '../status.ts';
import type { BalanceRow } from '../../wallet/store.ts';
import type { SessionExposure } from '../../wallet/payments/sessions.ts';
import { CliError, currentConfig, output } from './common.ts';
import { sat } from './wallet.ts';

interface Status {
  running: boolean;
  /** The daemon's version when it runs, else this command's. */
  version: string;
  pid?: number;
  listen?: string;
  started_at?: string;
  uptime_s?: number;
  data_dir: string;
  balance_sat: number;
  pending_sat: number;
  mints: BalanceRow[];
  /** Held at providers in session balances (their promise, not our ecash), per provider. */
  held_sat: number;
  sessions: SessionExposure[];
  providers: number;
  usable_providers: number;
  models: number;
  /** Today's (UTC) spend and requests, pending settlements, breakers not closed. */
  books: BooksStatus;
}

/** 90 -> "1m 30s", 93784 -> "1d 2h 3m". */
export function uptime(seconds: number): string {
  const parts: [number, string][] = [[Math.floor(seconds / 86_400), 'd'], [Math.floor(seconds / 3600) % 24, 'h'], [Math.floor(seconds / 60) % 60, 'm'], [seconds % 60, 's']];
  const from = parts.findIndex(([n]) => n > 0);
  if (from === -1) return '0s';
  return parts.slice(from, from + 3).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(' ');
}

/** Providers that answer and serve at least one model. */
const usable = (providers: readonly { status: string; models: number }[]) => providers.filter((p) => p.status === 'reachable' && p.models > 0).length;

async function readStatus(config: Config): Promise<Status> {
  const { callDaemon, DaemonNotRunningError } = await import('../control/server.ts');
  try {
    const s = await callDaemon<{ pid: number; listen: string; startedAt: string; version: string; uptime_s: number; books: BooksStatus; wallet: { totalSat: number; pendingSat: number; mints: BalanceRow[]; heldSat?: number; sessions?: SessionExposure[] } }>(config.dataDir, 'daemon.status');
    const providers = await callDaemon<{ status: string; models: number }[]>(config.dataDir, 'market.providers');
    const models = await callDaemon<unknown[]>(config.dataDir, 'market.models');
    return {
      running: true, version: s.version, pid: s.pid, listen: s.listen, started_at: s.startedAt, uptime_s: s.uptime_s, data_dir: config.dataDir, books: s.books,
      balance_sat: s.wallet.totalSat, pending_sat: s.wallet.pendingSat, mints: s.wallet.mints, held_sat: s.wallet.heldSat ?? 0, sessions: s.wallet.sessions ?? [],
      providers: providers.length, usable_providers: usable(providers), models: models.length,
    };
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw new CliError((err as Error).message);
  }
  const [{ booksStatus }, { VERSION }] = await Promise.all([import('../status.ts'), import('../version.ts')]);
  const now = Date.now();
  const noBooks: BooksStatus = { day: new Date(now).toISOString().slice(0, 10), spent_today_msat: 0, requests_today: 0, pending_settlements: 0, breakers_not_closed: [] };
  const empty: Status = { running: false, version: VERSION, data_dir: config.dataDir, books: noBooks, balance_sat: 0, pending_sat: 0, mints: [], held_sat: 0, sessions: [], providers: 0, usable_providers: 0, models: 0 };
  const { databaseFile, openDatabase } = await import('../../db/sqlite.ts');
  if (!fs.existsSync(databaseFile(config.dataDir))) return empty;
  const [{ Market }, { satTotals }, { readBalances, readExposure }] = await Promise.all([
    import('../market.ts'), import('../../wallet/index.ts'), import('../../wallet/open.ts'),
  ]);
  const mints = readBalances(config.dataDir);
  const sessions = readExposure(config.dataDir);
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    const market = new Market({ db, config, autoSchedule: false });
    const providers = market.providers();
    const { totalSat, pendingSat } = satTotals(mints);
    return {
      ...empty, books: booksStatus(db, now), mints, balance_sat: totalSat, pending_sat: pendingSat, held_sat: sessions.reduce((a, e) => a + e.heldSat, 0), sessions,
      providers: providers.length, usable_providers: usable(providers), models: market.models().length,
    };
  } finally {
    db.close();
  }
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('the daemon, the wallet and the market at a glance')
    .option('--json', 'print one JSON document')
    .action(async (o: { json?: boolean }) => {
      const s = await readStatus(await currentConfig());
      const { msatToSatCeil } = await import('../../protocol/units.ts');
      output(o.json, s, () => {
        const b = s.books;
        const breakers = b.breakers_not_closed.map((x) => `${x.provider_id}${x.model_id ? `/${x.model_id}` : ''} ${x.state.replace('_', '-')}`);
        return [
          s.running ? `daemon:    satroute ${s.version} running (pid ${s.pid}), listening on ${s.listen}, up ${uptime(s.uptime_s ?? 0)}` : `daemon:    not running (start it with \`satroute start\`); satroute ${s.version}`,
          `data dir:  ${s.data_dir}`,
          `wallet:    ${sat(s.balance_sat)} spendable${s.pending_sat ? `, ${sat(s.pending_sat)} pending` : ''} at ${s.mints.length} mint${s.mints.length === 1 ? '' : 's'}`,
          ...s.mints.map((m) => `             ${m.mint}: ${sat(m.unspent, m.unit)}${m.pending ? ` (+${sat(m.pending, m.unit)} pending)` : ''}`),
          ...(s.held_sat ? [`sessions:  ${sat(s.held_sat)} held at ${s.sessions.map((e) => `${e.providerUrl} (${sat(e.heldSat)})`).join(', ')}`] : []),
          `today:     ${sat(msatToSatCeil(b.spent_today_msat))} spent on ${b.requests_today} request${b.requests_today === 1 ? '' : 's'} (UTC ${b.day})`,
          `pending:   ${b.pending_settlements} settlement${b.pending_settlements === 1 ? '' : 's'} not final`,
          `market:    ${s.providers} providers (${s.usable_providers} usable), ${s.models} models`,
          `breakers:  ${breakers.length ? breakers.join(', ') : 'all closed'}`,
        ].join('\n');
      });
    });
}
