// The request lifecycle against the local world (no mocks of the request path): routing by real
// cost, failover before the first byte without a double charge, every 402 decided by its body,
// top-ups and their cap, the breaker, reconciliation flags with their figures, late outcomes.
// One world for the file; each test has providers of its own (its own model id), so breakers and
// statistics of one test never touch another. Every test ends with every sat accounted for.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { startWorld, type Scenario, type TestProvider, type World } from '../../world/index.ts';
import { spellMint } from '../../world/scenario.ts';
import { allowedChargeMsat } from '../../../daemon/requests/reconcile.ts';
import { harness, type Harness } from './lifecycle-fixture.ts';

// max_cost left to the world's default (context x prompt + completion limit x completion): the
// node's reservation, and so the token, stays near what a request of 40 tokens costs.
const model = (id: string, prompt: number, completion: number, extra: Record<string, unknown> = {}) => ({ id, promptSatsPerToken: prompt, completionSatsPerToken: completion, contextLength: 1000, maxCompletionTokens: 200, ...extra });
const only = (name: string, id: string, prompt: number, completion: number, rest: Record<string, unknown> = {}) => ({ name, announce: false, mints: ['mint-a'], models: [model(id, prompt, completion)], ...rest });

const SCENARIO: Scenario = {
  seed: 11,
  mints: [{ name: 'mint-a' }, { name: 'mint-b', inputFeePpk: 100 }, { name: 'mint-c' }],
  nwcBalanceSat: 0,
  providers: [
    // cheapest chosen; the cheapest lists mint-b with a trailing slash and refuses any other spelling
    { name: 'c1', announce: false, mints: ['mint-b'], mintSpelling: 'trailing-slash', knobs: { foreignMint: 'refuse' }, models: [model('m-cheap', 0.01, 0.04)] },
    only('c2', 'm-cheap', 0.02, 0.08),
    only('c3', 'm-cheap', 0.05, 0.2),
    // lists mint-a with its port written out (another string for the same mint) and refuses any other spelling
    { name: 'e1', announce: false, mints: ['mint-a'], mintSpelling: 'explicit-port', knobs: { foreignMint: 'refuse' }, models: [model('m-port', 0.01, 0.04)] },
    // an overcharger, cheapest on paper
    // (the answers are 100 tokens for max_tokens 200: the token has room for the overcharge, as
    // routine requests do - a token sized exactly to a request caps what an overcharger can take)
    only('o1', 'm-over', 0.01, 0.04, { knobs: { overchargeFactor: 2, completionTokens: 100 } }),
    only('o2', 'm-over', 0.014, 0.056, { knobs: { completionTokens: 100 } }),
    // failover: upstream 5xx, a timeout, a refused connection
    only('f1', 'm-5xx', 0.01, 0.04, { knobs: { failureRate: 1, failureStatus: 503 } }),
    only('f2', 'm-5xx', 0.02, 0.08),
    only('t1', 'm-timeout', 0.01, 0.04, { knobs: { timeout: true } }),
    only('t2', 'm-timeout', 0.02, 0.08),
    only('d1', 'm-dead', 0.01, 0.04),
    only('d2', 'm-dead', 0.02, 0.08),
    // mid-stream drop
    only('s1', 'm-drop', 0.01, 0.04, { knobs: { midStreamDrop: 2 } }),
    only('s2', 'm-drop', 0.02, 0.08),
    // upstream errors after redemption: 429 and 402 (out of credit)
    only('r1', 'm-429', 0.01, 0.04, { knobs: { rateLimit: { retryAfterSec: 30 } } }),
    only('r2', 'm-429', 0.02, 0.08),
    only('u1', 'm-u402', 0.01, 0.04, { knobs: { upstreamError: { status: 402 } } }),
    only('u2', 'm-u402', 0.02, 0.08),
    // the node's own 402 (and 413 on a pre-0.4.2 node) before redemption
    // (prices doubled after the listing was read: the node checks a bigger token; at these sizes
    // the charge stays within the tolerance of a whole-sat rounding)
    only('p1', 'm-topup', 0.01, 0.04, { knobs: { priceChange: { factor: 2 } } }),
    only('p2', 'm-topup', 0.02, 0.08),
    only('v1', 'm-413', 0.01, 0.04, { version: '0.4.1', knobs: { priceChange: { factor: 2 } } }),
    only('k1', 'm-cap', 0.01, 0.04),
    only('k2', 'm-cap', 0.1, 0.4),
    // the breaker
    // (b2 is ten times b1's price, so b1's poor record alone never ranks it below b2: the breaker decides)
    only('b1', 'm-breaker', 0.01, 0.04, { knobs: { failureRate: 1 } }),
    only('b2', 'm-breaker', 0.1, 0.4),
    // missing usage
    only('n1', 'm-nousage', 0.01, 0.04, { knobs: { noUsage: true } }),
    // invalid change
    only('i1', 'm-badchange', 0.01, 0.04, { knobs: { invalidChange: 'spent' } }),
    only('i2', 'm-badchange', 0.02, 0.08),
    // overpay within the caller's caps: the wallet holds a single 8 sat proof at mint-c
    { name: 'x1', announce: false, mints: ['mint-c'], models: [model('m-overpay', 0.01, 0.04)] },
  ],
};

