// One writer at a time. The lock itself is a kernel file lock: SQLite's exclusive locking mode on
// <dataDir>/wallet.lock.db, which the operating system drops when its process ends, however it
// ends (crash, kill -9). So there is never a stale lock to take over, and two processes can
// never both take over a dead one's lock (a pid file alone needs a read-check-remove step that
// two processes can interleave). <dataDir>/wallet.lock holds the owner's pid, for messages only.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { WalletLockedError } from './errors.ts';

/** The owner's pid (informational). */
export function lockFilePath(dataDir: string): string {
  return path.join(dataDir, 'wallet.lock');
}

/** The file whose kernel lock is the wallet lock. Never removed: a lock on a removed file would lock nothing. */
export function lockDatabasePath(dataDir: string): string {
  return path.join(dataDir, 'wallet.lock.db');
}

function readPid(file: string): number | null {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Lock files this process holds: a second acquire in the same process is refused too. */
const held = new Set<string>();

export class WalletLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(readonly file: string, private readonly db: Database.Database) {
    held.add(file);
    process.once('exit', this.onExit);
  }

  /** Take the lock or throw WalletLockedError naming the owner. */
  static acquire(dataDir: string): WalletLock {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = lockFilePath(dataDir);
    if (held.has(file)) throw new WalletLockedError(process.pid, file);
    const dbFile = lockDatabasePath(dataDir);
    fs.closeSync(fs.openSync(dbFile, 'a', 0o600));
    const db = new Database(dbFile, { timeout: 0 });
    try {
      // EXCLUSIVE locking mode keeps the lock taken by the first write transaction until close.
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      db.exec('COMMIT');
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new WalletLockedError(readPid(file) ?? -1, file);
      throw err;
    }
    // Written only by the holder, so a plain replace is safe.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
    return new WalletLock(file, db);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    held.delete(this.file);
    // Still holding the lock, so no one else can have written the file meanwhile.
    if (readPid(this.file) === process.pid) fs.rmSync(this.file, { force: true });
    this.db.close();
  }
}
