// `satroute status`: the daemon, the wallet and the market at a glance. Asks the running
// daemon; with none running, reads the data directory (WAL lets us read beside a writer).
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../config.ts';
import type { BalanceRow } from '../../wallet/store.ts';
import type { SessionExposure } from '../../wallet/payments/sessions.ts';
import { CliError, currentConfig, output } from './common.ts';
import { sat } from './wallet.ts';

interface Status {
  running: boolean;
  pid?: number;
  listen?: string;
  started_at?: string;
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
}

/** Providers that answer and serve at least one model. */
const usable = (providers: readonly { status: string; models: number }[]) => providers.filter((p) => p.status === 'reachable' && p.models > 0).length;

async function readStatus(config: Config): Promise<Status> {
  const { callDaemon, DaemonNotRunningError } = await import('../control/server.ts');
  try {
    const s = await callDaemon<{ pid: number; listen: string; startedAt: string; wallet: { totalSat: number; pendingSat: number; mints: BalanceRow[]; heldSat?: number; sessions?: SessionExposure[] } }>(config.dataDir, 'daemon.status');
    const providers = await callDaemon<{ status: string; models: number }[]>(config.dataDir, 'market.providers');
    const models = await callDaemon<unknown[]>(config.dataDir, 'market.models');
    return {
      running: true, pid: s.pid, listen: s.listen, started_at: s.startedAt, data_dir: config.dataDir,
      balance_sat: s.wallet.totalSat, pending_sat: s.wallet.pendingSat, mints: s.wallet.mints, held_sat: s.wallet.heldSat ?? 0, sessions: s.wallet.sessions ?? [],
      providers: providers.length, usable_providers: usable(providers), models: models.length,
    };
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw new CliError((err as Error).message);
  }
  const empty: Status = { running: false, data_dir: config.dataDir, balance_sat: 0, pending_sat: 0, mints: [], held_sat: 0, sessions: [], providers: 0, usable_providers: 0, models: 0 };
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
      ...empty, mints, balance_sat: totalSat, pending_sat: pendingSat, held_sat: sessions.reduce((a, e) => a + e.heldSat, 0), sessions,
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
      output(o.json, s, () =>
        [
          s.running ? `daemon:    running (pid ${s.pid}), listening on ${s.listen}, since ${s.started_at}` : 'daemon:    not running (start it with `satroute start`)',
          `data dir:  ${s.data_dir}`,
          `wallet:    ${sat(s.balance_sat)} spendable${s.pending_sat ? `, ${sat(s.pending_sat)} pending` : ''} at ${s.mints.length} mint${s.mints.length === 1 ? '' : 's'}`,
          ...(s.held_sat ? [`sessions:  ${sat(s.held_sat)} held at ${s.sessions.map((e) => `${e.providerUrl} (${sat(e.heldSat)})`).join(', ')}`] : []),
          `market:    ${s.providers} providers (${s.usable_providers} usable), ${s.models} models`,
        ].join('\n'),
      );
    });
}