let world: World;
let h: Harness;
const P = (name: string): TestProvider => world.provider(name);
const served = (requestId: string) => h.ledger.get(requestId)!;
const idOf = (name: string) => h.market.providers().find((p) => p.url === P(name).url)!.id;
const servedBy = (requestId: string) => world.providers.find((p) => p.url === served(requestId).providerUrl)?.name;
/** The request was answered (its error, if any, shown). */
const ok = <T extends { errorWith?: { message: string } }>(r: T): T => {
  assert.equal(r.errorWith, undefined, r.errorWith?.message);
  return r;
};

before(async () => {
  world = await startWorld(SCENARIO);
  h = await harness(world, { fund: { 'mint-a': 6000, 'mint-b': 2000, 'mint-c': 8 }, options: { topUp: { maxCount: 2 } } });
});

after(async () => {
  await h?.close();
  await world?.stop();
});

test('the cheapest provider serves, paid with a token naming its mint exactly as it lists it (trailing slash)', async () => {
  const r = ok(await h.ask('m-cheap'));
  assert.deepEqual(r.calls, ['accepted', 'response']);
  assert.equal(servedBy(r.requestId), 'c1');
  const [attempt] = h.ledger.attempts(r.requestId);
  assert.equal(attempt.mint, `${world.mint('mint-b').url}/`, 'the provider spelling, not ours');
  assert.ok(attempt.feeSat > 0, 'mint-b charges an input fee, carried by the token');
  assert.equal(attempt.chargedMsat, (attempt.sentSat - attempt.changeSat - attempt.feeSat) * 1000);
  assert.deepEqual(attempt.flags, []);
  assert.equal(P('c2').stats().requests + P('c3').stats().requests, 0);
  assert.equal(r.doneWith!.cost.charged_msat, attempt.chargedMsat);
  await h.accounted();
});

test('a JSON answer goes out only once its settlement is committed: whatever stops the daemon after, the books say what the client was told', async () => {
  // (Writing it before the COMMIT saves the client ~0.2 ms, but a kill in between leaves an answer
  // the client got recorded as failed after recovery: the chaos suite caught that.)
  const other = new Database(h.db.name, { readonly: true });
  try {
    let atAnswer: { status: unknown; inTransaction: boolean } | undefined;
    const r = ok(await h.ask('m-cheap', {
      onResponse: (done) => (atAnswer = { status: other.prepare('SELECT status FROM requests WHERE id = ?').pluck().get(done.requestId), inTransaction: h.db.inTransaction }),
    }));
    assert.deepEqual(atAnswer, { status: 'succeeded', inTransaction: false }, 'another connection already sees it settled');
    const row = served(r.requestId);
    assert.deepEqual(r.doneWith!.cost, { sent_sats: row.sentSat, change_sats: row.changeSat, charged_msat: row.chargedMsat, expected_msat: row.expectedMsat, reported_msat: row.reportedMsat });
    assert.deepEqual(r.doneWith!.flags, row.flags);
    await h.accounted();
  } finally {
    other.close();
  }
});

test('a provider listing its mint with the port written out is paid with a token spelled its way', async () => {
  const r = ok(await h.ask('m-port'));
  assert.equal(servedBy(r.requestId), 'e1');
  const [attempt] = h.ledger.attempts(r.requestId);
  assert.equal(attempt.mint, spellMint(world.mint('mint-a').url, 'explicit-port'), 'the provider spelling, not ours');
  assert.deepEqual(attempt.flags, []);
  assert.ok(attempt.changeSat > 0, 'redeemed at its mint, change returned');
  await h.accounted();
});

