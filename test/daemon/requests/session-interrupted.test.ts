// The split of what a node's balance lost between requests a kill cut on one session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { splitCutCharge } from '../../../daemon/requests/session-interrupted.ts';

test('two cut requests share the charge by what each reserved; the odd msat goes to the larger one', () => {
  assert.deepEqual(splitCutCharge(1_000, [60_000, 30_000]), [667, 333]);
  assert.deepEqual(splitCutCharge(1_001, [30_000, 60_000]), [333, 668]);
  assert.deepEqual(splitCutCharge(90_000, [60_000, 30_000]), [60_000, 30_000], 'everything reserved: each its whole reservation');
  assert.deepEqual(splitCutCharge(0, [5, 7]), [0, 0]);
});

test('a remainder the largest reservation cannot hold goes to the next, never above what a request reserved', () => {
  assert.deepEqual(splitCutCharge(2, [1, 1, 1]), [1, 1, 0]);
  assert.deepEqual(splitCutCharge(5, [3, 0, 3]), [3, 0, 2]);
});

test('more than the requests reserved cannot be split', () => {
  assert.throws(() => splitCutCharge(10, [4, 5]), RangeError);
  assert.throws(() => splitCutCharge(1.5, [4, 5]), RangeError);
});

test('any split adds up exactly, stays within each reservation and follows the reservations (property)', () => {
  const reservations = fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { minLength: 1, maxLength: 8 });
  fc.assert(fc.property(reservations, fc.double({ min: 0, max: 1, noNaN: true }), (reserved, f) => {
    const sum = reserved.reduce((s, r) => s + r, 0);
    const total = Math.floor(sum * f);
    const shares = splitCutCharge(total, reserved);
    assert.equal(shares.reduce((s, x) => s + x, 0), total);
    shares.forEach((x, i) => {
      assert.ok(Number.isSafeInteger(x) && x >= 0 && x <= reserved[i], `share ${x} of reservation ${reserved[i]}`);
      // Within one msat of the exact pro-rata part, plus what a full neighbour could not hold.
      if (sum > 0) assert.ok(x >= Math.floor((total * reserved[i]) / sum) - 1, `share ${x} below its part`);
    });
  }));
});
