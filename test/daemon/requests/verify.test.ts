// `audit verify`'s per-request check against the real payment path: a provider of the local
// world paid with a wallet token, the attempt row written in the transaction that moves the
// proofs to pending. The books add up; an attempt whose charge does not is named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePrice } from '../../../protocol/pricing.ts';
import { RequestLedger } from '../../../daemon/requests/ledger.ts';
import { paymentFacts } from '../../../daemon/requests/payment-facts.ts';
import { verifyRequests } from '../../../daemon/requests/verify.ts';
import { paymentsWorld, testProvider, payProvider, requiredSat, MODEL } from '../../wallet/payments/fixture.ts';

const PRICE = normalizePrice({ sats_pricing: { prompt: MODEL.promptSatsPerToken, completion: MODEL.completionSatsPerToken } })!;

test('audit verify: paid requests add up to the wallet, and a charge that does not add up is named', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 500, mint: { inputFeePpk: 400 } });
  const provider = await testProvider(t, w.mint.url);
  const ledger = new RequestLedger(w.ctx.db);
  const facts = (id: string) => {
    const o = w.payments.outcome(id);
    return o && paymentFacts(o);
  };

  for (const id of ['r1', 'r2']) {
    ledger.open({ id, client: 'c', endpoint: '/v1/chat/completions', modelRequested: MODEL.id, stream: false, payment: 'xcashu' });
    const paymentId = `${id}.1`;
    const taken = await w.payments.takeToken({
      paymentId, mint: w.mint.url, amountSat: requiredSat(), providerUrl: provider.url,
      inTransaction: (tk) => ledger.startAttempt({ requestId: id, n: 1, providerId: 'p1', providerUrl: provider.url, modelId: MODEL.id, mint: tk.mint, paymentId, price: PRICE, sentSat: tk.sentSat, feeSat: tk.feeSat }),
    });
    assert.ok(taken.feeSat > 0, 'the mint charges an input fee');
    const res = await payProvider(provider, taken.token);
    assert.equal(res.status, 200);
    const outcome = w.payments.settle(paymentId, res.change);
    const f = paymentFacts(outcome);
    const usage = res.body.usage as { prompt_tokens: number; completion_tokens: number; cost: { total_msats: number } };
    const a = ledger.finishAttempt(id, 1, {
      status: 'succeeded', httpStatus: 200, usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens },
      reportedMsat: usage.cost.total_msats, changeSat: f.returnedSat, lostSat: f.lostSat, facts: f.facts,
    });
    assert.deepEqual(a.flags, [], 'an honest provider is not flagged');
    ledger.finishRequest(id, { status: 'succeeded', modelServed: MODEL.id });
  }

  const ok = verifyRequests(w.ctx.db, facts);
  assert.deepEqual(ok, { ok: true, requests: 2, attempts: 2, open: 0, differences: [] });

  // A bug (or a hand edit) books r2's attempt 1 sat cheaper than its token, change and fee say.
  w.ctx.db.prepare("UPDATE attempts SET charged_msat = charged_msat - 1000 WHERE request_id = 'r2'").run();
  const bad = verifyRequests(w.ctx.db, facts);
  assert.equal(bad.ok, false);
  assert.equal(bad.differences.length, 2);
  assert.match(bad.differences[0], /^request r2 attempt 1 \(p1\): charged \d+ msat, but sent \d+ - change \d+ - fee \d+ sat = \d+ msat$/);
  assert.match(bad.differences[1], /^request r2: charged_msat \d+, but its attempts add up to \d+$/);

  // Consistent inside the ledger, but not what the wallet got back.
  w.ctx.db.prepare("UPDATE attempts SET charged_msat = charged_msat + 1000 WHERE request_id = 'r2'").run();
  const r1 = ledger.attempts('r1')[0];
  ledger.applyLate('r1.1', { changeSat: r1.changeSat + 1 });
  const mismatch = verifyRequests(w.ctx.db, facts);
  assert.deepEqual(mismatch.differences, [`request r1 attempt 1 (p1): change ${r1.changeSat + 1} sat, but the wallet got ${r1.changeSat} sat back for payment r1.1`]);
});

test('audit verify: a token still out is counted open, not compared; a missing payment is named', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 200 });
  const ledger = new RequestLedger(w.ctx.db);
  ledger.open({ id: 'out', client: 'c', endpoint: '/v1/chat/completions', modelRequested: MODEL.id, stream: false, payment: 'xcashu' });
  await w.payments.takeToken({
    paymentId: 'out.1', mint: w.mint.url, amountSat: 10, providerUrl: 'http://p.test',
    inTransaction: (tk) => ledger.startAttempt({ requestId: 'out', n: 1, providerId: 'p', providerUrl: 'http://p.test', modelId: MODEL.id, mint: tk.mint, paymentId: 'out.1', price: PRICE, sentSat: tk.sentSat, feeSat: tk.feeSat }),
  });
  ledger.open({ id: 'ghost', client: 'c', endpoint: '/v1/chat/completions', modelRequested: MODEL.id, stream: false, payment: 'xcashu' });
  ledger.startAttempt({ requestId: 'ghost', n: 1, providerId: 'p', providerUrl: 'http://p.test', modelId: MODEL.id, mint: w.mint.url, paymentId: 'ghost.1', price: PRICE, sentSat: 5, feeSat: 0 });
  const report = verifyRequests(w.ctx.db, (id) => {
    const o = w.payments.outcome(id);
    return o && paymentFacts(o);
  });
  assert.equal(report.open, 1);
  assert.deepEqual(report.differences, ['request ghost attempt 1 (p): the wallet has no payment ghost.1']);
});
