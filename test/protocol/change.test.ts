import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEncodedToken, type Proof } from '@cashu/cashu-ts';
import { checkChange } from '../../protocol/change.ts';

const MINT = 'https://mint.example.com';
// Offline reading needs no valid signatures: proofs with the right shape and amounts.
const proofs = (...amounts: number[]): Proof[] =>
  amounts.map((amount, i) => ({ id: '009a1f293253e41e', amount, secret: `secret-${amount}-${i}`, C: '02' + 'ab'.repeat(32) }) as unknown as Proof);
const token = (mint: string, unit: string, ...amounts: number[]) => getEncodedToken({ mint, unit, proofs: proofs(...amounts) });

test('honest change (same mint in another spelling, same unit, within the payment) has no problem', () => {
  const c = checkChange(token(MINT, 'sat', 8, 2), token(`${MINT}/`, 'sat', 4, 1));
  assert.deepEqual(c, { mint: `${MINT}/`, unit: 'sat', amount: 5, claimedMsat: 5000, surplusMsat: 0, problems: [] });
});

test('change worth more than the whole payment is flagged with its surplus in msat', () => {
  const c = checkChange(token(MINT, 'sat', 8, 2), token(MINT, 'sat', 16));
  assert.deepEqual(c.problems, ['exceeds_payment']);
  assert.equal(c.surplusMsat, 6000);
  const msat = checkChange(token(MINT, 'sat', 1), token(MINT, 'msat', 1024));
  assert.deepEqual(msat.problems, ['other_unit', 'exceeds_payment'], 'compared across units in msat');
  assert.equal(msat.surplusMsat, 24);
});

test('change at another mint, change of no value, and garbage are each named', () => {
  assert.deepEqual(checkChange(token(MINT, 'sat', 8), token('https://rogue.example.com', 'sat', 4)).problems, ['other_mint']);
  assert.deepEqual(checkChange(token(MINT, 'sat', 8), token(MINT, 'sat')).problems, ['empty']);
  assert.deepEqual(checkChange(token(MINT, 'sat', 8), 'cashuBgarbage'), { claimedMsat: 0, surplusMsat: 0, problems: ['unreadable'] });
  // What we sent unreadable (never happens on our side): the change is still read, not compared.
  assert.deepEqual(checkChange('nonsense', token(MINT, 'sat', 4)).problems, []);
});