test('an overcharging provider is flagged with the figures and, once it has shown it, avoided for an honest one', async () => {
  const first = ok(await h.ask('m-over', { maxTokens: 200 }));
  assert.equal(servedBy(first.requestId), 'o1');
  const a = h.ledger.attempts(first.requestId)[0];
  assert.deepEqual(a.flags, ['overcharged']);
  // expected = usage x the price routed at: 0.01 x prompt + 0.04 x 100 sats, to the msat
  assert.equal(a.completionTokens, 100);
  assert.equal(a.expectedMsat, a.promptTokens! * 10 + 100 * 40);
  assert.ok(a.chargedMsat > allowedChargeMsat(a.expectedMsat!), `charged ${a.chargedMsat} msat, allowed ${allowedChargeMsat(a.expectedMsat!)}`);
  assert.ok(a.chargedMsat >= 2 * a.expectedMsat! - 1000, 'about twice the list price');
  assert.equal(a.reportedMsat !== null && a.chargedMsat - a.reportedMsat <= 999 && a.chargedMsat >= a.reportedMsat, true, 'it reports what it charged');
  const providers: string[] = [];
  for (let i = 0; i < 6; i++) providers.push(servedBy((await h.ask('m-over', { maxTokens: 200 })).requestId)!);
  assert.equal(providers.at(-1), 'o2', `served by ${providers.join(', ')}`);
  const health = h.routing.stats.views().find((v) => v.provider_id === served(first.requestId).provider);
  // (its observed ratio, from a neutral prior, is what ranked it below o2's real cost)
  assert.ok(health && health.charge_ratio! > 1.3, `o1's charge ratio ${health?.charge_ratio}`);
  await h.accounted();
});

test('failover on an upstream 5xx before the first byte: the refund is banked, the next provider serves, nothing is charged twice', async () => {
  const r = ok(await h.ask('m-5xx'));
  assert.deepEqual(r.calls, ['accepted', 'response']);
  assert.equal(servedBy(r.requestId), 'f2');
  assert.equal(r.acceptedWith!.failedAttempts, 1);
  await h.accounted();
  const [failed, serving] = h.ledger.attempts(r.requestId);
  assert.equal(failed.status, 'failed');
  assert.equal(failed.errorCode, 'upstream_error');
  assert.deepEqual(failed.flags, ['refunded']);
  assert.equal(failed.chargedMsat, 0, 'refunded in full');
  assert.equal(P('f1').stats().earnedMsat, 0);
  const row = served(r.requestId);
  assert.equal(row.chargedMsat, serving.chargedMsat, 'the request costs what the serving provider kept');
});

test('failover on a timeout: the next provider serves; the first token is settled through the mint and the refund endpoint', async () => {
  // Its own lifecycle with a short first-byte timeout (t1 never answers; 3 s leaves t2, which redeems at the mint first, room on a busy machine).
  const r = ok(await h.ask('m-timeout', { lifecycle: h.lifecycleWith({ timeouts: { firstByteMs: 3_000 } }) }));
  assert.equal(servedBy(r.requestId), 't2');
  const [failed] = h.ledger.attempts(r.requestId);
  assert.equal(failed.errorCode, 'timeout');
  await h.accounted();
  // The node took the token and still holds the request: the mint says spent, the refund endpoint "not yet".
  assert.ok(['refund_wait', 'refunded', 'lost'].includes(h.payments.outcome(failed.paymentId!)!.state), h.payments.outcome(failed.paymentId!)!.state);
});

test('failover on a refused connection: the unsent token comes back whole, the next provider serves', async () => {
  await P('d1').setDead(true);
  const r = ok(await h.ask('m-dead'));
  assert.equal(servedBy(r.requestId), 'd2');
  await h.accounted();
  const [failed] = h.ledger.attempts(r.requestId);
  assert.equal(failed.errorCode, 'unreachable');
  assert.equal(failed.chargedMsat, 0, 'reclaimed at the mint: the provider kept nothing');
  assert.equal(h.payments.outcome(failed.paymentId!)!.state, 'reclaimed');
});

