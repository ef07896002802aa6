// One writer at a time: an exclusive lock file <dataDir>/wallet.lock holding the owner's pid.
// A lock whose process is gone (crash, kill -9) is stale and taken over.
import fs from 'node:fs';
import path from 'node:path';
import { WalletLockedError } from './errors.ts';

export function lockFilePath(dataDir: string): string {
  return path.join(dataDir, 'wallet.lock');
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | null {
  try {
    return Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
  } catch {
    return null;
  }
}

/** Lock files this process holds: a second acquire in the same process is refused too. */
const held = new Set<string>();

export class WalletLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(readonly file: string) {
    held.add(file);
    process.once('exit', this.onExit);
  }

  /** Take the lock or throw WalletLockedError naming the live owner. */
  static acquire(dataDir: string): WalletLock {
    const pid = process.pid;
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = lockFilePath(dataDir);
    if (held.has(file)) throw new WalletLockedError(pid, file);
    for (let attempt = 0; attempt < 3; attempt++) {
      // Write a private temp file, then hard-link it into place: link() fails if the lock exists.
      const tmp = `${file}.${pid}.${attempt}.tmp`;
      fs.writeFileSync(tmp, `${pid}\n`, { mode: 0o600 });
      try {
        fs.linkSync(tmp, file);
        return new WalletLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      } finally {
        fs.rmSync(tmp, { force: true });
      }
      const owner = readPid(file);
      if (owner === pid) return new WalletLock(file);
      if (owner !== null && alive(owner)) throw new WalletLockedError(owner, file);
      // Stale: the owner died. Remove it only if it still names that dead owner.
      if (readPid(file) === owner) fs.rmSync(file, { force: true });
    }
    throw new WalletLockedError(readPid(file) ?? -1, file);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.off('exit', this.onExit);
    held.delete(this.file);
    if (readPid(this.file) === process.pid) fs.rmSync(this.file, { force: true });
  }
}
