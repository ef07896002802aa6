// The daemon's database read as an auditor would: read-only, beside the running process (SQLite
// WAL), never through the daemon. The phases watch it to time a kill; the books read the rows the
// control API does not show (payments' evidence, sessions' books).
import path from 'node:path';
import Database from 'better-sqlite3';
import type { DB } from '../../db/sqlite.ts';

/** `fn` on a read-only handle of the data directory's database. */
export function withDb<T>(dir: string, fn: (db: DB) => T): T {
  const db = new Database(path.join(dir, 'satroute.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Rows of one read-only query on the data directory's database. */
export function peek<T>(dir: string, sql: string, ...params: unknown[]): T[] {
  return withDb(dir, (db) => db.prepare(sql).all(...params) as T[]);
}
