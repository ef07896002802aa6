// Each start and clean stop of the daemon on a data directory, so that a start can tell whether
// the last run ended cleanly. Both rows are committed with synchronous=FULL: a power cut cannot
// make an unclean stop look clean. After an unclean one (a kill, a crash, a power cut) the daemon
// reconciles the proofs it counts as unspent with their mints (db/checkpointer.ts says why).
import { durableTransaction, migrate, type DB } from './sqlite.ts';

const MIGRATIONS = [
  `CREATE TABLE daemon_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    stopped_at  INTEGER
  );`,
];

export type LastStop = 'clean' | 'unclean' | 'first';

/** Record this run's start; says how the last one ended. Call before the database goes to synchronous=NORMAL. */
export function beginRun(db: DB, clock: () => number = Date.now): { id: number; lastStop: LastStop } {
  migrate(db, 'runs', MIGRATIONS);
  return durableTransaction(db, () => {
    const last = db.prepare('SELECT stopped_at FROM daemon_runs ORDER BY id DESC LIMIT 1').get() as { stopped_at: number | null } | undefined;
    const id = Number(db.prepare('INSERT INTO daemon_runs (pid, started_at) VALUES (?, ?)').run(process.pid, clock()).lastInsertRowid);
    return { id, lastStop: last === undefined ? 'first' : last.stopped_at === null ? 'unclean' : 'clean' };
  });
}

/** Record a clean stop: everything this run owed is settled or handed to the next start's recovery. */
export function endRun(db: DB, id: number, clock: () => number = Date.now): void {
  durableTransaction(db, () => db.prepare('UPDATE daemon_runs SET stopped_at = ? WHERE id = ?').run(clock(), id));
}
