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
  // Another part of this same process (e.g. a second daemon started in-process) is refused too.
  assert.throws(() => WalletLock.acquire(dir), WalletLockedError);
  lock.release();
  assert.equal(fs.existsSync(lockFilePath(dir)), false);
  WalletLock.acquire(dir).release(); // free again once released
});

test('a lock held by another live process is refused, naming that process', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(lockFilePath(dir), `${process.ppid}\n`); // our parent is alive
  assert.throws(() => WalletLock.acquire(dir), (err: Error) => err instanceof WalletLockedError && err.message.includes(String(process.ppid)));
  assert.equal(fs.readFileSync(lockFilePath(dir), 'utf8').trim(), String(process.ppid), 'the live owner keeps its lock');
});

test('a lock left by a killed process is taken over', (t) => {
  const dir = tempDir(t);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  fs.writeFileSync(lockFilePath(dir), `${dead}\n`, { mode: 0o600 });
  const lock = WalletLock.acquire(dir);
  assert.equal(fs.readFileSync(lockFilePath(dir), 'utf8').trim(), String(process.pid));
  lock.release();
});
