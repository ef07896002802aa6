import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TopUpCap } from '../../../daemon/requests/topup-cap.ts';

test('top-ups are capped per provider by count and by sats within the window, and allowed again once it has passed', () => {
  let now = 0;
  const cap = new TopUpCap({ maxCount: 2, maxSat: 100, windowMs: 60_000 }, () => now);
  assert.equal(cap.take('a', 10), true);
  assert.equal(cap.take('a', 10), true);
  assert.equal(cap.take('a', 10), false, 'a third in the window');
  assert.equal(cap.take('b', 10), true, 'another provider has its own allowance');
  assert.deepEqual(cap.used('a'), { count: 2, sat: 20 });
  now = 60_000;
  assert.equal(cap.take('a', 90), true, 'the window has passed');
  assert.equal(cap.take('a', 20), false, 'over the sats allowed in the window');
  assert.deepEqual(cap.used('a'), { count: 1, sat: 90 });
});

test('a cap of 0 turns top-ups off', () => {
  const cap = new TopUpCap({ maxCount: 0, maxSat: 1000, windowMs: 1000 });
  assert.equal(cap.take('a', 1), false);
});
