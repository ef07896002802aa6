// What every wallet operation needs, and the one factory that builds it on an open database: the
// daemon, the CLI, `status` and the tests all get their wallet parts from createWalletContext
// (through CashuWallet or openWallet, wallet/open.ts), so they cannot be wired differently.
import type { DB } from '../db/sqlite.ts';
import { nullLogger, type Logger } from '../protocol/logger.ts';
import { Ledger } from './ledger.ts';
import { MintRegistry } from './mints.ts';
import { migrateWallet } from './schema.ts';
import { ProofStore, type Clock } from './store.ts';

export interface WalletContext {
  db: DB;
  store: ProofStore;
  ledger: Ledger;
  mints: MintRegistry;
  clock: Clock;
  logger: Logger;
  /**
   * Resolves once every commit made so far is on disk, without blocking the event loop (the
   * daemon's WAL thread, db/checkpointer.ts); absent: durable commits use synchronous=FULL.
   */
  flush?: () => Promise<void>;
}

export interface WalletContextOptions {
  /** Trusted mint URLs (config `mints` / SATROUTE_MINTS). */
  mints: readonly string[];
  clock?: Clock;
  logger?: Logger;
  /** The off-thread flush for `db` (WalletContext.flush); absent: durable commits use synchronous=FULL. */
  flush?: () => Promise<void>;
}

/** The wallet's parts on an open database, its tables created or upgraded first. */
export function createWalletContext(db: DB, opts: WalletContextOptions): WalletContext {
  migrateWallet(db);
  const clock = opts.clock ?? Date.now;
  const logger = opts.logger ?? nullLogger;
  return {
    db, clock, logger, store: new ProofStore(db, clock), ledger: new Ledger(db, clock), mints: new MintRegistry({ trusted: opts.mints, logger, clock }),
    ...(opts.flush ? { flush: opts.flush } : {}),
  };
}
