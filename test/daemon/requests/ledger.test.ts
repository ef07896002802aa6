// The request ledger as the audit shows it: a request row that is always the sum of its
// attempt rows, reconciled at each write, and updated when a late outcome arrives.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalizePrice } from '../../../protocol/pricing.ts';
import { openDatabase, type DB } from '../../../db/sqlite.ts';
import { LedgerError, RequestLedger, requestCostMsat, type NewAttempt } from '../../../daemon/requests/ledger.ts';
import { Budgets } from '../../../daemon/requests/budgets.ts';

const T0 = Date.UTC(2026, 10, 30, 9, 0, 0);
const PRICE = normalizePrice({ sats_pricing: { prompt: 0.01, completion: 0.05, max_cost: 60 } })!;
const DEAR = normalizePrice({ sats_pricing: { prompt: 0.02, completion: 0.1, max_cost: 120 } })!;

function setup(t: TestContext) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-ledger-'));
  const db: DB = openDatabase(path.join(dir, 'satroute.sqlite'), { synchronous: 'NORMAL' });
  t.after(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  let now = T0;
  const clock = () => now;
  const ledger = new RequestLedger(db, clock);
  return { db, ledger, advance: (ms: number) => (now += ms) };
}

const attempt = (requestId: string, n: number, over: Partial<NewAttempt> = {}): NewAttempt => ({
  requestId, n, providerId: `p${n}`, providerUrl: `http://p${n}.test`, modelId: 'tiny', mint: 'http://mint.test/', paymentId: `${requestId}.${n}`,
  price: PRICE, sentSat: 40, feeSat: 1, ...over,
});

test('one served request: every column the audit shows, reconciled', (t) => {
  const { ledger, advance } = setup(t);
  ledger.open({ id: 'r1', client: 'laptop', endpoint: '/v1/chat/completions', modelRequested: 'tiny-alias', stream: true, payment: 'xcashu', reservedMsat: 40_000,
    priceSnapshot: PRICE, skipped: [{ provider: 'p9', reason: 'breaker open' }] });
  ledger.startAttempt(attempt('r1', 1));
  advance(120);
  ledger.firstByte('r1', 1);
  advance(30);
  const a = ledger.finishAttempt('r1', 1, { status: 'succeeded', httpStatus: 200, usage: { promptTokens: 1000, completionTokens: 200 }, reportedMsat: 20_000, changeSat: 19 });
  assert.deepEqual([a.chargedMsat, a.expectedMsat, a.reportedMsat, a.flags, a.firstByteAt! - a.startedAt, a.endedAt! - a.startedAt], [20_000, 20_000, 20_000, [], 120, 150]);
  const r = ledger.finishRequest('r1', { status: 'succeeded', modelServed: 'tiny' });
  assert.deepEqual(
    { ...r, priceSnapshot: r.priceSnapshot?.promptNmsat },
    {
      id: 'r1', time: T0, client: 'laptop', endpoint: '/v1/chat/completions', modelRequested: 'tiny-alias', modelServed: 'tiny', stream: true,
      payment: 'xcashu', status: 'succeeded', reservedMsat: 40_000, promptTokens: 1000, completionTokens: 200, sentSat: 40, changeSat: 19,
      feeSat: 1, lostSat: 0, chargedMsat: 20_000, expectedMsat: 20_000, reportedMsat: 20_000, flags: [], provider: 'p1', providerUrl: 'http://p1.test',
      mint: 'http://mint.test/', attempts: 1, priceSnapshot: PRICE.promptNmsat, skipped: [{ provider: 'p9', reason: 'breaker open' }],
      errorCode: null, error: null, endedAt: T0 + 150,
    },
  );
  assert.equal(requestCostMsat(r), 21_000, 'what left the wallet: the charge and the input fee');
});

