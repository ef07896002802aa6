import { test } from 'node:test';
import assert from 'node:assert/strict';
import { close, halfOpen, reopen, trip, type BreakerRecord } from '../../../daemon/route/breaker-state.ts';
import { IllegalTransitionError } from '../../../daemon/route/errors.ts';

const T0 = 1_800_000_000_000;

test('illegal transitions throw', () => {
  const r: BreakerRecord = { providerId: 'p', modelId: null, state: 'closed', failures: 0, reopens: 0, openedAt: null, openUntil: null, lastFailureAt: null, lastError: null, cooldownUntil: null, probe: null };
  assert.throws(() => halfOpen(r), IllegalTransitionError);
  assert.throws(() => reopen(r, T0, 1), IllegalTransitionError);
  assert.throws(() => close(r), IllegalTransitionError);
  trip(r, T0, 30_000);
  assert.throws(() => trip(r, T0, 30_000), IllegalTransitionError);
  assert.throws(() => close(r), IllegalTransitionError);
  halfOpen(r);
  assert.throws(() => halfOpen(r), IllegalTransitionError);
  close(r);
  assert.equal(r.state, 'closed');
  assert.equal(r.reopens, 0);
});

test('a failed probe re-opens for longer: the re-open count feeds the open time', () => {
  const r: BreakerRecord = { providerId: 'p', modelId: null, state: 'closed', failures: 3, reopens: 0, openedAt: null, openUntil: null, lastFailureAt: null, lastError: null, cooldownUntil: null, probe: null };
  trip(r, T0, 30_000);
  assert.deepEqual([r.state, r.openUntil], ['open', T0 + 30_000]);
  halfOpen(r);
  reopen(r, T0 + 30_000, 60_000);
  assert.deepEqual([r.state, r.reopens, r.openUntil], ['open', 1, T0 + 90_000]);
  halfOpen(r);
  close(r);
  assert.deepEqual([r.state, r.failures, r.reopens, r.openUntil], ['closed', 0, 0, null]);
});
