// Reconciliation on crafted cases: the figures an owner reads in the audit, and the flags that
// tell an honest provider (rounding, BTC/USD drift) from one that takes too much.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normalizePrice, type ModelPrice } from '../../../protocol/pricing.ts';
import {
  DRIFT_TOLERANCE_PPM, SAT_ROUNDING_MSAT, allowedChargeMsat, expectedCostMsat, reconcile, type AttemptMoney,
} from '../../../daemon/requests/reconcile.ts';
import { chargeMsat, changeFor } from '../../world/provider/pricing.ts';
import { startWorld, type Scenario, type World } from '../../world/index.ts';
import type { ApiRequest } from '../../../daemon/requests/contract.ts';
import { Capture, harness, type Harness } from './lifecycle-fixture.ts';

// 0.01 sat per prompt token, 0.05 per completion token: 1000 + 200 tokens = 10 + 10 sat.
const PRICE = normalizePrice({ sats_pricing: { prompt: 0.01, completion: 0.05, max_cost: 60 } })!;
const USAGE = { promptTokens: 1000, completionTokens: 200 };

/** An attempt paid with a 40 sat token (1 sat input fee) whose node reported `reportedMsat`. */
function served(reportedMsat: number, extra: Partial<AttemptMoney> = {}): AttemptMoney {
  // The node credits 40 - 1 = 39 sat and returns 39 - ceil(reported / 1000) as change.
  const changeSat = 39 - Math.ceil(reportedMsat / 1000);
  return { state: 'succeeded', price: PRICE, usage: USAGE, sentSat: 40, feeSat: 1, changeSat, reportedMsat, ...extra };
}

test('an honest provider: charged, expected and reported agree and nothing is flagged', () => {
  const r = reconcile(served(20_000));
  assert.deepEqual(r, { chargedMsat: 20_000, surplusSat: 0, expectedMsat: 20_000, reportedMsat: 20_000, allowedMsat: 20_000 + 600 + 999, flags: [] });
});

test('the charge rounded up to a whole sat is not a mismatch; one sat more is', () => {
  // 20,001 msat reported: the node keeps ceil(20.001) = 21 sat.
  assert.deepEqual(reconcile(served(20_001)).flags, []);
  assert.equal(reconcile(served(20_001)).chargedMsat, 21_000);
  // Reported 20,000 but kept 21 sat: the change was short by a sat.
  assert.deepEqual(reconcile(served(20_000, { changeSat: 18 })).flags, ['cost_mismatch']);
  // Kept less than it reported (it could not take more than the token): a mismatch too.
  assert.deepEqual(reconcile(served(20_000, { changeSat: 20 })).flags, ['cost_mismatch']);
});

test('BTC/USD drift within the tolerance is not flagged', () => {
  // The node billed the upstream's USD cost at a BTC price 2.5 % lower than at our snapshot.
  const r = reconcile(served(20_500));
  assert.equal(r.chargedMsat, 21_000);
  assert.equal(r.expectedMsat, 20_000);
  assert.deepEqual(r.flags, []);
  // At the edge: 3 % drift, rounded up to the sat.
  assert.deepEqual(reconcile(served(20_600)).flags, []);
});

test('a provider charging 1.5x is flagged overcharged, with the figures', () => {
  const r = reconcile(served(30_000));
  assert.deepEqual(r, { chargedMsat: 30_000, surplusSat: 0, expectedMsat: 20_000, reportedMsat: 30_000, allowedMsat: 21_599, flags: ['overcharged'] });
  // One that also under-reports what it kept: both flags.
  assert.deepEqual(reconcile(served(20_000, { changeSat: 0 })).flags, ['overcharged', 'cost_mismatch']);
});

test('the tolerance is 3 % plus the sat rounding, exact in integers', () => {
  assert.equal(DRIFT_TOLERANCE_PPM, 30_000);
  assert.equal(SAT_ROUNDING_MSAT, 999);
  assert.equal(allowedChargeMsat(0), 999);
  assert.equal(allowedChargeMsat(1), 1 + 1 + 999); // the drift share rounds up
  assert.equal(allowedChargeMsat(1_000_000_000_000), 1_000_000_000_000 + 30_000_000_000 + 999);
});

test('no usage: flagged usage_missing, no expected figure, no overcharge verdict', () => {
  // Streaming without usage: the node keeps the whole token.
  const r = reconcile({ state: 'succeeded', price: PRICE, usage: null, sentSat: 30, feeSat: 1, changeSat: 0, reportedMsat: null });
  assert.deepEqual(r, { chargedMsat: 29_000, surplusSat: 0, expectedMsat: null, reportedMsat: null, allowedMsat: null, flags: ['usage_missing'] });
  // Non-streaming without usage: the node refunds everything.
  assert.equal(reconcile({ state: 'succeeded', price: PRICE, usage: null, sentSat: 30, feeSat: 1, changeSat: 29, reportedMsat: 0 }).chargedMsat, 0);
});

