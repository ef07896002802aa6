// The one way to open the wallet of a data directory: the writer lock, the SQLite file, and the
// wallet with its swap service and payment path, all from the same options. The daemon, the CLI
// (when no daemon runs) and the tests open it here; `status` reads balances without the lock.
import fs from 'node:fs';
import { databaseFile, openDatabase, type DB, type OpenOptions } from '../db/sqlite.ts';
import { createWalletContext } from './context.ts';
import { CashuWallet, type CashuWalletOptions } from './index.ts';
import { WalletLock } from './lock.ts';
import type { BalanceRow } from './store.ts';
import { SessionBook, type SessionExposure } from './payments/sessions.ts';

export interface OpenWalletOptions extends Omit<CashuWalletOptions, 'db'> {
  synchronous?: OpenOptions['synchronous'];
  /**
   * The off-thread flush for the database once it is open (the daemon's WAL thread), in the
   * wallet's context from the start, so every durable commit - its recovery's first - goes through
   * it. Undefined (or absent): durable commits use synchronous=FULL. Overrides `flush`.
   */
  flushFor?: (db: DB) => (() => Promise<void>) | undefined;
}

export interface OpenedWallet {
  wallet: CashuWallet;
  /** The data directory's database (the market and the request books keep their tables in it too). */
  db: DB;
  /** Stop the wallet (waiting for running recovery and swaps), close the database, release the lock. */
  close(): Promise<void>;
}

/** Open the wallet of a data directory in this process, holding the writer lock until close(). */
export function openWallet(opts: OpenWalletOptions): OpenedWallet {
  const lock = WalletLock.acquire(opts.dataDir);
  let db: DB | undefined;
  try {
    db = openDatabase(databaseFile(opts.dataDir), { synchronous: opts.synchronous });
    const { flushFor, ...rest } = opts;
    const flush = flushFor ? flushFor(db) : opts.flush;
    const wallet = new CashuWallet({ ...rest, db, flush });
    const opened = db;
    let closing: Promise<void> | null = null;
    return {
      wallet,
      db: opened,
      close: () => (closing ??= (async () => {
        try {
          await wallet.stop();
        } finally {
          opened.close();
          lock.release();
        }
      })()),
    };
  } catch (err) {
    db?.close();
    lock.release();
    throw err;
  }
}

/**
 * Balances per mint and unit read from a data directory without the lock (WAL lets us read beside
 * a writer), for `status` with no daemon; empty when there is no database yet.
 */
export function readBalances(dataDir: string): BalanceRow[] {
  const file = databaseFile(dataDir);
  if (!fs.existsSync(file)) return [];
  const db = openDatabase(file);
  try {
    return createWalletContext(db, { mints: [] }).store.balances();
  } finally {
    db.close();
  }
}

/** Money held at providers in open sessions, read like readBalances (no lock), for `status` with no daemon. */
export function readExposure(dataDir: string): SessionExposure[] {
  const file = databaseFile(dataDir);
  if (!fs.existsSync(file)) return [];
  const db = openDatabase(file);
  try {
    return new SessionBook(createWalletContext(db, { mints: [] })).exposure();
  } finally {
    db.close();
  }
}
