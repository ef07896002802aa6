// `satroute start`: run the daemon in the foreground until SIGTERM/SIGINT. For now it runs
// discovery and the market; daemon/daemon.ts will compose the rest around the same steps.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config.ts';
import { startControlServer, type ControlServer } from '../control.ts';
import { Market, marketControlHandlers } from '../market.ts';
import { createLogger, type Logger, type LogLevel } from '../../protocol/logger.ts';
import { openDatabase } from '../../wallet/sqlite.ts';
import { CliError } from './common.ts';
import { databaseFile } from './market.ts';

/** `<dataDir>/daemon.json`: how to find the running daemon. */
export const daemonFile = (dataDir: string) => path.join(dataDir, 'daemon.json');

export interface RunningDaemon {
  market: Market;
  startedAt: string;
  stop(): Promise<void>;
}

/** Open the database, start the market and the control socket, and write daemon.json. */
export async function startMarketDaemon(config: Config, logger: Logger): Promise<RunningDaemon> {
  const db = openDatabase(databaseFile(config.dataDir));
  let control: ControlServer | undefined;
  let market: Market | undefined;
  try {
    market = new Market({ db, config, logger });
    control = await startControlServer(config.dataDir, marketControlHandlers(market));
    await market.start();
  } catch (err) {
    await market?.stop();
    await control?.close();
    db.close();
    throw err;
  }
  const info = { pid: process.pid, listen: config.listen, startedAt: new Date().toISOString() };
  fs.writeFileSync(daemonFile(config.dataDir), JSON.stringify(info) + '\n', { mode: 0o600 });
  logger.info('satroute started', { dataDir: config.dataDir, listen: config.listen, relays: config.relays.length, staticProviders: config.providers.length, providersKnown: market.providers().length });
  const m = market;
  const c = control;
  return {
    market: m,
    startedAt: info.startedAt,
    async stop() {
      await m.stop();
      await c.close();
      db.close();
      fs.rmSync(daemonFile(config.dataDir), { force: true });
      logger.info('satroute stopped');
    },
  };
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the daemon in the foreground: discover providers over Nostr and keep the market (stop with SIGTERM or Ctrl-C)')
    .option('--json', 'print one JSON line {"pid","listen","started_at","data_dir"} on stdout once running')
    .action(async (o: { json?: boolean }) => {
      const config = loadConfig(process.env);
      const level = (process.env.SATROUTE_LOG_LEVEL ?? 'info') as LogLevel;
      const logger = createLogger({ level, name: 'satroute' });
      let daemon: RunningDaemon;
      try {
        daemon = await startMarketDaemon(config, logger);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      if (o.json) process.stdout.write(JSON.stringify({ pid: process.pid, listen: config.listen, started_at: daemon.startedAt, data_dir: config.dataDir }) + '\n');
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      logger.info('stopping', { signal });
      await daemon.stop();
      // sockets of the HTTP client pool may linger for a while; nothing is left to finish
      process.exit(0);
    });
}
