// The audit an owner exports: DESIGN.md's CSV columns exactly, filters by time, client,
// provider and flags, totals per provider and per client, every attempt on request.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, type DB } from '../../../db/sqlite.ts';
import { ATTEMPT_COLUMNS, REQUEST_COLUMNS, auditReport, csvField, sessionChargesSat, toCsv } from '../../../daemon/requests/audit.ts';
import { RequestLedger } from '../../../daemon/requests/ledger.ts';
import { normalizePrice } from '../../../protocol/pricing.ts';

import { T0, HOUR, fillLedger } from './fixture.ts';

function setup(t: TestContext): DB {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-audit-'));
  const db = openDatabase(path.join(dir, 'satroute.sqlite'), { synchronous: 'NORMAL' });
  t.after(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  fillLedger(db);
  return db;
}

test("the CSV has DESIGN.md's columns in order, one line per request, properly quoted", (t) => {
  const db = setup(t);
  const csv = toCsv(REQUEST_COLUMNS, auditReport(db).requests!);
  const lines = csv.split('\r\n');
  assert.equal(lines[0], 'time,request_id,client,endpoint,model,provider,mint,status,prompt_tokens,completion_tokens,sent_sats,change_sats,charged_msat,expected_msat,reported_msat,flags,payment,attempts');
  assert.equal(lines.length, 1 + 4 + 1, 'header, four requests, and the final CRLF');
  assert.equal(lines[1], '2026-11-30T09:00:00.000Z,a,laptop,/v1/chat/completions,tiny,honest,http://mint.test,succeeded,1000,200,40,19,20000,20000,20000,,xcashu,1');
  assert.equal(lines[2], '2026-11-30T10:00:00.000Z,b,laptop,/v1/chat/completions,"model, ""quoted""",greedy,http://mint.test,succeeded,1000,200,80,48,30000,20000,30000,overcharged;refunded,xcashu,2');
});

test('csv fields: empty for null, quoted only when needed', () => {
  assert.deepEqual([null, 0, 'plain', 'a,b', 'say "hi"', 'two\nlines', ' padded', ['x', 'y']].map(csvField), ['', '0', 'plain', '"a,b"', '"say ""hi"""', '"two\nlines"', '" padded"', 'x;y']);
});

test('filters: time window, client, provider, flagged', (t) => {
  const db = setup(t);
  const ids = (f: Parameters<typeof auditReport>[1]) => auditReport(db, f).requests!.map((r) => r.request_id);
  assert.deepEqual(ids({}), ['a', 'b', 'c', 'd']);
  assert.deepEqual(ids({ since: T0 + HOUR, until: T0 + 3 * HOUR }), ['b', 'c']);
  assert.deepEqual(ids({ client: 'phone' }), ['c', 'd']);
  assert.deepEqual(ids({ provider: 'flaky' }), ['b'], 'a request counts for every provider it tried');
  assert.deepEqual(ids({ provider: 'http://greedy.test' }), ['b', 'd'], 'by URL too');
  assert.deepEqual(ids({ flagged: true }), ['b', 'd']);
  assert.deepEqual(ids({ flagged: true, client: 'phone', since: T0 }), ['d']);
});

test('totals per provider (over its attempts) and per client', (t) => {
  const db = setup(t);
  const { totals } = auditReport(db);
  assert.deepEqual(totals.all, { requests: 4, succeeded: 4, flagged: 2, sent_sats: 200, change_sats: 95, fee_sats: 5, lost_sats: 0, charged_msat: 100_000, expected_msat: 80_000, reported_msat: 100_000 });
  assert.deepEqual(totals.by_provider.map((p) => [p.provider, p.requests, p.succeeded, p.charged_msat, p.expected_msat, p.flagged]), [
    ['greedy', 2, 2, 60_000, 40_000, 2],
    ['honest', 2, 2, 40_000, 40_000, 0],
    ['flaky', 1, 0, 0, 0, 1],
  ]);
  assert.deepEqual(totals.by_client.map((c) => [c.client, c.requests, c.charged_msat]), [['laptop', 2, 50_000], ['phone', 2, 50_000]]);
  // Filters apply to the totals too.
  assert.deepEqual(auditReport(db, { client: 'laptop' }).totals.by_client.map((c) => c.client), ['laptop']);
});

test('--attempts lists every provider tried, with its status and timings', (t) => {
  const db = setup(t);
  const r = auditReport(db, { since: T0 + HOUR, until: T0 + 2 * HOUR }, { attempts: true });
  assert.equal(r.requests, undefined);
  assert.deepEqual(r.attempts!.map((a) => [a.request_id, a.attempt, a.provider, a.status, a.http_status, a.error, a.charged_msat, a.flags]), [
    ['b', 1, 'flaky', 'failed', 502, 'upstream_error', 0, ['refunded']],
    ['b', 2, 'greedy', 'succeeded', 200, null, 30_000, ['overcharged']],
  ]);
  const csv = toCsv(ATTEMPT_COLUMNS, r.attempts!).split('\r\n');
  assert.equal(csv[0].split(',').length, ATTEMPT_COLUMNS.length);
  assert.equal(csv.length, 4);
  // --flagged with --attempts keeps the flagged attempts only.
  assert.deepEqual(auditReport(db, { flagged: true, provider: 'honest' }, { attempts: true }).attempts, []);
});

test('streams paid from a session show it per attempt, and cost what the wallet books: each session rounded up once', (t) => {
  const db = setup(t);
  const ledger = new RequestLedger(db, () => T0);
  const price = normalizePrice({ sats_pricing: { prompt: 0.01, completion: 0.05, max_cost: 60 } })!;
  const onSession = (id: string, sessionId: string, chargedMsat: number) => {
    ledger.open({ id, client: 'laptop', endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: true, payment: 'session', priceSnapshot: price });
    ledger.startAttempt({ requestId: id, n: 1, providerId: 'honest', providerUrl: 'http://honest.test', modelId: 'tiny', mint: 'http://mint.test', paymentId: null, sessionId, price, sentSat: 0, feeSat: 0 });
    ledger.finishAttempt(id, 1, { status: 'succeeded', httpStatus: 200, usage: { promptTokens: 10, completionTokens: 20 }, reportedMsat: chargedMsat, sessionChargedMsat: chargedMsat });
    ledger.finishRequest(id, { status: 'succeeded', modelServed: 'tiny' });
  };
  // 1.2 + 1.3 sat on one session: 2.5, booked as 3; 0.4 on another: 1. Token-paid attempts count nothing here.
  onSession('s1', 'ses_a', 1_200);
  onSession('s2', 'ses_a', 1_300);
  onSession('s3', 'ses_b', 400);
  assert.equal(sessionChargesSat(db), 4);
  const attempts = auditReport(db, {}, { attempts: true }).attempts!.filter((a) => a.session_id !== null);
  assert.deepEqual(attempts.map((a) => [a.request_id, a.session_id, a.session_charged_msat, a.charged_msat, a.sent_sats]), [
    ['s1', 'ses_a', 1_200, 1_200, 0], ['s2', 'ses_a', 1_300, 1_300, 0], ['s3', 'ses_b', 400, 400, 0],
  ]);
});
