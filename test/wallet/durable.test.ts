import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { openDatabase } from '../../db/sqlite.ts';
import { durableTransaction } from '../../wallet/durable.ts';
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

test('a commit that must survive a power cut is made with synchronous=FULL, and the connection goes back to NORMAL', (t) => {
  const d = db(t);
  let inside: unknown;
  const out = durableTransaction(d, () => {
    inside = level(d);
    d.prepare('INSERT INTO t VALUES (1)').run();
    return 'done';
  });
  assert.equal(out, 'done');
  assert.equal(inside, FULL);
  assert.equal(level(d), NORMAL);
  assert.deepEqual(rows(d), [1]);
});

test('a durable transaction that throws is rolled back and the connection goes back to NORMAL', (t) => {
  const d = db(t);
  assert.throws(() => durableTransaction(d, () => {
    d.prepare('INSERT INTO t VALUES (1)').run();
    throw new Error('boom');
  }), /boom/);
  assert.deepEqual(rows(d), []);
  assert.equal(level(d), NORMAL);
});

test('inside an outer transaction it joins it (SQLite cannot change the level there): the outer commit decides', (t) => {
  const d = db(t);
  assert.throws(() => d.transaction(() => {
    durableTransaction(d, () => d.prepare('INSERT INTO t VALUES (1)').run());
    throw new Error('outer fails');
  })(), /outer fails/);
  assert.deepEqual(rows(d), [], 'rolled back with the outer transaction');
  assert.equal(level(d), NORMAL);
});
