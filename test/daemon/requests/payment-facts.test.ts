// The wallet's story of a payment, read in the ledger's terms: what came back from the
// provider's side, what was lost on ours, and which money flags it earns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paymentFacts } from '../../../daemon/requests/payment-facts.ts';
import type { ChangeSummary, PaymentOutcome } from '../../../wallet/payments/index.ts';

type Loose<T> = { [K in keyof T]: T[K] extends number ? number : T[K] };
// Plain numbers for the Sat-typed fields: this test reads the facts, not the units.
const outcome = (state: PaymentOutcome['state'], changes: Partial<Loose<ChangeSummary>>[] = []): PaymentOutcome => ({
  paymentId: 'r.1', mint: 'http://mint', tokenMint: 'http://mint', unit: 'sat', providerUrl: 'http://p', state, amountSat: 37, sentSat: 40, feeSat: 1, overpaySat: 2,
  mintRoundTrip: false, changeClaimedSat: 0, changeReceivedSat: 0, changeReceivedMsat: 0, changeFeeSat: 0, changePending: false, flags: [], evidence: null,
  changes: changes.map((c) => ({ kind: 'change', state: 'received', claimedSat: 0, receivedSat: null, feeSat: null, error: null, evidence: null, ...c })),
} as unknown as PaymentOutcome);

test('settled with change: the change claimed comes back, queued or received', () => {
  const f = paymentFacts(outcome('settled', [{ claimedSat: 12, state: 'queued' }, { claimedSat: 3, state: 'received' }]));
  assert.deepEqual(f, { sentSat: 40, feeSat: 1, returnedSat: 15, lostSat: 0, facts: [], final: true });
});

test('invalid change does not come back and is a fact; lost change came back but is lost on our side', () => {
  assert.deepEqual(paymentFacts(outcome('settled', [{ claimedSat: 12, state: 'invalid' }])), { sentSat: 40, feeSat: 1, returnedSat: 0, lostSat: 0, facts: ['change_invalid'], final: true });
  assert.deepEqual(paymentFacts(outcome('settled', [{ claimedSat: 12, state: 'lost' }])).lostSat, 12);
});

test('a token reclaimed unredeemed charges the provider nothing; refunds and losses are facts', () => {
  assert.equal(paymentFacts(outcome('reclaimed')).returnedSat, 39);
  const refunded = paymentFacts(outcome('refunded', [{ kind: 'refund', claimedSat: 39 }]));
  assert.deepEqual([refunded.returnedSat, refunded.facts], [39, ['refunded']]);
  assert.deepEqual(paymentFacts(outcome('lost')).facts, ['lost']);
  assert.equal(paymentFacts(outcome('pending')).final, false);
  assert.equal(paymentFacts(outcome('refund_wait')).final, false);
});