test('a failed attempt should cost nothing; refunded in full it charges 0, and the facts are kept', () => {
  const refunded = reconcile({ state: 'failed', price: PRICE, usage: null, sentSat: 30, feeSat: 1, changeSat: 29, reportedMsat: null, facts: ['refunded'] });
  assert.deepEqual(refunded, { chargedMsat: 0, surplusSat: 0, expectedMsat: 0, reportedMsat: null, allowedMsat: null, flags: ['refunded'] });
  // A 500 after redemption with no refund: the provider kept it; recovery recorded the loss.
  const lost = reconcile({ state: 'failed', price: PRICE, usage: null, sentSat: 30, feeSat: 1, changeSat: 0, reportedMsat: null, facts: ['lost'] });
  assert.deepEqual([lost.chargedMsat, lost.flags], [29_000, ['lost']]);
  // A pending attempt has no verdict yet.
  const pending = reconcile({ state: 'pending', price: PRICE, usage: null, sentSat: 30, feeSat: 1, changeSat: 0, reportedMsat: null });
  assert.deepEqual([pending.expectedMsat, pending.flags], [null, []]);
});

test('invalid change learned late raises the charge and can make it an overcharge', () => {
  const before = reconcile(served(20_000));
  const after = reconcile({ ...served(20_000), changeSat: 0, facts: ['change_invalid'] });
  assert.deepEqual(before.flags, []);
  assert.equal(after.chargedMsat, 39_000);
  assert.deepEqual(after.flags, ['overcharged', 'cost_mismatch', 'change_invalid']);
});

test('change worth more than was sent is no negative charge: charged 0, the surplus apart and flagged', () => {
  // A 40 sat token (1 sat fee) answered with 44 sat of change: the node "kept" -5 sat.
  const r = reconcile(served(20_000, { changeSat: 44 }));
  assert.equal(r.chargedMsat, 0, 'never negative: a generous provider must not look cheaper than free');
  assert.equal(r.surplusSat, 5);
  assert.deepEqual(r.flags, ['cost_mismatch', 'change_surplus']);
  // Exactly everything back (less the fee) is a zero charge and no surplus.
  const even = reconcile(served(20_000, { changeSat: 39 }));
  assert.deepEqual([even.chargedMsat, even.surplusSat, even.flags.includes('change_surplus')], [0, 0, false]);
});

// An embedding model: 0.02 sat per prompt token, no completion price, max_cost 100 sat.
const EMBED = normalizePrice({ sats_pricing: { prompt: 0.02, completion: 0, max_cost: 100 } })!;
const EMBED_USAGE = { promptTokens: 500, completionTokens: 0 };

test('an embedding billed per token (its upstream reports USD) is expected to cost its tokens, not max_cost', () => {
  // 500 tokens x 20 msat = 10 sat; the node reports 10,1xx msat (1 % BTC/USD drift) and keeps 11 sat of a 99 sat token
  const r = reconcile({ state: 'succeeded', price: EMBED, usage: EMBED_USAGE, sentSat: 99, feeSat: 0, changeSat: 88, reportedMsat: 10_100 });
  assert.equal(r.expectedMsat, 10_000);
  assert.deepEqual(r.flags, []);
});

test('an embedding provider charging more than its tokens is flagged overcharged, though under max_cost', () => {
  // 1.5x the tokens, reported as charged: 15 sat kept where 10 were due
  const r = reconcile({ state: 'succeeded', price: EMBED, usage: EMBED_USAGE, sentSat: 99, feeSat: 0, changeSat: 84, reportedMsat: 15_000 });
  assert.equal(r.expectedMsat, 10_000);
  assert.deepEqual(r.flags, ['overcharged']);
});

test("an embedding billed the node's flat reservation (no USD cost from its upstream) is expected at that reservation", () => {
  // routstr-core bills max_cost x 1000 x 0.99 = 99,000 msat when it must price a model lacking a rate itself
  const flat = reconcile({ state: 'succeeded', price: EMBED, usage: EMBED_USAGE, sentSat: 99, feeSat: 0, changeSat: 0, reportedMsat: 99_000 });
  assert.equal(flat.expectedMsat, 99_000);
  assert.deepEqual(flat.flags, []);
  // its sats max_cost drifts with BTC/USD like every price: 2 % lower is the same flat bill
  assert.equal(expectedCostMsat(EMBED_USAGE, EMBED, 97_020), 99_000);
  // a report well under the reservation is no flat bill: the tokens are expected
  assert.equal(expectedCostMsat(EMBED_USAGE, EMBED, 60_000), 10_000);
  // without a report the node's usual path (a USD cost) is assumed
  assert.equal(expectedCostMsat(EMBED_USAGE, EMBED), 10_000);
});

