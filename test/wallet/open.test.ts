import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Checkpointer } from '../../db/checkpointer.ts';
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

test('a wallet opened with the WAL thread\'s flush uses it from the start: its recovery at open makes the quote\'s outputs durable through it', async (t) => {
  const ln = new LightningNetwork();
  const mint = await testMint(t, ln);
  const dir = tempDir(t);
  // A quote paid while no wallet ran: the next open's recovery mints it, its outputs made durable first.
  const before = openWallet({ dataDir: dir, mints: [mint.url], engine: new InlineSwapEngine() });
  const quote = await before.wallet.createFundingQuote(64);
  await before.close();
  ln.pay(quote.bolt11);

  let checkpointer: Checkpointer | undefined;
  const flushes: number[] = [];
  const opened = openWallet({
    dataDir: dir, mints: [mint.url], engine: new InlineSwapEngine(),
    flushFor: (db) => {
      checkpointer = Checkpointer.start(db);
      const cp = checkpointer;
      return async () => {
        flushes.push(opened.db.prepare("SELECT COUNT(*) FROM wallet_mint_quotes WHERE outputs IS NOT NULL").pluck().get() as number);
        await cp.flush();
      };
    },
  });
  t.after(async () => {
    await checkpointer?.stop();
    await opened.close();
  });
  assert.equal(opened.wallet.ctx.flush !== undefined, true, 'in the context before anything runs');
  const report = await opened.wallet.recover();
  assert.deepEqual(report.steps.filter((s) => s.error), []);
  assert.deepEqual(flushes, [1], 'one flush, after the outputs were committed and before the mint call');
  assert.equal(opened.wallet.balance().totalSat, 64);
});

test('without a flush (the CLI, durability "commit") a wallet\'s durable commits fall back to synchronous=FULL', async (t) => {
  const dir = tempDir(t);
  for (const opts of [{}, { flushFor: () => undefined }]) {
    const opened = openWallet({ dataDir: dir, mints: ['http://127.0.0.1:9'], engine: new InlineSwapEngine(), ...opts });
    assert.equal('flush' in opened.wallet.ctx, false, 'absent, not undefined');
    await opened.close();
  }
});