test('a stream dropped after its first event ends with an explicit error, never a switch, and its charge is settled and reconciled', async () => {
  const r = await h.ask('m-drop', { stream: true });
  assert.deepEqual(r.calls, ['accepted', 'chunk', 'error']);
  assert.equal(r.errorWith!.code, 'provider_failed');
  assert.equal(P('s2').stats().requests, 0, 'no silent switch to another provider');
  const row = served(r.requestId);
  assert.equal(row.status, 'failed');
  const [a] = h.ledger.attempts(r.requestId);
  assert.equal(a.errorCode, 'stream_broken');
  assert.ok(a.firstByteAt !== null);
  assert.deepEqual(a.flags, ['usage_missing']);
  assert.equal(a.chargedMsat, (a.sentSat - a.changeSat - a.feeSat) * 1000);
  await h.accounted();
});

test('an upstream 429 after redemption: refund banked, the provider cools down (not a failure), the next one serves', async () => {
  const r = ok(await h.ask('m-429'));
  assert.equal(servedBy(r.requestId), 'r2');
  const [limited] = h.ledger.attempts(r.requestId);
  assert.equal(limited.errorCode, 'upstream_rate_limited');
  assert.deepEqual(limited.flags, ['refunded']);
  const again = await h.ask('m-429');
  assert.equal(P('r1').stats().requests, 1, 'cooling down: not asked again');
  assert.ok(served(again.requestId).skipped.some((s) => s.reason === 'rate_limited'));
  const breaker = h.routing.breakers.views().find((b) => b.provider_id === limited.providerId && b.model_id === null);
  assert.ok(!breaker || breaker.state === 'closed', 'a 429 is no failure');
  await h.accounted();
});

test('an upstream 402 after redemption is a provider failure with its refund banked, never a top-up', async () => {
  const r = ok(await h.ask('m-u402'));
  assert.equal(servedBy(r.requestId), 'u2');
  const [failed] = h.ledger.attempts(r.requestId);
  assert.equal(failed.httpStatus, 402);
  assert.equal(failed.errorCode, 'upstream_error');
  assert.deepEqual(failed.flags, ['refunded']);
  assert.equal(P('u1').stats().requests, 1, 'one paid request: no top-up loop');
  await h.accounted();
  assert.equal(h.ledger.attempts(r.requestId)[0].chargedMsat, 0);
});

test('the node asks for more before redeeming (402): one top-up to exactly what it asked, then it serves', async () => {
  const r = ok(await h.ask('m-topup'));
  assert.equal(servedBy(r.requestId), 'p1');
  assert.deepEqual(P('p1').stats().byStatus, { 402: 1, 200: 1 });
  const [a] = h.ledger.attempts(r.requestId);
  assert.equal(h.ledger.attempts(r.requestId).length, 1, 'the same attempt, its token replaced');
  assert.equal(h.payments.outcome(a.paymentId!)!.sentSat, a.sentSat);
  assert.deepEqual(a.flags, []);
  await h.accounted();
});

test('a pre-0.4.2 node answers 413 instead of 402: the same top-up', async () => {
  const r = ok(await h.ask('m-413'));
  assert.equal(servedBy(r.requestId), 'v1');
  assert.deepEqual(P('v1').stats().byStatus, { 413: 1, 200: 1 });
  await h.accounted();
});

test('the top-up cap stops topping up a provider that keeps asking: past it the next provider serves', async () => {
  // k1 raised its max_cost after the market read it: the node reserves ~10 sat more than satroute
  // sizes a token for (same token prices, same charge), so every first token is too small.
  P('k1').setPrice('m-cap', { maxCostSats: 26 });
  const by: string[] = [];
  let last = '';
  for (let i = 0; i < 3; i++) {
    last = ok(await h.ask('m-cap')).requestId;
    by.push(servedBy(last)!);
  }
  assert.deepEqual(by, ['k1', 'k1', 'k2'], 'two top-ups allowed in the window, then none');
  assert.equal(P('k1').stats().byStatus[402], 3);
  const [capped] = h.ledger.attempts(last);
  assert.equal(capped.errorCode, 'need_more');
  assert.match(capped.error!, /top-up cap/);
  await h.accounted();
});

