// Client keys as their owner sees them: a key is shown once and works; a wrong or revoked key
// is refused; the database never holds the key itself.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClientKeys, requireAdmin } from '../../../daemon/api/auth.ts';
import { BadRequestError, ForbiddenError, UnauthorizedError } from '../../../daemon/api/errors.ts';
import { openDatabase, type DB } from '../../../db/sqlite.ts';

function openDb(t: TestContext): { db: DB; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-keys-'));
  const file = path.join(dir, 'satroute.sqlite');
  const db = openDatabase(file, { synchronous: 'NORMAL' });
  t.after(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { db, file };
}

test('a created key authenticates its client, with its limits and scope', (t) => {
  const { db } = openDb(t);
  const now = 1_700_000_000_000;
  const keys = new ClientKeys(db, () => now);
  const { key, client } = keys.create({ name: 'laptop', dailySats: 500, maxSatsPerRequest: 20 });
  assert.match(key, /^sr_[A-Za-z0-9_-]{32}$/);
  assert.equal(client.prefix, key.slice(0, 9));
  const who = keys.authenticate(`Bearer ${key}`);
  assert.deepEqual(
    { name: who.name, admin: who.admin, dailySats: who.dailySats, maxSatsPerRequest: who.maxSatsPerRequest, createdAt: who.createdAt },
    { name: 'laptop', admin: false, dailySats: 500, maxSatsPerRequest: 20, createdAt: now },
  );
  assert.throws(() => requireAdmin(who), ForbiddenError);
  const admin = keys.create({ name: 'ops', admin: true });
  assert.doesNotThrow(() => requireAdmin(keys.authenticate(`bearer  ${admin.key}`)));
  assert.equal(keys.verify(admin.key)?.dailySats, null);
});

test('a wrong, malformed or missing key is refused', (t) => {
  const { db } = openDb(t);
  const keys = new ClientKeys(db);
  const { key } = keys.create({ name: 'a' });
  // Same prefix (so it reaches the hash comparison), last character changed.
  const wrong = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
  for (const header of [`Bearer ${wrong}`, `Bearer ${key}x`, 'Bearer sr_short', `Basic ${key}`, '', undefined, null]) {
    assert.throws(() => keys.authenticate(header), UnauthorizedError, String(header));
  }
  assert.equal(keys.verify(wrong), null);
});

test('a revoked key is refused from the next request on, and its name is not reused', (t) => {
  const { db } = openDb(t);
  const keys = new ClientKeys(db);
  const { key } = keys.create({ name: 'phone' });
  assert.equal(keys.verify(key)?.name, 'phone');
  const revoked = keys.revoke('phone');
  assert.notEqual(revoked.revokedAt, null);
  assert.equal(keys.verify(key), null);
  assert.throws(() => keys.authenticate(`Bearer ${key}`), UnauthorizedError);
  assert.throws(() => keys.revoke('phone'), /already revoked/);
  assert.throws(() => keys.revoke('nobody'), /no key named "nobody"/);
  assert.throws(() => keys.create({ name: 'phone' }), /names are not reused/);
  assert.equal(keys.list().length, 1);
});

test('the database holds a hash of the key, never the key', (t) => {
  const { db, file } = openDb(t);
  const keys = new ClientKeys(db);
  const { key } = keys.create({ name: 'server' });
  db.pragma('wal_checkpoint(TRUNCATE)');
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.includes(Buffer.from(key)), false, 'key in clear in the database file');
  assert.equal(bytes.includes(Buffer.from(key.slice(3))), false, 'secret part in clear');
  const row = db.prepare('SELECT * FROM client_keys').get() as Record<string, unknown>;
  assert.deepEqual(Object.values(row).filter((v) => typeof v === 'string' && v.length >= 20), [], 'no long string column');
});

test('key names and limits are checked', (t) => {
  const { db } = openDb(t);
  const keys = new ClientKeys(db);
  assert.throws(() => keys.create({ name: '' }), BadRequestError);
  assert.throws(() => keys.create({ name: 'has space' }), BadRequestError);
  assert.throws(() => keys.create({ name: 'x', dailySats: 0 }), /--daily-sats must be a positive whole number/);
  assert.throws(() => keys.create({ name: 'x', maxSatsPerRequest: 1.5 }), /--max-sats-per-request/);
  keys.create({ name: 'x' });
  assert.throws(() => keys.create({ name: 'x' }), /already exists/);
});

test('two keys that share their visible prefix are still told apart', (t) => {
  const { db } = openDb(t);
  // A random source that repeats the first 6 characters: lookups by prefix find both rows.
  let n = 0;
  const keys = new ClientKeys(db, Date.now, (bytes) => {
    const b = Buffer.alloc(bytes, 7);
    b[bytes - 1] = n++;
    return b;
  });
  const a = keys.create({ name: 'a' });
  const b = keys.create({ name: 'b' });
  assert.equal(a.client.prefix, b.client.prefix);
  assert.equal(keys.verify(a.key)?.name, 'a');
  assert.equal(keys.verify(b.key)?.name, 'b');
});
