// Commits that must survive a power cut. With synchronous=NORMAL (the daemon's setting: a commit
// is not fsynced; the WAL is synced in the background) a power cut or kernel crash can roll back
// the last commits. That is fine where the wallet can tell afterwards what happened (the sweep,
// wallet/sweep.ts, settles proofs the mint says are spent), but not for the commit written just
// before a mint call that creates signatures: the blinded outputs in it are the only way back to
// them (NUT-09 restore). Lose that commit after the mint signed and the money is gone. So those
// commits are made with synchronous=FULL: the WAL, with every commit before it, is fsynced.
import fs from 'node:fs';
import type { DB } from '../db/sqlite.ts';
import type { WalletContext } from './context.ts';

/** PRAGMA synchronous levels (SQLite numbers them). */
const FULL = 2;

/**
 * Run `fn` in a transaction whose commit is on disk when this returns (synchronous=FULL for that
 * commit, the connection's level restored after). Inside an outer transaction SQLite refuses to
 * change the level: `fn` joins it and the outer commit decides (make that one durable instead).
 */
export function durableTransaction<T>(db: DB, fn: () => T): T {
  const tx = db.transaction(fn);
  if (db.inTransaction) return tx();
  const level = db.pragma('synchronous', { simple: true }) as number;
  if (level >= FULL) return tx();
  db.pragma('synchronous = FULL');
  try {
    return tx();
  } finally {
    db.pragma(`synchronous = ${level}`);
  }
}

/**
 * Commit `fn`, and return once that commit is on disk: through the context's flush when it has one
 * (the WAL fsynced by another thread while the event loop serves on), else as durableTransaction.
 * Call it just before a mint call that signs outputs, and await it before the call.
 */
export async function durableCommit<T>(ctx: Pick<WalletContext, 'db' | 'flush'>, fn: () => T): Promise<T> {
  if (!ctx.flush || ctx.db.inTransaction) return durableTransaction(ctx.db, fn);
  const out = ctx.db.transaction(fn)();
  try {
    await ctx.flush();
  } catch {
    // The thread could not: the WAL (holding this commit) fsynced on this thread instead.
    const fd = fs.openSync(`${ctx.db.name}-wal`, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  return out;
}