test('the breaker opens after 3 failures; half-open, exactly one of 20 concurrent requests probes; its success closes it', async () => {
  for (let i = 0; i < 3; i++) assert.equal(servedBy((await h.ask('m-breaker')).requestId), 'b2');
  const b1 = () => h.routing.breakers.views().find((b) => b.provider_id === idOf('b1') && b.model_id === null)!;
  const first = h.ledger.get((await h.ask('m-breaker')).requestId)!.id;
  assert.equal(P('b1').stats().requests, 3, 'open: not asked the 4th time');
  assert.ok(served(first).skipped.some((s) => s.reason === 'breaker_open'));
  assert.equal(b1().state, 'open');

  P('b1').knobs.failureRate = 0;
  h.clock.advance(31_000);
  const before = P('b1').stats().requests;
  const all = await Promise.all(Array.from({ length: 20 }, () => h.ask('m-breaker')));
  assert.equal(P('b1').stats().requests - before, 1, 'exactly one probe');
  assert.equal(all.filter((r) => servedBy(r.requestId) === 'b1').length, 1);
  assert.ok(all.every((r) => r.doneWith), 'all 20 served');
  assert.equal(b1().state, 'closed');
  assert.equal(servedBy((await h.ask('m-breaker')).requestId), 'b1');
  await h.accounted();
});

test('missing usage is flagged: a JSON answer is refunded whole, a stream is charged the whole token', async () => {
  const plain = ok(await h.ask('m-nousage'));
  const [a] = h.ledger.attempts(plain.requestId);
  assert.deepEqual(a.flags, ['usage_missing']);
  assert.equal(a.expectedMsat, null);
  assert.equal(a.chargedMsat, 0, 'routstr bills 0 without usage and returns the token as change');
  const stream = ok(await h.ask('m-nousage', { stream: true }));
  const [s] = h.ledger.attempts(stream.requestId);
  assert.deepEqual(s.flags, ['usage_missing']);
  assert.equal(s.changeSat, 0);
  assert.equal(s.chargedMsat, (s.sentSat - s.feeSat) * 1000, 'a stream without usage keeps everything');
  await h.accounted();
});

test('proofs that cannot make the exact token: a swap at the mint, never a token above x-satroute-max-sats or the reservation', async () => {
  // The only proof at mint-c is one of 8 sat and the node checks a ~4 sat token: an overpaid token
  // would be 8 sat, and a node that keeps the whole token (a stream without usage, no change
  // returned) would take all of it - above the caller's cap of 6 and above what was reserved.
  const r = ok(await h.ask('m-overpay', { maxSats: 6 }));
  assert.equal(servedBy(r.requestId), 'x1');
  const row = served(r.requestId);
  const [a] = h.ledger.attempts(r.requestId);
  assert.ok(a.sentSat < 8, `sent ${a.sentSat} sat: the 8 sat proof went out whole`);
  assert.ok(a.sentSat <= 6, `sent ${a.sentSat} sat, above x-satroute-max-sats 6`);
  assert.ok(a.sentSat * 1000 <= row.reservedMsat, `sent ${a.sentSat} sat, reserved ${row.reservedMsat} msat`);
  assert.equal(h.payments.outcome(a.paymentId!)!.mintRoundTrip, true, 'a swap made the exact token');
  await h.accounted();
});

test('change that turns out spent is flagged late and the provider is demoted', async () => {
  const by: string[] = [];
  let firstId = '';
  for (let i = 0; i < 8 && by.at(-1) !== 'i2'; i++) {
    const r = ok(await h.ask('m-badchange'));
    firstId ||= r.requestId;
    by.push(servedBy(r.requestId)!);
    await h.accounted(); // the change swap runs: the late outcome arrives
  }
  const a = h.ledger.attempts(firstId)[0];
  assert.ok(a.flags.includes('change_invalid'), `flags ${a.flags}`);
  assert.equal(a.changeSat, 0, 'invalid change is not counted as returned');
  assert.equal(a.chargedMsat, (a.sentSat - a.feeSat) * 1000);
  assert.equal(by.at(-1), 'i2', `served by ${by.join(', ')}`);
});

test('stopping: a request that outlives the grace is canceled, its token settled, and new requests are refused', async () => {
  const lifecycle = h.lifecycleWith({});
  const before = P('t1').stats().redeemed;
  const running = h.ask('m-timeout', { lifecycle, provider: P('t1').url });
  while (P('t1').stats().redeemed === before) await new Promise((r) => setTimeout(r, 5));
  const drained = await lifecycle.drain(50);
  assert.equal(drained.canceled, 1);
  const r = await running;
  assert.equal(r.errorWith!.code, 'canceled');
  const row = served(r.requestId);
  assert.equal(row.status, 'canceled');
  assert.equal(h.ledger.attempts(r.requestId)[0].status, 'failed');
  const refused = await h.ask('m-timeout', { lifecycle });
  assert.equal(refused.errorWith!.status, 503);
  await h.accounted();
});
