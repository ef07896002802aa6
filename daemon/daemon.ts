// The running process: one data directory, one writer. Composes the market (discovery and
// prices), the wallet with its payment path, the control socket for the CLI, and the HTTP
// listener; stops them in reverse order.
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';
import { startControlServer, type ControlServer } from './control/server.ts';
import { marketControlHandlers } from './control/market.ts';
import { walletControlHandlers } from './control/wallet.ts';
import { startHttp, type HttpListener } from './http.ts';
import { Market } from './market.ts';
import { isOnionUrl } from '../protocol/discovery.ts';
import { nullLogger, type Logger } from '../protocol/logger.ts';
import { socksFetch } from '../protocol/socks.ts';
import type { CashuWallet } from '../wallet/index.ts';
import { openWallet } from '../wallet/open.ts';
import type { Payments } from '../wallet/payments/index.ts';
import { ClientKeys } from './api/auth.ts';
import { booksControlHandlers } from './control/books.ts';
import { Budgets } from './requests/budgets.ts';
import { paymentFactsLookup } from './requests/payment-facts.ts';

export const VERSION = '0.1.0';

/** `<dataDir>/daemon.json`: how other processes find the running daemon. */
export const daemonFile = (dataDir: string) => path.join(dataDir, 'daemon.json');

export interface DaemonInfo {
  pid: number;
  listen: string;
  startedAt: string;
  version: string;
}

export interface DaemonOptions {
  logger?: Logger;
  clock?: () => number;
}

export interface Daemon {
  readonly info: DaemonInfo;
  readonly market: Market;
  readonly wallet: CashuWallet;
  readonly payments: Payments;
  stop(): Promise<void>;
}

/** Start everything; on any failure, stop what already started and rethrow. */
export async function startDaemon(config: Config, opts: DaemonOptions = {}): Promise<Daemon> {
  const logger = opts.logger ?? nullLogger;
  const clock = opts.clock ?? Date.now;
  const stack: (() => Promise<void> | void)[] = [];
  const unwind = async () => {
    for (const stop of stack.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.error('stop step failed', { error: err as Error });
      }
    }
  };
  try {
    // Refunds from .onion providers go through the same SOCKS proxy as their probes.
    const onionFetch = config.socksProxy ? socksFetch(config.socksProxy) : undefined;
    // The writer lock, the database and the wallet with its payment path, opened as the CLI opens them.
    const opened = openWallet({
      dataDir: config.dataDir, mints: config.mints, logger, clock, autoTopup: config.autoTopup,
      payments: { fetch: (url, init) => (onionFetch && isOnionUrl(url) ? onionFetch : fetch)(url, init) },
    });
    stack.push(() => opened.close());
    const { wallet, db } = opened;
    const payments = wallet.payments;

    const market = new Market({ db, config, logger, clock });
    stack.push(() => market.stop());

    const startedAt = new Date(clock()).toISOString();
    let info: DaemonInfo = { pid: process.pid, listen: config.listen, startedAt, version: VERSION };
    const control: ControlServer = await startControlServer(config.dataDir, {
      ...marketControlHandlers(market),
      ...walletControlHandlers(wallet),
      ...booksControlHandlers({ db, keys: new ClientKeys(db, clock), budgets: new Budgets(db, clock), paymentFacts: paymentFactsLookup(payments) }),
      'daemon.status': () => ({ ...info, data_dir: config.dataDir, wallet: wallet.balance(), providers: market.providers().length, models: market.models().length, payments: payments.stats() }),
    });
    stack.push(() => control.close());

    const httpListener: HttpListener = await startHttp(config.listen, () => ({ version: VERSION, providers: market.providers().length }));
    stack.push(() => httpListener.close());
    info = { ...info, listen: httpListener.address };

    await market.start();
    const recovery = await wallet.start();
    for (const step of recovery.steps) if (step.error) logger.warn('recovery step failed; retried on the next tick', { step: step.name, error: step.error });

    fs.writeFileSync(daemonFile(config.dataDir), JSON.stringify(info) + '\n', { mode: 0o600 });
    stack.push(() => fs.rmSync(daemonFile(config.dataDir), { force: true }));
    logger.info('satroute started', { dataDir: config.dataDir, listen: info.listen, relays: config.relays.length, mints: config.mints.length, providersKnown: market.providers().length, balanceSat: wallet.balance().totalSat });
    return {
      info,
      market,
      wallet,
      payments,
      async stop() {
        await unwind();
        logger.info('satroute stopped');
      },
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
