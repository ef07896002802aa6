// `satroute keys` as the owner runs it: a separate process on a data directory, with or
// without a daemon answering on the control socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, databaseFile } from '../../../db/sqlite.ts';
import { ClientKeys } from '../../../daemon/api/auth.ts';
import { Budgets } from '../../../daemon/requests/budgets.ts';
import { booksControlHandlers } from '../../../daemon/control/books.ts';
import { startControlServer } from '../../../daemon/control/server.ts';
import { satroute } from './run.ts';

function dataDir(t: import('node:test').TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-keys-cli-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('keys create prints the key once; it works until revoked; list never shows it', async (t) => {
  const dir = dataDir(t);
  const env = { SATROUTE_DATA_DIR: dir };
  const created = await satroute(env, 'keys', 'create', '--name', 'laptop', '--daily-sats', '500', '--max-sats-per-request', '20', '--json');
  assert.equal(created.code, 0, created.stderr);
  const k = JSON.parse(created.stdout);
  assert.deepEqual(Object.keys(k).slice(0, 2), ['name', 'key']);
  assert.deepEqual([k.name, k.daily_sats, k.max_sats_per_request, k.admin], ['laptop', 500, 20, false]);

  const human = await satroute(env, 'keys', 'create', '--name', 'ops', '--admin');
  assert.equal(human.code, 0, human.stderr);
  const opsKey = /\b(sr_[A-Za-z0-9_-]{32})\b/.exec(human.stdout)?.[1];
  assert.ok(opsKey, human.stdout);
  assert.match(human.stdout, /only time it is shown/);

  const list = await satroute(env, 'keys', 'list');
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /laptop\s+sr_\S+\.\.\.\s+client\s+0 sat\s+500 sat\s+20 sat/);
  assert.match(list.stdout, /ops\s+sr_\S+\.\.\.\s+admin/);
  assert.ok(!list.stdout.includes(k.key) && !list.stdout.includes(opsKey!), 'list shows a prefix, never the key');

  const db = openDatabase(databaseFile(dir));
  const keys = new ClientKeys(db);
  assert.equal(keys.verify(k.key)?.name, 'laptop');
  assert.equal(keys.verify(opsKey!)?.admin, true);
  db.close();

  const revoked = await satroute(env, 'keys', 'revoke', 'laptop');
  assert.equal(revoked.code, 0, revoked.stderr);
  const again = await satroute(env, 'keys', 'revoke', 'laptop');
  assert.equal(again.code, 1);
  assert.equal(again.stderr, 'satroute: key "laptop" was already revoked\n');
  const db2 = openDatabase(databaseFile(dir));
  assert.equal(new ClientKeys(db2).verify(k.key), null);
  db2.close();
});

test('keys go through the running daemon when one answers, with spend today in the list', async (t) => {
  const dir = dataDir(t);
  const db = openDatabase(databaseFile(dir));
  const budgets = new Budgets(db);
  const calls: string[] = [];
  const handlers = booksControlHandlers({ db, keys: new ClientKeys(db), budgets });
  const counted = Object.fromEntries(Object.entries(handlers).map(([m, h]) => [m, (p: unknown) => (calls.push(m), h(p))]));
  const server = await startControlServer(dir, counted);
  t.after(async () => {
    await server.close();
    db.close();
  });
  const env = { SATROUTE_DATA_DIR: dir };
  const created = await satroute(env, 'keys', 'create', '--name', 'app', '--daily-sats', '100', '--json');
  assert.equal(created.code, 0, created.stderr);
  budgets.reserve('r1', { name: 'app', dailySats: 100, maxSatsPerRequest: null }, 12_345);
  const list = await satroute(env, 'keys', 'list', '--json');
  assert.equal(JSON.parse(list.stdout).keys[0].spent_today_msat, 12_345);
  const human = await satroute(env, 'keys', 'list');
  assert.match(human.stdout, /app\s+sr_\S+\s+client\s+12\.345 sat\s+100 sat/);
  assert.deepEqual(calls, ['keys.create', 'keys.list', 'keys.list']);
  const bad = await satroute(env, 'keys', 'create', '--name', 'app');
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'satroute: a key named "app" already exists\n');
});
