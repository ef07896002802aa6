import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toOutcome } from '../../../wallet/payments/outcome.ts';
import type { PaymentRow } from '../../../wallet/payments/rows.ts';
import type { ChangeRow } from '../../../wallet/payments/change-queue.ts';
import { sat } from '../../../protocol/units.ts';

const ROW: PaymentRow = {
  paymentId: 'r1.1', mint: 'http://mint', tokenMint: 'http://mint/', unit: 'sat', providerUrl: 'http://p', token: 'cashuB...',
  amountSat: sat(100), sentSat: sat(128), feeSat: sat(0), overpaySat: sat(28), roundtrip: false, state: 'settled', flags: [], evidence: null, attempts: 0, nextAt: null, createdAt: 0, tokenAt: 0, providerVersion: null, sessionId: null,
};
const change = (c: Partial<ChangeRow>): ChangeRow => ({ id: 1, paymentId: 'r1.1', kind: 'change', mint: 'http://mint', unit: 'sat', claimed: 0, state: 'received', received: 0, fee: 0, attempts: 1, error: null, evidence: null, ...c });

test('change handed back in msat for a sat payment is reckoned in sat, so a provider cannot look 1000x cheaper', () => {
  const row = ROW;
  const change1 = change({ unit: 'msat', claimed: 30_500, received: 30_500 });
  const o = toOutcome(row, [change1]);
  assert.equal(o.changeClaimedSat, 30);
  assert.equal(o.changeReceivedSat, 30);
  assert.equal(o.changeReceivedMsat, 30_500, 'exact in msat');
  assert.equal(o.sentSat - o.changeReceivedSat, 98, 'kept by the provider: 128 sent - 30 change');
});

test('change in several tokens of either unit is summed exactly before it is rounded to whole sats', () => {
  const o = toOutcome(ROW, [
    change({ id: 1, unit: 'msat', claimed: 1_600, received: 1_600 }),
    change({ id: 2, unit: 'msat', claimed: 1_600, received: 1_500, fee: 100 }),
    change({ id: 3, unit: 'sat', claimed: 4, received: 4 }),
  ]);
  assert.equal(o.changeReceivedMsat, 7_100);
  assert.equal(o.changeReceivedSat, 7, '3.1 sat of msat change and 4 sat: 7 whole sats, not 1 + 1 + 4');
  assert.equal(o.changeClaimedSat, 7);
});

test('change the mint refused is flagged and counts for nothing; change still waiting is pending', () => {
  const o = toOutcome(ROW, [change({ id: 1, claimed: 9, state: 'invalid', received: null, fee: null }), change({ id: 2, claimed: 5, state: 'queued', received: null, fee: null })]);
  assert.deepEqual(o.flags, ['change_invalid']);
  assert.equal(o.changeReceivedSat, 0);
  assert.equal(o.changeClaimedSat, 14);
  assert.equal(o.changePending, true);
});
