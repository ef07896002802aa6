// How far a token may overpay when the exact proofs are not at hand: never past a cap of the
// caller, since a node that keeps the whole token (a stream without usage) takes the overpayment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { overpayPolicy } from '../../../daemon/requests/attempt.ts';

const roomy = { maxCostMsat: 0, reservedMsat: 1_000_000, feeSat: 0 };

test('with room under every cap a token may overpay by its own value, at least 8 sat', () => {
  assert.deepEqual(overpayPolicy(3, roomy), { allowOverpay: true, maxOverpaySat: 8 });
  assert.deepEqual(overpayPolicy(40, roomy), { allowOverpay: true, maxOverpaySat: 40 });
});

test('the overpayment stays under the model max_cost, the caller max sats less the fee, and the reservation less the fee', () => {
  assert.equal(overpayPolicy(40, { ...roomy, maxCostMsat: 45_500 }).maxOverpaySat, 5, 'max_cost 45.5 sat: 5 sat over a 40 sat token');
  assert.equal(overpayPolicy(40, { ...roomy, maxSats: 50, feeSat: 2 }).maxOverpaySat, 8, 'max sats 50 - token 40 - fee 2');
  assert.equal(overpayPolicy(40, { ...roomy, reservedMsat: 43_999, feeSat: 1 }).maxOverpaySat, 2, 'reserved 43.999 sat, whole sats: 43 - 40 - 1');
  assert.equal(overpayPolicy(40, { maxCostMsat: 60_000, maxSats: 47, reservedMsat: 46_000, feeSat: 1 }).maxOverpaySat, 5, 'the tightest cap wins');
});

test('no room under a cap: exact tokens only (the wallet swaps at the mint instead)', () => {
  assert.deepEqual(overpayPolicy(40, { ...roomy, reservedMsat: 41_000, feeSat: 1 }), { allowOverpay: false, maxOverpaySat: 0 });
  assert.deepEqual(overpayPolicy(40, { ...roomy, maxSats: 40, feeSat: 1 }), { allowOverpay: false, maxOverpaySat: 0 }, 'a cap already short of the fee');
});
