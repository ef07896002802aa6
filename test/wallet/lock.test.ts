import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WalletLock, lockFilePath } from '../../wallet/lock.ts';
import { WalletLockedError } from '../../wallet/errors.ts';
import { tempDir } from './world.ts';

const CHILD = fileURLToPath(new URL('./lock-child.ts', import.meta.url));

/** Start a process that tries to take the lock; resolves with its first line ("LOCKED <pid>" or "REFUSED ..."). */
function lockInChild(t: TestContext, dir: string): { child: ChildProcess; answer: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const answer = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`lock child exited ${code} without answering`)));
  });
  return { child, answer };
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test('a second writer is refused while the first holds the wallet lock', (t) => {
  const dir = tempDir(t);
  const lock = WalletLock.acquire(dir);
  assert.equal(fs.statSync(lockFilePath(dir)).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(lockFilePath(dir), 'utf8').trim(), String(process.pid), 'the lock file names its owner');
  // Another part of this same process (e.g. a second daemon started in-process) is refused too.
  assert.throws(() => WalletLock.acquire(dir), WalletLockedError);
  lock.release();
  assert.equal(fs.existsSync(lockFilePath(dir)), false);
  WalletLock.acquire(dir).release(); // free again once released
});

test('a lock held by another live process is refused, naming that process', async (t) => {
  const dir = tempDir(t);
  const { child, answer } = lockInChild(t, dir);
  const owner = Number((await answer).split(' ')[1]);
  assert.throws(() => WalletLock.acquire(dir), (err: Error) => err instanceof WalletLockedError && err.message.includes(String(owner)));
  await kill(child);
});

test('a lock left by a killed process is free at once', async (t) => {
  const dir = tempDir(t);
  const { child, answer } = lockInChild(t, dir);
  assert.match(await answer, /^LOCKED/);
  await kill(child); // its lock file still names it
  const lock = WalletLock.acquire(dir);
  assert.equal(fs.readFileSync(lockFilePath(dir), 'utf8').trim(), String(process.pid));
  lock.release();
});

test('a live owner keeps the wallet even if its lock file is removed (as a racing takeover of a stale lock did)', async (t) => {
  const dir = tempDir(t);
  const { child, answer } = lockInChild(t, dir);
  assert.match(await answer, /^LOCKED/);
  // A second process that read the stale owner before this one took over removes the file it
  // believes stale, then tries for the lock itself.
  fs.rmSync(lockFilePath(dir), { force: true });
  assert.throws(() => WalletLock.acquire(dir), WalletLockedError);
  await kill(child);
});

test('several processes taking over a dead process\'s lock at once: exactly one gets it', async (t) => {
  const dir = tempDir(t);
  const first = lockInChild(t, dir);
  assert.match(await first.answer, /^LOCKED/);
  await kill(first.child);
  const racers = Array.from({ length: 4 }, () => lockInChild(t, dir));
  const answers = await Promise.all(racers.map((r) => r.answer));
  assert.equal(answers.filter((a) => a.startsWith('LOCKED')).length, 1, answers.join('\n'));
  for (const r of racers) if (r.child.exitCode === null) await kill(r.child);
});
