import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { WalletLock, lockFilePath } from '../../wallet/lock.ts';
import { WalletLockedError } from '../../wallet/errors.ts';
import { tempDir } from './world.ts';

test('a second writer is refused while the first holds the wallet lock', (t) => {
  const dir = tempDir(t);
  const lock = WalletLock.acquire(dir);
  assert.equal(fs.statSync(lockFilePath(dir)).mode & 0o777, 0o600);
  // Pretend another live process (our parent shell) holds it.
  fs.writeFileSync(lockFilePath(dir), `${process.ppid}\n`);
  assert.throws(() => WalletLock.acquire(dir), (err: Error) => err instanceof WalletLockedError && err.message.includes(String(process.ppid)));
  fs.writeFileSync(lockFilePath(dir), `${process.pid}\n`);
  lock.release();
  assert.equal(fs.existsSync(lockFilePath(dir)), false);
});

test('a lock left by a killed process is taken over', (t) => {
  const dir = tempDir(t);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  fs.writeFileSync(lockFilePath(dir), `${dead}\n`, { mode: 0o600 });
  const lock = WalletLock.acquire(dir);
  assert.equal(fs.readFileSync(lockFilePath(dir), 'utf8').trim(), String(process.pid));
  lock.release();
});
