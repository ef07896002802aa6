// `satroute start`: run the daemon in the foreground until SIGTERM/SIGINT (systemd runs it so).
import type { Command } from 'commander';
import { loadConfig } from '../config.ts';
import { startDaemon, type Daemon } from '../daemon.ts';
import { createLogger, type LogLevel } from '../../protocol/logger.ts';
import { CliError } from './common.ts';

const LEVELS = ['debug', 'info', 'warn', 'error'];

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the daemon in the foreground: discover providers over Nostr, keep the market and the wallet (stop with SIGTERM or Ctrl-C)')
    .option('--json', 'print one JSON line {"pid","listen","started_at","data_dir"} on stdout once running')
    .action(async (o: { json?: boolean }) => {
      const config = loadConfig(process.env);
      const level = process.env.SATROUTE_LOG_LEVEL ?? 'info';
      if (!LEVELS.includes(level)) throw new CliError(`SATROUTE_LOG_LEVEL must be one of ${LEVELS.join(', ')}, got "${level}"`);
      const logger = createLogger({ level: level as LogLevel, name: 'satroute' });
      let daemon: Daemon;
      try {
        daemon = await startDaemon(config, { logger });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      if (o.json) process.stdout.write(JSON.stringify({ pid: process.pid, listen: daemon.info.listen, started_at: daemon.info.startedAt, data_dir: config.dataDir }) + '\n');
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
