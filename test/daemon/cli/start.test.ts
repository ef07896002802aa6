// One daemon per data directory: what a user sees when they start a second one.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WalletLock } from '../../../wallet/lock.ts';
import { satroute, startDaemonProcess } from './run.ts';

function dataDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-start-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a second satroute start on the same data directory is refused, naming the running daemon', async (t) => {
  const dir = dataDir(t);
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_RELAYS: '', SATROUTE_LISTEN: '127.0.0.1:0' };
  const { child: daemon, info, stderr, exited } = await startDaemonProcess(t, env);
  assert.equal(info.pid, daemon.pid);

  const second = await satroute(env, 'start');
  assert.equal(second.code, 1);
  assert.equal(second.stderr, `satroute: another satroute daemon (pid ${daemon.pid}) is already running on ${dir}\n`);
  assert.equal(second.stdout, '');

  daemon.kill('SIGTERM');
  assert.equal(await exited, 0, stderr());
  const again = await satroute({ ...env, SATROUTE_LOG_LEVEL: 'error' }, 'status', '--json');
  assert.equal(JSON.parse(again.stdout).running, false, 'the first daemon is gone; nothing it held is left behind');
});

test('a start while a wallet command holds the data directory says which process to wait for', async (t) => {
  const dir = dataDir(t);
  const lock = WalletLock.acquire(dir); // as `satroute wallet fund` does while it waits for a payment
  t.after(() => lock.release());
  const r = await satroute({ SATROUTE_DATA_DIR: dir, SATROUTE_RELAYS: '', SATROUTE_LISTEN: '127.0.0.1:0' }, 'start');
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `satroute: the wallet in ${dir} is in use by process ${process.pid} (a satroute command, or a daemon still starting); try again when it has finished\n`);
});

async function startAndStop(t: TestContext, env: Record<string, string>, stderrFd: number): Promise<number | null> {
  const { child, exited } = await startDaemonProcess(t, env, { stderrFd });
  child.kill('SIGTERM');
  return exited;
}

test('under systemd (stderr is the journal) log lines carry their syslog priority; elsewhere they are plain JSON', async (t) => {
  const dir = dataDir(t);
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_RELAYS: '', SATROUTE_LISTEN: '127.0.0.1:0' };
  const journal = path.join(dir, 'journal.log');
  const fd = fs.openSync(journal, 'w');
  const st = fs.fstatSync(fd, { bigint: true });
  assert.equal(await startAndStop(t, { ...env, JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), 0);
  fs.closeSync(fd);
  const lines = fs.readFileSync(journal, 'utf8').trim().split('\n').filter((l) => !l.startsWith('satroute: running'));
  assert.ok(lines.length >= 2);
  for (const line of lines) {
    const m = /^<(\d)>(\{.*\})$/.exec(line);
    assert.ok(m, `not a prefixed JSON line: ${line}`);
    assert.equal(m[1], { debug: '7', info: '6', warn: '4', error: '3' }[JSON.parse(m[2]).level as string]);
  }

  // A JOURNAL_STREAM inherited by a process whose stderr went elsewhere must not add prefixes.
  const other = path.join(dir, 'other.log');
  const fd2 = fs.openSync(other, 'w');
  assert.equal(await startAndStop(t, { ...env, JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd2), 0);
  fs.closeSync(fd2);
  for (const line of fs.readFileSync(other, 'utf8').trim().split('\n').filter((l) => !l.startsWith('satroute: running'))) assert.equal(JSON.parse(line).name, 'satroute');
});
