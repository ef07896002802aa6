import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideTopup, type TopupPolicy } from '../../wallet/topup.ts';

const HOUR = 3_600_000;
const policy: TopupPolicy = { thresholdSat: 1000, amountSat: 5000, minIntervalMs: HOUR, dailyCapSat: 12_000 };

test('above the threshold nothing is funded', () => {
  assert.deepEqual(decideTopup(policy, 0, 1000, []), { fund: false, reason: 'above_threshold' });
});

test('under the threshold the configured amount is funded', () => {
  assert.deepEqual(decideTopup(policy, 10 * HOUR, 999, []), { fund: true, amountSat: 5000 });
});

test('a second top-up within the interval waits until the interval has passed', () => {
  const d = decideTopup(policy, 10 * HOUR, 0, [{ atMs: 10 * HOUR - 60_000, amountSat: 5000 }]);
  assert.deepEqual(d, { fund: false, reason: 'too_soon', retryAtMs: 11 * HOUR - 60_000 });
});

test('the daily cap limits the last top-up and then stops them until the day rolls over', () => {
  const recent = [{ atMs: 0, amountSat: 5000 }, { atMs: 2 * HOUR, amountSat: 5000 }];
  assert.deepEqual(decideTopup(policy, 4 * HOUR, 0, recent), { fund: true, amountSat: 2000 });
  const capped = [...recent, { atMs: 4 * HOUR, amountSat: 2000 }];
  assert.deepEqual(decideTopup(policy, 6 * HOUR, 0, capped), { fund: false, reason: 'daily_cap', retryAtMs: 24 * HOUR });
  assert.deepEqual(decideTopup(policy, 24 * HOUR + 1, 0, capped), { fund: true, amountSat: 5000 });
});
