import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countByAmount, defaultReserve, fillDenominations, needsRefill, planRefill, reserveDeficit, type ReserveConfig } from '../../../wallet/payments/reserve.ts';
import type { StoredProof } from '../../../wallet/store.ts';

let n = 0;
const proof = (amount: number, keysetId = 'k'): StoredProof => ({
  secret: `s${n++}`, mint: 'm', unit: 'sat', keysetId, amount, C: '02', dleq: null, witness: null, p2pkE: null,
  state: 'unspent', reasonKind: null, reasonRef: null, source: 'test', createdAt: 0,
});
const cfg: ReserveConfig = { targets: new Map([[1, 2], [2, 2], [4, 2]]), minCount: 1 };
const free = () => 0;

test('the reserve knows which small denominations are missing and when to refill', () => {
  const proofs = [proof(1), proof(2), proof(2), proof(4), proof(4), proof(64)];
  assert.deepEqual(reserveDeficit(countByAmount(proofs), cfg), [1]);
  assert.equal(needsRefill(countByAmount(proofs), cfg), false);
  assert.equal(needsRefill(countByAmount([proof(2), proof(4)]), cfg), true);
  assert.deepEqual(defaultReserve(8, 4).targets, new Map([[1, 4], [2, 4], [4, 4], [8, 4]]));
  assert.equal(defaultReserve(8, 4).minCount, 2);
});

test('a refill swaps one surplus proof into the missing denominations, keeping the reserve', () => {
  const big = proof(64);
  const plan = planRefill([proof(4), proof(4), big], cfg, free);
  assert.deepEqual(plan?.inputs, [big]);
  assert.deepEqual(plan?.denominations, [1, 1, 2, 2]);
  assert.equal(planRefill([proof(1), proof(1), proof(2), proof(2), proof(4), proof(4), proof(64)], cfg, free), null, 'nothing missing');
});

test('a refill pays the input fee out of what it splits', () => {
  const plan = planRefill([proof(8)], cfg, () => 1000);
  assert.deepEqual(plan?.denominations, [1, 1, 2, 2], '8 - 1 sat fee = 7 >= 6 wanted');
});

test('a token that cannot be made offline gets its exact denominations first', () => {
  const plan = planRefill([proof(1), proof(1), proof(2), proof(2), proof(4), proof(4), proof(32)], cfg, free, [16, 8, 1]);
  assert.deepEqual(plan?.denominations.slice(0, 3), [16, 8, 1]);
  assert.equal(planRefill([proof(1), proof(2)], cfg, free, [16]), null, 'not enough money');
});

test('a wallet smaller than its reserve breaks its largest proof into the missing small ones', () => {
  // Both proofs are within the reserve's targets, so neither is surplus.
  const plan = planRefill([proof(4), proof(2)], cfg, free);
  assert.equal(plan?.inputs[0].amount, 4);
  assert.deepEqual(plan?.denominations, [1, 1, 2]);
  assert.equal(planRefill([proof(1)], cfg, free), null, 'nothing smaller to break it into');
});

test('change fills missing denominations smallest first, within its amount', () => {
  assert.deepEqual(fillDenominations(5, [1, 2, 2, 4]), [1, 2, 2]);
  assert.deepEqual(fillDenominations(0, [1]), []);
});
