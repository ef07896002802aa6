// `satroute start`: run the daemon in the foreground until SIGTERM/SIGINT (systemd runs it so).
// One daemon per data directory: a second start is refused, naming the first one's pid.
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Daemon } from '../daemon.ts';
import type { LogLevel } from '../../protocol/logger.ts';
import { CliError, currentConfig } from './common.ts';

const LEVELS = ['debug', 'info', 'warn', 'error'];

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the daemon in the foreground: discover providers over Nostr, keep the market and the wallet (stop with SIGTERM or Ctrl-C)')
    .option('--json', 'print one JSON line {"pid","listen","started_at","data_dir"} on stdout once running')
    .action(async (o: { json?: boolean }) => {
      const config = await currentConfig();
      const { startDaemon, daemonFile } = await import('../daemon.ts');
      const { createLogger } = await import('../../protocol/logger.ts');
      const level = process.env.SATROUTE_LOG_LEVEL ?? 'info';
      if (!LEVELS.includes(level)) throw new CliError(`SATROUTE_LOG_LEVEL must be one of ${LEVELS.join(', ')}, got "${level}"`);
      const logger = createLogger({ level: level as LogLevel, name: 'satroute', syslogPrefix: stderrIsJournal() });
      // Listen for the stop signal before starting: a SIGTERM during start-up (recovery, say)
      // then stops the daemon cleanly once it is up, instead of killing it half-way.
      let stopSignal: (signal: NodeJS.Signals) => void = () => {};
      const stopped = new Promise<NodeJS.Signals>((resolve) => (stopSignal = resolve));
      const onTerm = () => stopSignal('SIGTERM');
      const onInt = () => stopSignal('SIGINT');
      process.once('SIGTERM', onTerm);
      process.once('SIGINT', onInt);
      let daemon: Daemon;
      try {
        daemon = await startDaemon(config, { logger });
      } catch (err) {
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        throw new CliError(await startFailure(err, config.dataDir, daemonFile(config.dataDir)));
      }
      if (o.json) process.stdout.write(JSON.stringify({ pid: process.pid, listen: daemon.info.listen, started_at: daemon.info.startedAt, data_dir: config.dataDir }) + '\n');
      const signal = await stopped;
      logger.info('stopping', { signal });
      await daemon.stop();
      // sockets of the HTTP client pool may linger for a while; nothing is left to finish
      process.exit(0);
    });
}

/** Why the daemon did not start, in one line. The wallet lock is what keeps a second daemon out. */
async function startFailure(err: unknown, dataDir: string, daemonJson: string): Promise<string> {
  const { WalletLockedError } = await import('../../wallet/errors.ts');
  if (!(err instanceof WalletLockedError)) return (err as Error).message;
  let daemonPid: unknown;
  try {
    daemonPid = (JSON.parse(fs.readFileSync(daemonJson, 'utf8')) as { pid?: unknown }).pid;
  } catch {
    daemonPid = undefined; // no daemon.json: the lock belongs to a command, or a daemon still starting
  }
  return daemonPid === err.pid
    ? `another satroute daemon (pid ${err.pid}) is already running on ${dataDir}`
    : `the wallet in ${dataDir} is in use by process ${err.pid} (a satroute command, or a daemon still starting); try again when it has finished`;
}

/**
 * Is stderr the journal? systemd sets JOURNAL_STREAM=<device>:<inode> of that stream
 * (systemd.exec(5)); a child whose stderr was redirected elsewhere inherits the variable, so
 * the numbers must match.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 2): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}
