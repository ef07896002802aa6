import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '../../wallet/sqlite.ts';
import { migrateWallet } from '../../wallet/schema.ts';
import { ProofStore, toCashuProof, sumAmounts } from '../../wallet/store.ts';
import { Ledger } from '../../wallet/ledger.ts';
import { ProofStateError } from '../../wallet/errors.ts';

const MINT = 'http://127.0.0.1:1/mint';

function setup() {
  const db = openDatabase(':memory:');
  migrateWallet(db);
  migrateWallet(db); // idempotent
  let now = 1_000;
  const clock = () => now++;
  return { db, store: new ProofStore(db, clock), ledger: new Ledger(db, clock) };
}

let n = 0;
const proof = (amount: number) => ({ id: '00aa', amount, secret: `secret-${n++}`, C: '02ab', dleq: { e: 'e', s: 's', r: 'r' } });

test('a proof handed to one request cannot be handed to another', () => {
  const { store } = setup();
  const [a, b] = store.insertProofs([proof(1), proof(2)], MINT, 'sat', 'unspent', 'test');
  store.movePending([a.secret], 'request', 'req-1');
  assert.throws(() => store.movePending([b.secret, a.secret], 'request', 'req-2'), ProofStateError);
  // all or nothing: b stayed unspent
  assert.equal(store.get(b.secret)?.state, 'unspent');
  assert.deepEqual(store.selectUnspent(MINT, 'sat').map((p) => p.secret), [b.secret]);
});

test('pending proofs settle to spent or go back to unspent, and spent proofs stay spent', () => {
  const { store } = setup();
  const ps = store.insertProofs([proof(4), proof(8)], MINT, 'sat', 'unspent', 'test');
  store.movePending(ps.map((p) => p.secret), 'request', 'req-1');
  assert.deepEqual(store.pendingGroups().map((g) => [g.kind, g.ref, g.amount, g.count]), [['request', 'req-1', 12, 2]]);
  assert.deepEqual(store.markSpent('req-1'), { count: 2, amount: 12 });
  assert.throws(() => store.markSpent('req-1'), ProofStateError);
  assert.equal(store.releasePending('req-1'), 0);
  assert.equal(store.proofsOf('req-1').every((p) => p.state === 'spent'), true);

  const [c] = store.insertProofs([proof(16)], MINT, 'sat', 'unspent', 'test');
  store.movePending([c.secret], 'swap', 'swap-1');
  assert.equal(store.releasePending('swap-1'), 1);
  assert.equal(store.get(c.secret)?.state, 'unspent');
  assert.deepEqual(store.balances(), [{ mint: MINT, unit: 'sat', unspent: 16, pending: 0 }]);
});

test('a stored proof comes back in the shape cashu-ts spends, with its DLEQ', () => {
  const { store } = setup();
  const p = proof(32);
  const [s] = store.insertProofs([p], MINT, 'sat', 'unspent', 'test');
  const back = toCashuProof(store.get(s.secret)!);
  assert.equal(back.secret, p.secret);
  assert.equal(back.id, '00aa');
  assert.equal(sumAmounts([back]), 32);
  assert.deepEqual(back.dleq, p.dleq);
  assert.throws(() => store.insertProofs([p], MINT, 'sat', 'unspent', 'again'), ProofStateError);
});

test('a failing transition inside a transaction rolls back the ledger row written with it', () => {
  const { db, store, ledger } = setup();
  const [a] = store.insertProofs([proof(5)], MINT, 'sat', 'unspent', 'test');
  store.movePending([a.secret], 'request', 'r');
  assert.throws(() => db.transaction(() => {
    ledger.record({ kind: 'payment_sent', mint: MINT, unit: 'sat', amount: -5, ref: 'r' });
    store.movePending([a.secret], 'request', 'r2');
  })(), ProofStateError);
  assert.equal(ledger.list().length, 0);
});

test('the ledger is append-only and refuses amounts with the wrong sign', () => {
  const { db, ledger } = setup();
  ledger.record({ kind: 'funding', mint: MINT, unit: 'sat', amount: 100, ref: 'q1', evidence: { invoice: 'lnbc...' } });
  ledger.record({ kind: 'mint_fee', mint: MINT, unit: 'sat', amount: -1, ref: 's1' });
  assert.equal(ledger.record({ kind: 'mint_fee', mint: MINT, unit: 'sat', amount: 0 }), null);
  assert.throws(() => ledger.record({ kind: 'funding', mint: MINT, unit: 'sat', amount: -3 }));
  assert.throws(() => ledger.record({ kind: 'loss', mint: MINT, unit: 'sat', amount: 3 }));
  assert.throws(() => ledger.record({ kind: 'funding', mint: MINT, unit: 'sat', amount: 1.5 }));
  assert.throws(() => db.prepare('UPDATE wallet_ledger SET amount = 1').run(), /append-only/);
  assert.throws(() => db.prepare('DELETE FROM wallet_ledger').run(), /append-only/);
  assert.deepEqual(ledger.balances(), [{ mint: MINT, unit: 'sat', amount: 99 }]);
  assert.deepEqual(ledger.list({ kind: 'funding' })[0].evidence, { invoice: 'lnbc...' });
});
