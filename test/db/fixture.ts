// A database opened as the daemon opens it (synchronous=NORMAL), for tests of commits that must
// survive a power cut (db/sqlite.ts durableTransaction, wallet/durable.ts durableCommit).
import path from 'node:path';
import type { TestContext } from 'node:test';
import { openDatabase, type DB } from '../../db/sqlite.ts';
import { tempDir } from '../wallet/world.ts';

/** PRAGMA synchronous values as SQLite reports them. */
export const SYNC = { NORMAL: 1, FULL: 2 } as const;

/** A fresh NORMAL-durability database with one table `t (x INTEGER)`, closed when the test ends. */
export function normalDb(t: TestContext): DB {
  const d = openDatabase(path.join(tempDir(t), 'durable.db'), { synchronous: 'NORMAL' });
  t.after(() => d.close());
  d.exec('CREATE TABLE t (x INTEGER)');
  return d;
}

/** The connection's synchronous level now (SYNC.NORMAL or SYNC.FULL). */
export const syncLevel = (d: DB): unknown => d.pragma('synchronous', { simple: true });

/** The values in `t`, in order. */
export const rowsOf = (d: DB): unknown[] => d.prepare('SELECT x FROM t ORDER BY x').pluck().all();
