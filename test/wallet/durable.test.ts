import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { openDatabase } from '../../db/sqlite.ts';
import { durableCommit } from '../../wallet/durable.ts';
import { tempDir } from './world.ts';

const NORMAL = 1;
const FULL = 2;

function db(t: Parameters<typeof tempDir>[0]) {
  const d = openDatabase(path.join(tempDir(t), 'durable.db'), { synchronous: 'NORMAL' });
  t.after(() => d.close());
  d.exec('CREATE TABLE t (x INTEGER)');
  return d;
}

const level = (d: ReturnType<typeof db>) => d.pragma('synchronous', { simple: true });
const rows = (d: ReturnType<typeof db>) => d.prepare('SELECT x FROM t ORDER BY x').pluck().all();

test('with an off-thread flush, a durable commit stays NORMAL on this thread and returns only after the flush', async (t) => {
  const d = db(t);
  const order: string[] = [];
  let levelInside: unknown;
  const ctx = {
    db: d,
    flush: async () => {
      order.push(`flush after ${rows(d).length} row(s)`);
    },
  };
  const out = await durableCommit(ctx, () => {
    levelInside = level(d);
    d.prepare('INSERT INTO t VALUES (1)').run();
    order.push('committed');
    return 'done';
  });
  assert.equal(out, 'done');
  assert.equal(levelInside, NORMAL, 'no fsync on the event loop');
  assert.deepEqual(order, ['committed', 'flush after 1 row(s)'], 'the flush comes after the commit, before the caller goes on');
});

test('a flush that fails falls back to an fsync on this thread; without a flush it is a FULL commit', async (t) => {
  const d = db(t);
  await durableCommit({ db: d, flush: () => Promise.reject(new Error('thread gone')) }, () => d.prepare('INSERT INTO t VALUES (1)').run());
  let inside: unknown;
  await durableCommit({ db: d }, () => {
    inside = level(d);
    d.prepare('INSERT INTO t VALUES (2)').run();
  });
  assert.equal(inside, FULL);
  assert.deepEqual(rows(d), [1, 2]);
});
