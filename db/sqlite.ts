// Opening the one SQLite file of a data directory and applying each owner's migrations: shared
// plumbing for every folder that keeps tables (the wallet, the market, the request books).
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';

export type DB = Database.Database;

/** The one SQLite file of a data directory (every folder's tables live in it). */
export const databaseFile = (dataDir: string) => path.join(dataDir, 'satroute.sqlite');

export interface OpenOptions {
  /** 'FULL' fsyncs every commit (survives a power cut); 'NORMAL' survives a process kill. */
  synchronous?: 'FULL' | 'NORMAL';
}

/** Open (creating if needed) a database file in WAL mode with 0600 permissions. */
export function openDatabase(file: string, options: OpenOptions = {}): DB {
  if (file !== ':memory:') {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
  }
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (owner TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL, PRIMARY KEY (owner, version))');
  return db;
}

/**
 * Apply the migrations of one owner (e.g. 'wallet', 'market') that have not run yet.
 * migrations[i] is version i + 1; each runs in its own transaction. Never edit a shipped one:
 * append a new one.
 */
export function migrate(db: DB, owner: string, migrations: readonly string[]): void {
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations WHERE owner = ?').get(owner) as { v: number | null };
  const current = row.v ?? 0;
  for (let i = current; i < migrations.length; i++) {
    db.transaction(() => {
      db.exec(migrations[i]);
      db.prepare('INSERT INTO schema_migrations (owner, version, applied_at) VALUES (?, ?, ?)').run(owner, i + 1, Date.now());
    })();
  }
}

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
 * fsync the database's WAL file on this thread: every commit made so far (synchronous=NORMAL
 * leaves them in the page cache) is then on disk. (The checkpointer's thread, plain JavaScript,
 * does the same off the event loop in db/checkpointer-worker.mjs.)
 */
export function syncWal(db: DB): void {
  const fd = fs.openSync(`${db.name}-wal`, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
