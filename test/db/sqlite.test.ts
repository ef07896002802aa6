import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { durableTransaction, migrate, openDatabase } from '../../db/sqlite.ts';
import { tempDir } from '../wallet/world.ts';
import { normalDb, rowsOf, SYNC, syncLevel } from './fixture.ts';

test('the database file is private, and each owner\'s migrations run once, in order, across restarts', (t) => {
  const file = path.join(tempDir(t), 'data', 'satroute.sqlite');
  let db = openDatabase(file);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  migrate(db, 'a', ['CREATE TABLE a (x INTEGER)']);
  migrate(db, 'b', ['CREATE TABLE b (y INTEGER)']);
  db.close();
  db = openDatabase(file);
  t.after(() => db.close());
  migrate(db, 'a', ['CREATE TABLE a (x INTEGER)', 'ALTER TABLE a ADD COLUMN z INTEGER']);
  migrate(db, 'a', ['CREATE TABLE a (x INTEGER)', 'ALTER TABLE a ADD COLUMN z INTEGER']);
  assert.deepEqual(db.prepare('SELECT owner, version FROM schema_migrations ORDER BY owner, version').all(), [
    { owner: 'a', version: 1 }, { owner: 'a', version: 2 }, { owner: 'b', version: 1 },
  ]);
  assert.deepEqual((db.prepare('PRAGMA table_info(a)').all() as { name: string }[]).map((c) => c.name), ['x', 'z']);
});

test('a failing migration leaves the schema as it was', (t) => {
  const db = openDatabase(path.join(tempDir(t), 'satroute.sqlite'));
  t.after(() => db.close());
  assert.throws(() => migrate(db, 'c', ['CREATE TABLE c (x INTEGER); INSERT INTO nowhere VALUES (1)']));
  assert.equal(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'c'`).get(), undefined);
  assert.equal(db.prepare(`SELECT 1 FROM schema_migrations WHERE owner = 'c'`).get(), undefined);
});

// Commits that must survive a power cut (wallet/durable.ts, db/runs.ts).
const { NORMAL, FULL } = SYNC;

test('a commit that must survive a power cut is made with synchronous=FULL, and the connection goes back to NORMAL', (t) => {
  const d = normalDb(t);
  let inside: unknown;
  const out = durableTransaction(d, () => {
    inside = syncLevel(d);
    d.prepare('INSERT INTO t VALUES (1)').run();
    return 'done';
  });
  assert.equal(out, 'done');
  assert.equal(inside, FULL);
  assert.equal(syncLevel(d), NORMAL);
  assert.deepEqual(rowsOf(d), [1]);
});

test('a durable transaction that throws is rolled back and the connection goes back to NORMAL', (t) => {
  const d = normalDb(t);
  assert.throws(() => durableTransaction(d, () => {
    d.prepare('INSERT INTO t VALUES (1)').run();
    throw new Error('boom');
  }), /boom/);
  assert.deepEqual(rowsOf(d), []);
  assert.equal(syncLevel(d), NORMAL);
});

test('inside an outer transaction it joins it (SQLite cannot change the level there): the outer commit decides', (t) => {
  const d = normalDb(t);
  assert.throws(() => d.transaction(() => {
    durableTransaction(d, () => d.prepare('INSERT INTO t VALUES (1)').run());
    throw new Error('outer fails');
  })(), /outer fails/);
  assert.deepEqual(rowsOf(d), [], 'rolled back with the outer transaction');
  assert.equal(syncLevel(d), NORMAL);
});
