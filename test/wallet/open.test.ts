import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { databaseFile } from '../../db/sqlite.ts';
import { WalletLockedError } from '../../wallet/errors.ts';
import { openWallet, readBalances } from '../../wallet/open.ts';
import { InlineSwapEngine } from '../../wallet/swap/engine.ts';
import { fundNow, tempDir, testMint } from './world.ts';
import { LightningNetwork } from '../world/lightning.ts';

test('a data directory\'s wallet opens once at a time, with its payment path, and its balances read without it', async (t) => {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln);
  const dir = tempDir(t);
  assert.deepEqual(readBalances(dir), [], 'nothing to read before the first start');
  const first = openWallet({ dataDir: dir, mints: [mint.url], engine: new InlineSwapEngine() });
  assert.equal(first.db.name, databaseFile(dir));
  assert.throws(() => openWallet({ dataDir: dir, mints: [mint.url] }), WalletLockedError);
  await fundNow(first.wallet.ctx, ln, 40);
  const taken = await first.wallet.payments.takeToken({ paymentId: 'open.1', mint: mint.url, amountSat: 8, providerUrl: 'http://127.0.0.1:9' });
  assert.deepEqual(readBalances(dir).map((b) => [b.unit, b.unspent, b.pending]), [['sat', 40 - taken.sentSat, taken.sentSat]], 'read beside the writer');
  await first.close();
  assert.equal(fs.existsSync(databaseFile(dir)), true);
  const again = openWallet({ dataDir: dir, mints: [mint.url], engine: new InlineSwapEngine() });
  t.after(() => again.close());
  assert.equal(again.wallet.payments.outcome('open.1')!.state, 'pending');
});
