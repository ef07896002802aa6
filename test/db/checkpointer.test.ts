import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Checkpointer } from '../../db/checkpointer.ts';
import { beginRun, endRun } from '../../db/runs.ts';
import { openDatabase } from '../../db/sqlite.ts';
import { Durability } from '../../daemon/durability.ts';

const tmp = (t: { after(fn: () => void): void }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-db-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'satroute.sqlite');
};

test('with the checkpointer, commits skip the fsync and still reach the database file within the interval', async (t) => {
  const file = tmp(t);
  const db = openDatabase(file);
  db.exec('CREATE TABLE t (n INTEGER)');
  const cp = Checkpointer.start(db, { intervalMs: 20 });
  t.after(() => db.close());
  assert.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL');
  const next = cp.nextCheckpoint();
  const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
  for (let i = 0; i < 50; i++) db.transaction(() => insert.run(i))();
  await next;
  // The main file alone (no WAL beside it) already holds the rows: they were checkpointed and synced.
  const copy = `${file}.copy`;
  fs.copyFileSync(file, copy);
  const alone = openDatabase(copy);
  try {
    assert.equal((alone.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 50);
  } finally {
    alone.close();
  }
  // A flush: the WAL fsynced by the thread, the caller's event loop free meanwhile.
  db.transaction(() => insert.run(50))();
  await cp.flush();
  await cp.stop();
  await cp.stop(); // twice is harmless
  await assert.rejects(cp.flush(), /stopped/, 'a stopped checkpointer says so (the caller syncs itself)');
  assert.equal(db.pragma('synchronous', { simple: true }), 1, 'a stop as planned leaves the connection as it was, about to close');
  assert.equal(cp.errors, 0);
});

test('commits made without fsync survive the daemon being killed (SIGKILL)', async (t) => {
  const file = tmp(t);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'checkpointer-child.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  while (!out.includes('committed')) await once(child.stdout, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
  const db = openDatabase(file);
  try {
    assert.equal((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n, 100, 'every committed row is there');
  } finally {
    db.close();
  }
});

test('a start knows whether the last run stopped cleanly; a run that owes a sweep is never recorded as clean', (t) => {
  const file = tmp(t);
  const db = openDatabase(file);
  t.after(() => db.close());
  const first = beginRun(db);
  assert.equal(first.lastStop, 'first');
  assert.equal(beginRun(db).lastStop, 'unclean', 'the first never stopped');
  const third = beginRun(db);
  endRun(db, third.id);
  assert.equal(beginRun(db).lastStop, 'clean');

  const owed = new Durability(db, { durability: 'commit' });
  assert.equal(owed.lastStop, 'unclean');
  owed.stopCleanly(); // not reconciled with the mints yet: the next start must sweep again
  const next = new Durability(db, { durability: 'commit' });
  assert.equal(next.lastStop, 'unclean');
  next.markReconciled();
  next.stopCleanly();
  assert.equal(new Durability(db, { durability: 'commit' }).lastStop, 'clean');
  assert.equal(db.pragma('synchronous', { simple: true }), 2, "'commit' durability keeps every commit fsynced (FULL)");
});

test('if the thread dies, the connection goes back to fsyncing every commit: nothing is left unsynced behind it', async (t) => {
  const file = tmp(t);
  const db = openDatabase(file);
  t.after(() => db.close());
  const cp = Checkpointer.start(db, { intervalMs: 10_000 });
  assert.equal(db.pragma('synchronous', { simple: true }), 1);
  await (cp as unknown as { worker: import('node:worker_threads').Worker }).worker.terminate();
  await new Promise((r) => setImmediate(r));
  assert.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
  assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000);
  await assert.rejects(cp.flush(), /stopped/);
});
