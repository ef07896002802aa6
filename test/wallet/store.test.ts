import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../db/sqlite.ts';
import { migrateWallet } from '../../wallet/schema.ts';
import { ProofStore, toCashuProof, sumAmounts } from '../../wallet/store.ts';
import { Ledger } from '../../wallet/ledger.ts';
import { ProofStateError } from '../../wallet/errors.ts';
import { countReads } from './store-reads.ts';

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

test('the unspent coins offered to selection (and their sums) always match the database: every transition, a rollback, another store, another connection', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-store-'));
  const db = openDatabase(path.join(dir, 'w.sqlite'));
  migrateWallet(db);
  const other = openDatabase(path.join(dir, 'w.sqlite'));
  t.after(() => { db.close(); other.close(); fs.rmSync(dir, { recursive: true, force: true }); });
  const store = new ProofStore(db);
  const offered = () => store.unspentCoins(MINT, 'sat').coins.map((c) => c.secret).sort();
  const truth = () => store.selectUnspent(MINT, 'sat').map((p) => p.secret).sort();
  // The spendable sums the router reads follow the same writes.
  const total = () => store.unspentTotals().find((b) => b.mint === MINT && b.unit === 'sat')?.unspent ?? 0;
  const truthTotal = () => store.selectUnspent(MINT, 'sat').reduce((a, p) => a + p.amount, 0);
  const check = (what: string) => {
    assert.deepEqual(offered(), truth(), what);
    assert.equal(total(), truthTotal(), `${what}: the unspent sum`);
  };

  const [a, b, c, d] = store.insertProofs([proof(1), proof(2), proof(4), proof(8)], MINT, 'sat', 'unspent', 'test');
  check('after insert');
  // takeToken's path: read, move in a committed transaction, then tell the cache.
  const { version } = store.unspentCoins(MINT, 'sat');
  db.transaction(() => store.movePending([a.secret], 'request', 'r1'))();
  store.unspentTaken(MINT, 'sat', version, [a.secret]);
  check('after a committed take');
  assert.equal(offered().includes(a.secret), false);

  // A take inside an outer transaction that rolls back after the cache was told, or read.
  for (const readInside of [false, true]) {
    const v2 = store.unspentCoins(MINT, 'sat').version;
    assert.throws(() => db.transaction(() => {
      store.movePending([b.secret], 'request', 'r2');
      store.unspentTaken(MINT, 'sat', v2, [b.secret]);
      if (readInside) assert.equal(store.unspentCoins(MINT, 'sat').coins.some((x) => x.secret === b.secret), false);
      throw new Error('boom');
    })(), /boom/);
    check('after a rollback');
    assert.equal(offered().includes(b.secret), true);
  }

  // A failing move (one proof not unspent) changes nothing.
  assert.throws(() => store.movePending([b.secret, a.secret], 'request', 'r3'), ProofStateError);
  check('after a refused move');
  store.releasePending('r1');
  check('after a release');
  store.markUnspentLost([c.secret], 'lost-1');
  check('after a loss');
  store.insertProofs([proof(16)], MINT, 'sat', { kind: 'swap', ref: 's1' }, 'test');
  store.releaseSecrets(store.pendingOf('s1').map((p) => p.secret));
  check('after a pending insert released');

  // Another ProofStore on the same connection, and another connection writing behind our back.
  new ProofStore(db).movePending([d.secret], 'send', 'x1');
  check('after a write through another store');
  other.prepare(`UPDATE wallet_proofs SET state = 'pending', reason_kind = 'send', reason_ref = 'x2' WHERE secret = ?`).run(b.secret);
  check('after a write on another connection');
  assert.equal(offered().includes(b.secret), false);
});

