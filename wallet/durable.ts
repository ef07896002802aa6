// Commits that must survive a power cut. With synchronous=NORMAL (the daemon's setting: a commit
// is not fsynced; the WAL is synced in the background) a power cut or kernel crash can roll back
// the last commits. That is fine where the wallet can tell afterwards what happened (the sweep,
// wallet/sweep.ts, settles proofs the mint says are spent), but not for the commit written just
// before a mint call that creates signatures: the blinded outputs in it are the only way back to
// them (NUT-09 restore). Lose that commit after the mint signed and the money is gone. So those
// commits are on disk before the call: the WAL, with every commit before it, fsynced by the
// daemon's WAL thread (ctx.flush), else committed with synchronous=FULL (db/sqlite.ts).
import { durableTransaction, syncWal } from '../db/sqlite.ts';
import type { WalletContext } from './context.ts';

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
    syncWal(ctx.db);
  }
  return out;
}
