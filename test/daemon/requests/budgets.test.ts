// Budgets as a client key's owner relies on them: the worst case is reserved at admission, the
// real cost replaces it at settlement, and no race lets a day's spending pass its budget.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openDatabase, type DB } from '../../../db/sqlite.ts';
import { Budgets, utcDay, type BudgetLimits } from '../../../daemon/requests/budgets.ts';
import { RequestLedger } from '../../../daemon/requests/ledger.ts';
import { BudgetExceededError } from '../../../daemon/api/errors.ts';

const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);

function openDb(t: TestContext): { db: DB; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-budgets-'));
  const file = path.join(dir, 'satroute.sqlite');
  const db = openDatabase(file, { synchronous: 'NORMAL' });
  t.after(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { db, file };
}

/** A small deterministic random source (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the day's reservations add up to, read the slow way (the running total must agree). */
function sumOfReservations(db: DB, client: string): number {
  return db.prepare(`SELECT COALESCE(SUM(CASE state WHEN 'held' THEN reserved_msat ELSE charged_msat END), 0) FROM budget_reservations WHERE client = ?`).pluck().get(client) as number;
}

/** Yield to the event loop a few times, so racing promises interleave. */
async function jitter(random: () => number): Promise<void> {
  for (let i = Math.floor(random() * 4); i >= 0; i--) await new Promise((r) => setImmediate(r));
}

test('a request above the per-request cap is refused before anything is reserved', (t) => {
  const { db } = openDb(t);
  const budgets = new Budgets(db, () => T0);
  const client: BudgetLimits = { name: 'a', dailySats: null, maxSatsPerRequest: 20 };
  assert.equal(budgets.reserve('r1', client, 20_000).reservedMsat, 20_000);
  assert.throws(() => budgets.reserve('r2', client, 20_001), (e: unknown) => e instanceof BudgetExceededError && e.limit === 'per_request' && e.availableMsat === 20_000);
  assert.equal(budgets.get('r2'), undefined);
  assert.equal(budgets.spentTodayMsat('a'), 20_000);
});

test('the reservation is released to the real charge at settlement, and a late outcome settles it again', (t) => {
  const { db } = openDb(t);
  const budgets = new Budgets(db, () => T0);
  const client: BudgetLimits = { name: 'a', dailySats: 100, maxSatsPerRequest: null };
  budgets.reserve('r1', client, 60_000);
  // 60 sat held: a second worst case of 60 does not fit.
  assert.throws(() => budgets.reserve('r2', client, 60_000), BudgetExceededError);
  assert.equal(budgets.settle('r1', 7_000), true);
  assert.equal(budgets.spentTodayMsat('a'), 7_000);
  budgets.reserve('r2', client, 60_000);
  assert.equal(budgets.spentTodayMsat('a'), 67_000);
  // The change of r1 turns out invalid: it cost more than first thought.
  budgets.settle('r1', 9_000);
  assert.equal(budgets.spentTodayMsat('a'), 69_000);
  budgets.release('r2');
  assert.deepEqual(budgets.get('r2'), { requestId: 'r2', client: 'a', day: utcDay(T0), reservedMsat: 60_000, chargedMsat: 0, state: 'settled' });
  assert.equal(budgets.spentTodayMsat('a'), 9_000);
  assert.equal(sumOfReservations(db, 'a'), 9_000);
  assert.equal(budgets.settle('unknown', 1), false);
});

test('the daily budget resets at midnight UTC by the injected clock', (t) => {
  const { db } = openDb(t);
  let now = Date.UTC(2026, 10, 30, 23, 59, 59, 999);
  const budgets = new Budgets(db, () => now);
  const client: BudgetLimits = { name: 'a', dailySats: 10, maxSatsPerRequest: null };
  budgets.reserve('late', client, 10_000);
  assert.throws(() => budgets.reserve('more', client, 1), BudgetExceededError);
  now += 1;
  assert.equal(budgets.reserve('next-day', client, 10_000).day, '2026-12-01');
  assert.equal(budgets.spentTodayMsat('a'), 10_000);
});

test('budgets are per client', (t) => {
  const { db } = openDb(t);
  const budgets = new Budgets(db, () => T0);
  budgets.reserve('a1', { name: 'a', dailySats: 1, maxSatsPerRequest: null }, 1_000);
  assert.doesNotThrow(() => budgets.reserve('b1', { name: 'b', dailySats: 1, maxSatsPerRequest: null }, 1_000));
});

test('50 concurrent requests against a daily budget that fits 10 admit exactly 10 and never overspend', async (t) => {
  const { db } = openDb(t);
  const budgets = new Budgets(db, () => T0);
  const ledger = new RequestLedger(db, () => T0);
  const random = seeded(10);
  const worstMsat = 10_000;
  const client: BudgetLimits = { name: 'racer', dailySats: 100, maxSatsPerRequest: 50 }; // fits 10 worst cases
  let held = 0;
  let peak = 0;
  let release!: () => void;
  const allTried = new Promise<void>((r) => (release = r));
  let tried = 0;

  // Each request: admission (reservation + request row in one transaction), then it runs until
  // all 50 have been admitted or refused, then settles at a real charge below its worst case.
  const request = async (i: number): Promise<'admitted' | 'refused'> => {
    await jitter(random);
    const id = `req-${i}`;
    try {
      db.transaction(() => {
        budgets.reserve(id, client, worstMsat);
        ledger.open({ id, client: client.name, endpoint: '/v1/chat/completions', modelRequested: 'm', stream: false, payment: 'xcashu', reservedMsat: worstMsat });
      }).immediate();
    } catch (err) {
      if (!(err instanceof BudgetExceededError)) throw err;
      if (++tried === 50) release();
      return 'refused';
    }
    held += worstMsat;
    peak = Math.max(peak, held);
    if (++tried === 50) release();
    await allTried;
    await jitter(random);
    budgets.settle(id, 3_000 + Math.floor(random() * 7_000));
    held -= worstMsat;
    return 'admitted';
  };
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => request(i)));
  assert.equal(results.filter((r) => r === 'admitted').length, 10);
  assert.equal(peak, 100_000);
  assert.ok(budgets.spentTodayMsat('racer') <= 100_000);
  // The refused ones left no request row behind (one transaction with the reservation).
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM requests').get() as { n: number }).n, 10);

  // Settled below the worst case, the freed budget admits more - still never past 100 sat.
  const spentBefore = budgets.spentTodayMsat('racer');
  const second = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
    await jitter(random);
    try {
      budgets.reserve(`again-${i}`, client, worstMsat);
      return 1;
    } catch (err) {
      if (err instanceof BudgetExceededError) return 0;
      throw err;
    }
  }));
  const again = second.reduce((a: number, b) => a + b, 0);
  assert.equal(budgets.spentTodayMsat('racer'), sumOfReservations(db, 'racer'));
  assert.equal(again, Math.floor((100_000 - spentBefore) / worstMsat));
  assert.ok(budgets.spentTodayMsat('racer') <= 100_000);
});

test('five threads with their own connections racing 50 admissions admit exactly 10', async (t) => {
  const { db, file } = openDb(t);
  new Budgets(db, () => T0); // migrate once before the racers open the file
  const workers = 5;
  const gate = new SharedArrayBuffer(8);
  const flag = new Int32Array(gate);
  const client = { name: 'racer', dailySats: 100, maxSatsPerRequest: null };
  const results = Array.from({ length: workers }, (_, worker) => {
    const w = new Worker(new URL('./budget-race-worker.mjs', import.meta.url), {
      workerData: { file, worker, tries: 10, worstCaseMsat: 10_000, client, gate, now: T0 },
    });
    return new Promise<{ admitted: string[]; refused: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  });
  while (Atomics.load(flag, 1) < workers) await new Promise((r) => setTimeout(r, 5));
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
  const done = await Promise.all(results);
  const admitted = done.flatMap((d) => d.admitted);
  assert.equal(admitted.length, 10);
  assert.equal(done.reduce((a, d) => a + d.refused, 0), 40);
  const budgets = new Budgets(db, () => T0);
  assert.equal(budgets.spentTodayMsat('racer'), 100_000);
  assert.equal(sumOfReservations(db, 'racer'), 100_000);
});
