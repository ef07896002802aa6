import { test } from 'node:test';
import assert from 'node:assert/strict';
import { durableCommit } from '../../wallet/durable.ts';
import { normalDb, rowsOf, SYNC, syncLevel } from '../db/fixture.ts';

const { NORMAL, FULL } = SYNC;

test('with an off-thread flush, a durable commit stays NORMAL on this thread and returns only after the flush', async (t) => {
  const d = normalDb(t);
  const order: string[] = [];
  let levelInside: unknown;
  const ctx = {
    db: d,
    flush: async () => {
      order.push(`flush after ${rowsOf(d).length} row(s)`);
    },
  };
  const out = await durableCommit(ctx, () => {
    levelInside = syncLevel(d);
    d.prepare('INSERT INTO t VALUES (1)').run();
    order.push('committed');
    return 'done';
  });
  assert.equal(out, 'done');
  assert.equal(levelInside, NORMAL, 'no fsync on the event loop');
  assert.deepEqual(order, ['committed', 'flush after 1 row(s)'], 'the flush comes after the commit, before the caller goes on');
});

test('a flush that fails falls back to an fsync on this thread; without a flush it is a FULL commit', async (t) => {
  const d = normalDb(t);
  await durableCommit({ db: d, flush: () => Promise.reject(new Error('thread gone')) }, () => d.prepare('INSERT INTO t VALUES (1)').run());
  let inside: unknown;
  await durableCommit({ db: d }, () => {
    inside = syncLevel(d);
    d.prepare('INSERT INTO t VALUES (2)').run();
  });
  assert.equal(inside, FULL);
  assert.deepEqual(rowsOf(d), [1, 2]);
});
