import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Breakers, type BreakerChange, type BreakerOutcome } from '../../../daemon/route/breaker.ts';
import { BreakerStore } from '../../../daemon/route/breaker-store.ts';
import { openDatabase } from '../../../db/sqlite.ts';

const T0 = 1_800_000_000_000;
const FAIL: BreakerOutcome = { kind: 'failure', scope: 'provider', error: 'HTTP 502' };

function setup(over: { random?: () => number; store?: BreakerStore } = {}) {
  let now = T0;
  const changes: BreakerChange[] = [];
  const b = new Breakers({ clock: () => now, random: over.random ?? (() => 0), store: over.store });
  b.on('change', (c) => changes.push(c));
  return {
    b,
    changes,
    advance: (ms: number) => (now += ms),
    now: () => now,
    /** One attempt at provider p / model m with this outcome. */
    attempt(outcome: BreakerOutcome, p = 'p', m = 'm') {
      const permit = b.acquire(p, m);
      assert.ok(permit, `attempt at ${p}/${m} admitted`);
      b.record(permit, outcome);
    },
  };
}

test('a provider failing 3 times in a row is no longer tried; a success in between resets the count', () => {
  const s = setup();
  s.attempt(FAIL);
  s.attempt(FAIL);
  s.attempt({ kind: 'success' });
  s.attempt(FAIL);
  s.attempt(FAIL);
  assert.equal(s.b.peek('p', 'm').admit, true, 'two failures since the last success');
  s.attempt(FAIL);
  const g = s.b.peek('p', 'm');
  assert.equal(g.admit, false);
  assert.equal(!g.admit && g.reason, 'breaker_open');
  assert.equal(!g.admit && g.until, T0 + 30_000);
  assert.equal(s.b.acquire('p', 'm'), null);
  assert.deepEqual(s.changes.map((c) => [c.from, c.to, c.reason]), [['closed', 'open', '3 consecutive failures']]);
  assert.equal(s.b.peek('other', 'm').admit, true, 'other providers are not affected');
});

test('an open breaker turns half-open at the first lookup after its open time, with no timer', () => {
  const s = setup();
  for (let i = 0; i < 3; i++) s.attempt(FAIL);
  s.advance(29_999);
  assert.equal(s.b.peek('p', 'm').admit, false);
  assert.equal(s.b.get('p')?.state, 'open');
  s.advance(1);
  assert.equal(s.b.get('p')?.state, 'open', 'nothing happens until someone looks');
  assert.deepEqual(s.b.peek('p', 'm'), { admit: true, probe: true });
  assert.equal(s.b.get('p')?.state, 'half_open');
});

test('half-open admits exactly one probe under 20 concurrent lookups; its success closes the breaker', async () => {
  const s = setup();
  for (let i = 0; i < 3; i++) s.attempt(FAIL);
  s.advance(30_000);
  const permits = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      await new Promise((r) => setImmediate(r, i));
      return s.b.acquire('p', 'm');
    }),
  );
  const granted = permits.filter((p) => p !== null);
  assert.equal(granted.length, 1);
  const denied = s.b.peek('p', 'm');
  assert.equal(!denied.admit && denied.reason, 'probe_in_flight');
  s.b.record(granted[0]!, { kind: 'success' });
  assert.equal(s.b.get('p')?.state, 'closed');
  assert.deepEqual(s.b.peek('p', 'm'), { admit: true, probe: false });
  assert.deepEqual(s.changes.map((c) => c.to), ['open', 'half_open', 'closed']);
});

test('a failed probe re-opens the breaker for twice as long, up to 10 minutes; closing resets it to 30 s', () => {
  const s = setup();
  for (let i = 0; i < 3; i++) s.attempt(FAIL);
  const opens: number[] = [];
  for (let i = 0; i < 7; i++) {
    const r = s.b.get('p')!;
    opens.push(r.openUntil! - r.openedAt!);
    s.advance(r.openUntil! - s.now());
    s.attempt(FAIL); // the probe fails
  }
  assert.deepEqual(opens, [30_000, 60_000, 120_000, 240_000, 480_000, 600_000, 600_000]);
  s.advance(600_000);
  s.attempt({ kind: 'success' });
  for (let i = 0; i < 3; i++) s.attempt(FAIL);
  const r = s.b.get('p')!;
  assert.equal(r.openUntil! - r.openedAt!, 30_000);
});

test('open times are jittered downwards by the injected random source', () => {
  const s = setup({ random: () => 1 });
  for (let i = 0; i < 3; i++) s.attempt(FAIL);
  const r = s.b.get('p')!;
  assert.equal(r.openUntil! - r.openedAt!, 24_000); // 30 s less 20 %
});

