import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { migrate, openDatabase } from '../../../db/sqlite.ts';
import { WALLET_MIGRATIONS } from '../../../wallet/schema.ts';
import { PAYMENTS_MIGRATIONS, migratePayments } from '../../../wallet/payments/schema.ts';
import { PaymentRows } from '../../../wallet/payments/rows.ts';
import { SwapRecords } from '../../../wallet/swap/records.ts';
import { tempDir } from '../world.ts';

test('a data directory from before payment ids keeps its payments, their change and the retry state of their swaps', (t) => {
  const db = openDatabase(path.join(tempDir(t), 'satroute.sqlite'));
  t.after(() => db.close());
  // The tables as the first version left them.
  migrate(db, 'wallet', WALLET_MIGRATIONS.slice(0, 1));
  migrate(db, 'payments', PAYMENTS_MIGRATIONS.slice(0, 1));
  db.prepare(`INSERT INTO payments (request_id, mint, unit, provider_url, token, amount, sent, fee, overpay, roundtrip, state, created_at, updated_at)
    VALUES ('req-1', 'http://mint', 'sat', 'http://provider', 'cashuBold', 40, 42, 1, 1, 0, 'settled', 1, 1)`).run();
  db.prepare(`INSERT INTO payment_change (request_id, kind, mint, unit, token, claimed, state, next_at, created_at, updated_at)
    VALUES ('req-1', 'change', 'http://mint', 'sat', 'cashuBchange', 5, 'swapping', 0, 1, 1)`).run();
  const legacyOutputs = JSON.stringify({ keysetId: '00aa', keep: JSON.stringify([{ blindedMessage: { amount: 4, B_: '02ab', id: '00aa' }, blindingFactor: '01', secret: '0102' }]) });
  db.prepare(`INSERT INTO wallet_swaps (id, mint, unit, purpose, ref, state, foreign_inputs, inputs_amount, fee, outputs, created_at, updated_at)
    VALUES ('swap_change', 'http://mint', 'sat', 'change', 'req-1', 'prepared', '[]', 5, 1, ?, 1, 1)`).run(legacyOutputs);
  db.prepare(`INSERT INTO payment_swaps (swap_id, attempts, in_flight, uncertain, next_at) VALUES ('swap_change', 3, 1, 0, 1234)`).run();
  db.prepare(`INSERT INTO wallet_swaps (id, mint, unit, purpose, ref, state, foreign_inputs, inputs_amount, fee, outputs, created_at, updated_at)
    VALUES ('swap_receive', 'http://mint', 'sat', 'receive', NULL, 'prepared', '[]', 7, 0, ?, 2, 2)`).run(legacyOutputs);

  migratePayments(db);

  const payment = new PaymentRows(db, Date.now).require('req-1');
  assert.deepEqual(
    [payment.paymentId, payment.mint, payment.tokenMint, payment.providerUrl, payment.amountSat, payment.sentSat, payment.feeSat, payment.overpaySat, payment.state],
    ['req-1', 'http://mint', 'http://mint', 'http://provider', 40, 42, 1, 1, 'settled'],
  );
  assert.deepEqual(db.prepare('SELECT payment_id, claimed, state FROM payment_change').all(), [{ payment_id: 'req-1', claimed: 5, state: 'swapping' }]);
  const swaps = new SwapRecords(db, Date.now);
  const change = swaps.get('swap_change')!;
  assert.deepEqual([change.attempts, change.inFlight, change.uncertain, change.nextAt], [3, true, false, 1234]);
  assert.equal(change.outputs[0].blindedMessage.B_, '02ab', 'outputs stored the old way still read');
  assert.equal(swaps.get('swap_receive')!.uncertain, true, 'a receive left prepared may have been sent');
  assert.equal(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'payment_swaps'`).get(), undefined);
  // The rebuilt change table takes the new kind and state, and goes on numbering after the old rows.
  const id = db.prepare(`INSERT INTO payment_change (payment_id, kind, mint, unit, token, claimed, state, next_at, created_at, updated_at)
    VALUES ('sess-1', 'session_refund', 'http://mint', 'sat', 'cashuBrefund', 9, 'own', 0, 2, 2)`).run().lastInsertRowid;
  assert.equal(Number(id), 2);
  migratePayments(db); // idempotent
});
