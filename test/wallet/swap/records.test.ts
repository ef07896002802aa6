import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { SerializedOutputData } from '@cashu/cashu-ts';
import { openDatabase } from '../../../db/sqlite.ts';
import { migrateWallet } from '../../../wallet/schema.ts';
import { deserializeSwapOutputs, serializeSwapOutputs, SwapRecords } from '../../../wallet/swap/records.ts';
import { tempDir } from '../world.ts';

const out = (B_: string): SerializedOutputData => ({ blindedMessage: { amount: '2', B_, id: '00ff' }, blindingFactor: '0a', secret: '0b' }) as SerializedOutputData;

test('a swap\'s outputs come back as stored, older attempts\' outputs included', () => {
  const stored = { keysetId: '00ff', outputs: [out('02aa'), out('02bb')], earlier: [[out('02cc')]] };
  assert.deepEqual(deserializeSwapOutputs(serializeSwapOutputs(stored)), stored);
  assert.deepEqual(deserializeSwapOutputs(JSON.stringify({ keysetId: '00ff', keep: JSON.stringify([out('02aa')]) })), { keysetId: '00ff', outputs: [out('02aa')], earlier: [] }, 'the form rows had before');
});

test('new outputs after a keyset rotation keep the ones already sent, for restore', (t) => {
  const db = openDatabase(path.join(tempDir(t), 'satroute.sqlite'));
  t.after(() => db.close());
  migrateWallet(db);
  let now = 1000;
  const records = new SwapRecords(db, () => now);
  records.insert({ id: 'swap_1', mint: 'http://mint', unit: 'sat', purpose: 'change', ref: 'p.1', foreign: [], inputsAmount: 4, fee: 0, keysetId: '00ff', outputs: [out('02aa')] });
  assert.deepEqual(records.due(now), ['swap_1'], 'due at once');
  records.sending('swap_1');
  records.sending('swap_1'); // a second call while the first was still marked in flight (a crash)
  const rec = records.get('swap_1')!;
  assert.deepEqual([rec.attempts, rec.inFlight, rec.uncertain], [2, true, true]);
  records.replaceOutputs(rec, '00ee', [out('02dd')], 0);
  const after = records.get('swap_1')!;
  assert.deepEqual([after.keysetId, after.outputs, after.earlier], ['00ee', [out('02dd')], [[out('02aa')]]]);
  records.answered('swap_1', { uncertain: false, nextAt: now + 500 });
  assert.equal(records.get('swap_1')!.uncertain, true, 'once uncertain, uncertain until settled');
  assert.deepEqual(records.due(now), []);
  now += 500;
  assert.deepEqual(records.due(now), ['swap_1']);
});