test('a 429 cools the model down for its Retry-After without counting as a failure', () => {
  const s = setup();
  s.attempt(FAIL);
  s.attempt(FAIL);
  s.attempt({ kind: 'rate_limited', retryAfterMs: 5_000 });
  assert.equal(s.b.get('p')?.failures, 2);
  assert.equal(s.b.get('p')?.state, 'closed');
  const g = s.b.peek('p', 'm');
  assert.equal(!g.admit && g.reason, 'rate_limited');
  assert.equal(!g.admit && g.until, T0 + 5_000);
  assert.equal(s.b.peek('p', 'other-model').admit, true, 'a model-level cooldown leaves the provider\'s other models alone');
  s.advance(5_000);
  assert.equal(s.b.peek('p', 'm').admit, true);
  s.attempt({ kind: 'rate_limited' }); // no Retry-After: the default cooldown
  s.advance(9_999);
  assert.equal(s.b.peek('p', 'm').admit, false);
  s.advance(1);
  assert.equal(s.b.peek('p', 'm').admit, true);
  assert.deepEqual(s.changes, []);
});

test("the node's 402, the caller's 400/422 and cancels are not failures: they neither count nor reset", () => {
  const s = setup();
  s.attempt(FAIL);
  s.attempt(FAIL);
  for (let i = 0; i < 5; i++) s.attempt({ kind: 'neutral' });
  assert.equal(s.b.get('p')?.failures, 2);
  assert.equal(s.b.get('p')?.state, 'closed');
  s.attempt(FAIL);
  assert.equal(s.b.get('p')?.state, 'open');
});

test('a neutral probe answer frees the probe and leaves the breaker half-open for the next one', () => {
  const s = setup();
  for (let i = 0; i < 3; i++) s.attempt(FAIL);
  s.advance(30_000);
  s.attempt({ kind: 'neutral' });
  assert.equal(s.b.get('p')?.state, 'half_open');
  const p = s.b.acquire('p', 'm');
  assert.ok(p, 'the next probe may go');
  s.b.release(p);
  assert.ok(s.b.acquire('p', 'm'), 'a released, unused permit frees the probe too');
});

test('a probe that never answers frees its permit after the probe timeout', () => {
  const s = setup();
  for (let i = 0; i < 3; i++) s.attempt(FAIL);
  s.advance(30_000);
  const stuck = s.b.acquire('p', 'm');
  assert.ok(stuck);
  s.advance(119_999);
  assert.equal(s.b.acquire('p', 'm'), null);
  s.advance(1);
  const next = s.b.acquire('p', 'm');
  assert.ok(next, 'a new probe after the timeout');
  s.b.record(stuck, FAIL); // the stuck one answers late: the new probe holds the slot, so it does not decide
  assert.equal(s.b.get('p')?.state, 'half_open');
  s.b.record(next, { kind: 'success' });
  assert.equal(s.b.get('p')?.state, 'closed');
});

test('model-only errors open the provider+model breaker; the provider keeps serving its other models', () => {
  const s = setup();
  const modelFail: BreakerOutcome = { kind: 'failure', scope: 'model', error: 'upstream 404 for this model' };
  for (let i = 0; i < 3; i++) s.attempt(modelFail, 'p', 'gone');
  assert.equal(s.b.peek('p', 'gone').admit, false);
  assert.equal(s.b.peek('p', 'fine').admit, true);
  assert.equal(s.b.get('p', 'gone')?.state, 'open');
  assert.equal(s.b.get('p'), undefined, 'no provider-level record');
});

test('every candidate open: one probe is forced to the chosen provider, and only one', () => {
  const s = setup();
  for (let i = 0; i < 3; i++) s.attempt(FAIL, 'a');
  s.advance(1_000);
  for (let i = 0; i < 3; i++) s.attempt(FAIL, 'b');
  assert.equal(s.b.peek('a', 'm').admit, false);
  const g = s.b.peek('a', 'm');
  assert.equal(!g.admit && g.lastFailureAt, T0);
  const forced = s.b.forceProbe('a', 'm');
  assert.ok(forced);
  assert.equal(s.b.get('a')?.state, 'half_open');
  assert.equal(s.b.forceProbe('a', 'm'), null, 'its probe is out');
  s.b.record(forced, { kind: 'success' });
  assert.equal(s.b.get('a')?.state, 'closed');
  assert.equal(s.b.get('b')?.state, 'open');
});

function tempDb(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-breaker-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'satroute.sqlite');
}

test('breaker state survives a restart: an open breaker stays open, then admits one probe', (t) => {
  const file = tempDb(t);
  const db1 = openDatabase(file);
  const s1 = setup({ store: new BreakerStore(db1) });
  for (let i = 0; i < 3; i++) s1.attempt(FAIL);
  s1.attempt({ kind: 'rate_limited', retryAfterMs: 60_000 }, 'q', 'm');
  s1.attempt(FAIL, 'r');
  db1.close();

  const db2 = openDatabase(file);
  t.after(() => db2.close());
  const s2 = setup({ store: new BreakerStore(db2) });
  assert.equal(s2.b.get('p')?.state, 'open');
  assert.equal(s2.b.get('p')?.openUntil, T0 + 30_000);
  assert.equal(s2.b.get('r')?.failures, 1);
  assert.equal(s2.b.peek('q', 'm').admit, false, 'a cooldown survives too');
  s2.advance(30_000);
  assert.ok(s2.b.acquire('p', 'm'));
  assert.equal(s2.b.acquire('p', 'm'), null);
  assert.deepEqual(s2.b.views().find((v) => v.provider_id === 'p')?.state, 'half_open');
});