test('bad inputs are refused, not reconciled into a number', () => {
  assert.throws(() => reconcile(served(20_000, { sentSat: 1.5 })), RangeError);
  assert.throws(() => reconcile(served(20_000, { reportedMsat: -1 })), RangeError);
});

test("for any usage and price, an honest node's charge per the world provider is never flagged", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: 50_000 }),
      fc.double({ min: 1e-7, max: 0.5, noNaN: true }), fc.double({ min: 1e-7, max: 0.5, noNaN: true }),
      fc.integer({ min: 0, max: 3 }),
      (promptTokens, completionTokens, promptSats, completionSats, feeSat) => {
        const spec = { id: 'm', promptSatsPerToken: promptSats, completionSatsPerToken: completionSats };
        const price: ModelPrice = normalizePrice({ sats_pricing: { prompt: promptSats, completion: completionSats } })!;
        const cost = chargeMsat(spec, promptTokens, completionTokens, 1e-6);
        const credited = Math.ceil(cost.totalMsat / 1000) + 5; // token sized with room to spare
        const changeSat = changeFor(credited, 'sat', cost.totalMsat);
        const r = reconcile({ state: 'succeeded', price, usage: { promptTokens, completionTokens }, sentSat: credited + feeSat, feeSat, changeSat, reportedMsat: cost.totalMsat });
        assert.equal(r.expectedMsat, cost.totalMsat, 'our expected cost is the node formula');
        assert.deepEqual(r.flags, []);
      },
    ),
    { numRuns: 500, seed: 42 },
  );
});

// The same three bills from test/world providers (each mirrors routstr-core v0.4.5's
// cost_calculation.py), paid and reconciled through the request path as a user's request is.
describe('embeddings through the request path, against world providers', () => {
  const embedding = { id: 'm-embed', kind: 'embedding' as const, promptSatsPerToken: 0.02, completionSatsPerToken: 0, maxCostSats: 100 };
  const provider = (name: string, knobs: Record<string, unknown>) => ({ name, announce: false, mints: ['mint-a'], models: [embedding], knobs });
  const SCENARIO: Scenario = {
    seed: 7,
    mints: [{ name: 'mint-a' }],
    nwcBalanceSat: 0,
    providers: [
      provider('usd', { usdCost: true, usdDrift: 0.01 }),
      provider('over', { usdCost: true, overchargeFactor: 1.5 }),
      provider('flat', {}),
    ],
  };
  // 2,000 characters: 500 tokens at 20 msat = 10 sat
  const INPUT = 'embed me '.repeat(222) + 'ab';
  let world: World;
  let h: Harness;

  before(async () => {
    world = await startWorld(SCENARIO);
    h = await harness(world, { fund: { 'mint-a': 1000 } });
  });
  after(async () => {
    await h?.close();
    await world?.stop();
  });

  async function embed(provider: string) {
    const sink = new Capture();
    await h.lifecycle.handle(
      { client: h.client, endpoint: '/v1/embeddings', body: { model: 'm-embed', input: INPUT } as ApiRequest['body'], stream: false, provider, signal: new AbortController().signal, receivedAt: h.clock.now },
      sink,
    );
    assert.equal(sink.errorWith, undefined, sink.errorWith?.message);
    const [attempt] = h.ledger.attempts(sink.requestId);
    return attempt;
  }

  test('a provider billing the tokens (its upstream reports USD) shows them as expected, not max_cost, and is not flagged', async () => {
    const a = await embed('usd');
    assert.equal(a.promptTokens, 500);
    assert.equal(a.expectedMsat, 10_000);
    assert.equal(a.chargedMsat, 11_000, 'the tokens at 1 % drift, rounded up to a whole sat');
    assert.deepEqual(a.flags, []);
    await h.accounted();
  });

  test('a provider charging 1.5x the tokens of an embedding is flagged overcharged', async () => {
    const a = await embed('over');
    assert.equal(a.expectedMsat, 10_000);
    assert.equal(a.chargedMsat, 15_000);
    assert.deepEqual(a.flags, ['overcharged']);
    await h.accounted();
  });

  test("a node pricing an embedding itself bills its flat reservation, and that is what is expected", async () => {
    const a = await embed('flat');
    assert.equal(a.reportedMsat, 99_000);
    assert.equal(a.expectedMsat, 99_000);
    assert.equal(a.chargedMsat, 99_000);
    assert.deepEqual(a.flags, []);
    await h.accounted();
  });
});