test('failover: a refunded failure then a served attempt add up in the request row', (t) => {
  const { ledger } = setup(t);
  ledger.open({ id: 'r2', client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu' });
  ledger.startAttempt(attempt('r2', 1));
  // Upstream error after redemption: the node refunds in full what it credited (40 - 1).
  const failed = ledger.finishAttempt('r2', 1, { status: 'failed', httpStatus: 502, errorCode: 'upstream_error', error: 'Error forwarding request to upstream', changeSat: 39, facts: ['refunded'] });
  assert.deepEqual([failed.chargedMsat, failed.expectedMsat, failed.flags], [0, 0, ['refunded']]);
  ledger.startAttempt(attempt('r2', 2, { price: DEAR, sentSat: 60, feeSat: 0 }));
  ledger.finishAttempt('r2', 2, { status: 'succeeded', httpStatus: 200, usage: { promptTokens: 1000, completionTokens: 200 }, reportedMsat: 40_000, changeSat: 20 });
  const r = ledger.finishRequest('r2', { status: 'succeeded', modelServed: 'tiny' });
  assert.deepEqual(
    [r.attempts, r.sentSat, r.changeSat, r.feeSat, r.chargedMsat, r.expectedMsat, r.reportedMsat, r.flags, r.provider, r.promptTokens],
    [2, 100, 59, 1, 40_000, 40_000, 40_000, ['refunded'], 'p2', 1000],
  );
  assert.deepEqual(ledger.attempts('r2').map((a) => [a.n, a.status, a.httpStatus, a.errorCode]), [[1, 'failed', 502, 'upstream_error'], [2, 'succeeded', 200, null]]);
});

test('an overcharge and missing usage are flagged with the right figures', (t) => {
  const { ledger } = setup(t);
  ledger.open({ id: 'over', client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu' });
  ledger.startAttempt(attempt('over', 1));
  const a = ledger.finishAttempt('over', 1, { status: 'succeeded', usage: { promptTokens: 1000, completionTokens: 200 }, reportedMsat: 30_000, changeSat: 9 });
  assert.deepEqual([a.chargedMsat, a.expectedMsat, a.flags], [30_000, 20_000, ['overcharged']]);
  assert.deepEqual(ledger.get('over')!.flags, ['overcharged']);

  ledger.open({ id: 'nousage', client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: true, payment: 'xcashu' });
  ledger.startAttempt(attempt('nousage', 1));
  ledger.finishAttempt('nousage', 1, { status: 'succeeded', usage: null, reportedMsat: null, changeSat: 0 });
  const r = ledger.get('nousage')!;
  assert.deepEqual([r.chargedMsat, r.expectedMsat, r.flags, r.promptTokens], [39_000, null, ['usage_missing'], null]);
});

test('invalid change learned after the swap updates the attempt, the request and the budget', (t) => {
  const { db, ledger } = setup(t);
  const budgets = new Budgets(db, () => T0);
  const client = { name: 'c', dailySats: 1000, maxSatsPerRequest: null };
  db.transaction(() => {
    budgets.reserve('late', client, 40_000);
    ledger.open({ id: 'late', client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu', reservedMsat: 40_000 });
  }).immediate();
  ledger.startAttempt(attempt('late', 1));
  ledger.finishAttempt('late', 1, { status: 'succeeded', usage: { promptTokens: 1000, completionTokens: 200 }, reportedMsat: 20_000, changeSat: 19 });
  budgets.settle('late', requestCostMsat(ledger.finishRequest('late', { status: 'succeeded' })));
  assert.equal(budgets.spentTodayMsat('c'), 21_000);

  const r = ledger.applyLate('late.1', { changeSat: 0, facts: ['change_invalid'] })!;
  assert.deepEqual([r.changeSat, r.chargedMsat, r.flags], [0, 39_000, ['overcharged', 'cost_mismatch', 'change_invalid']]);
  budgets.settle('late', requestCostMsat(r));
  assert.equal(budgets.spentTodayMsat('c'), 40_000);
  assert.equal(ledger.applyLate('unknown.1', { changeSat: 0 }), undefined);
  // A later fact adds to the earlier ones; amounts not given stay.
  assert.deepEqual(ledger.applyLate('late.1', { facts: ['lost'], lostSat: 0 })!.flags, ['overcharged', 'cost_mismatch', 'change_invalid', 'lost']);
});

test('a top-up replaces the token the attempt records', (t) => {
  const { ledger } = setup(t);
  ledger.open({ id: 'top', client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu' });
  ledger.startAttempt(attempt('top', 1, { sentSat: 10, feeSat: 1 }));
  ledger.topUp('top', 1, { sentSat: 41, feeSat: 2 });
  assert.deepEqual([ledger.get('top')!.sentSat, ledger.get('top')!.feeSat], [41, 2]);
  ledger.finishAttempt('top', 1, { status: 'succeeded', usage: { promptTokens: 1000, completionTokens: 200 }, reportedMsat: 20_000, changeSat: 19 });
  assert.throws(() => ledger.topUp('top', 1, { sentSat: 50, feeSat: 2 }), LedgerError);
});

test('attempt rows are written inside the caller\'s transaction and vanish with its rollback', (t) => {
  const { db, ledger } = setup(t);
  ledger.open({ id: 'tx', client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu' });
  assert.throws(() => db.transaction(() => {
    ledger.startAttempt(attempt('tx', 1));
    throw new Error('the proofs could not move to pending');
  })(), /proofs could not move/);
  assert.deepEqual(ledger.attempts('tx'), []);
  assert.equal(ledger.get('tx')!.attempts, 0);
});

test('a finished request takes no more attempts; unknown ids are refused', (t) => {
  const { ledger } = setup(t);
  ledger.open({ id: 'done', client: 'c', endpoint: '/v1/embeddings', modelRequested: 'e', stream: false, payment: 'session' });
  ledger.finishRequest('done', { status: 'failed', errorCode: 'no_provider', error: 'nobody serves e' });
  assert.throws(() => ledger.startAttempt(attempt('done', 1, { paymentId: null })), /is failed; no more attempts/);
  assert.throws(() => ledger.finishAttempt('done', 1, { status: 'failed' }), /no attempt done#1/);
  assert.throws(() => ledger.finishRequest('nope', { status: 'failed' }), /no request nope/);
  assert.throws(() => ledger.open({ id: 'done', client: 'c', endpoint: '/v1/embeddings', modelRequested: 'e', stream: false, payment: 'session' }), /request done already exists/);
  assert.deepEqual([ledger.get('done')!.errorCode, ledger.get('done')!.payment], ['no_provider', 'session']);
});

test('what startAttempt and finishAttempt return is the row as stored, whatever the end leaves out', (t) => {
  const { ledger, advance } = setup(t);
  const ends = [
    { status: 'succeeded' as const, httpStatus: 200, usage: { promptTokens: 1000, completionTokens: 200, cacheReadTokens: 50 }, reportedMsat: 21_000, changeSat: 19 },
    { status: 'failed' as const, httpStatus: 502, errorCode: 'upstream_error', error: 'boom', changeSat: 39, facts: ['refunded' as const] },
    { status: 'failed' as const, errorCode: 'timeout', lostSat: 3, facts: ['lost' as const], firstByteAt: T0 + 5, endedAt: T0 + 99 },
    { status: 'succeeded' as const, usage: { promptTokens: 10, completionTokens: 0 }, sessionChargedMsat: 700 },
  ];
  for (const [i, end] of ends.entries()) {
    const id = `s${i}`;
    ledger.open({ id, client: 'c', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu' });
    const started = ledger.startAttempt(attempt(id, 1, i === 3 ? { sessionId: 'sess-1', paymentId: null, mint: null, sentSat: 0, feeSat: 0 } : {}));
    assert.deepEqual(started, ledger.attempts(id)[0], `start ${i}`);
    advance(10);
    if (i % 2 === 0) ledger.firstByte(id, 1);
    if (i !== 3) ledger.applyLate(`${id}.1`, { facts: ['change_invalid'], changeSat: i, lostSat: i });
    const returned = ledger.finishAttempt(id, 1, end);
    assert.deepEqual(returned, ledger.attempts(id)[0], `end ${i}`);
  }
});