test('after a take, the spendable sums the router reads come from memory, less what was taken, and a mint taken to nothing drops out as the table says', (t) => {
  const db = openDatabase(':memory:');
  migrateWallet(db);
  t.after(() => db.close());
  const store = new ProofStore(db);
  const OTHER = 'http://127.0.0.1:2/mint';
  const [a, b] = store.insertProofs([proof(1), proof(4)], MINT, 'sat', 'unspent', 'test');
  store.insertProofs([proof(8)], OTHER, 'sat', 'unspent', 'test');
  const sumsRead = countReads(store, 'unspentTotals');
  const truth = () => db.prepare(`SELECT mint, unit, SUM(amount) AS unspent FROM wallet_proofs WHERE state = 'unspent' GROUP BY mint, unit ORDER BY mint, unit`).all();
  const take = (secrets: string[], ref: string) => {
    const { version } = store.unspentCoins(MINT, 'sat');
    db.transaction(() => store.movePending(secrets, 'request', ref))();
    store.unspentTaken(MINT, 'sat', version, secrets);
  };
  assert.deepEqual(store.unspentTotals(), truth());
  const reads = sumsRead();
  take([a.secret], 'r1');
  assert.deepEqual(store.unspentTotals(), truth(), 'the sums less the 1 sat taken');
  take([b.secret], 'r2');
  assert.deepEqual(store.unspentTotals(), truth(), 'the first mint has nothing left: no row, as the table has none');
  assert.deepEqual(store.unspentTotals().map((r) => r.mint), [OTHER]);
  assert.equal(sumsRead(), reads, 'no take made the sums be read again');
  // Any other write to the unspent set reads them again.
  store.releasePending('r1');
  assert.deepEqual(store.unspentTotals(), truth());
  assert.equal(sumsRead(), reads + 1);
});

test('after a swap\'s outputs are committed, the coins offered to selection and the sums include them without reading the table again; any other write in that commit reads them again', (t) => {
  const db = openDatabase(':memory:');
  migrateWallet(db);
  t.after(() => db.close());
  const store = new ProofStore(db);
  const OTHER = 'http://127.0.0.1:0/mint'; // sorts before MINT: a new row keeps the table's order
  const coinReads = countReads(store, 'coins');
  const sumReads = countReads(store, 'unspentTotals');
  // What a token carries comes from memory too: C, witness and p2pk_e as the table has them.
  const offered = (mint: string) => store.unspentCoins(mint, 'sat').coins.map((c) => [c.amountSat, c.secret, c.C, c.witness, c.p2pkE]);
  const truthCoins = (mint: string) => store.selectUnspent(mint, 'sat').map((p) => [p.amount, p.secret, p.C, p.witness, p.p2pkE]).sort((a, b) => (a[0] as number) - (b[0] as number));
  let k = 0;
  const held = (amount: number) => ({ ...proof(amount), C: `02${(++k).toString(16).padStart(64, '0')}`, ...(k % 2 ? { witness: { signatures: [`sig${k}`] }, p2pk_e: `03${k}0` } : {}) });
  const truthSums = () => db.prepare(`SELECT mint, unit, SUM(amount) AS unspent FROM wallet_proofs WHERE state = 'unspent' GROUP BY mint, unit ORDER BY mint, unit`).all();
  const check = (what: string) => {
    for (const m of [MINT, OTHER]) assert.deepEqual([...offered(m)].sort((a, b) => (a[0] as number) - (b[0] as number) || 0), truthCoins(m), `${what}: coins of ${m}`);
    assert.deepEqual(store.unspentTotals(), truthSums(), `${what}: sums`);
  };
  const swapDone = (mint: string, amounts: number[], also?: () => void) => {
    const version = store.unspentVersion();
    let stored: ReturnType<ProofStore['insertProofs']> = [];
    db.transaction(() => {
      stored = store.insertProofs(amounts.map(held), mint, 'sat', 'unspent', 'swap:test');
      also?.();
    })();
    store.unspentAdded(mint, 'sat', version, stored);
    return stored;
  };
  store.insertProofs([held(4), held(1)], MINT, 'sat', 'unspent', 'test');
  store.unspentCoins(OTHER, 'sat');
  check('before');
  const [coins0, sums0] = [coinReads(), sumReads()];
  swapDone(MINT, [2, 1, 8]);
  check('after a swap added to a mint');
  const after = store.unspentCoins(MINT, 'sat').coins.map((c) => c.amountSat);
  assert.deepEqual(after, [...after].sort((a, b) => a - b), 'smallest first, as selection reads them');
  swapDone(OTHER, [16]);
  check('after a swap at a mint with nothing unspent before');
  assert.deepEqual([coinReads(), sumReads()], [coins0, sums0], 'neither the coins nor the sums were read again');
  // A take in the same commit (a payment waiting for this split): read again.
  swapDone(MINT, [32], () => store.movePending([store.unspentCoins(MINT, 'sat').coins[0].secret], 'request', 'w1'));
  check('after a swap whose commit also took one of the proofs');
  assert.ok(coinReads() > coins0 && sumReads() > sums0);
});
