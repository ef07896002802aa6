// `satroute audit verify` as the owner runs it: a separate process on a data directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Wallet, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from '../../world/lightning.ts';
import { startMint } from '../../world/mint.ts';
import { fundNow } from '../../wallet/world.ts';
import { openWallet } from '../../../wallet/open.ts';
import { toCashuProof } from '../../../wallet/store.ts';
import { satroute } from './run.ts';


test('audit verify passes on a funded wallet and fails, naming the mint, when ecash was spent behind its back', async (t) => {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-audit-'));
  t.after(async () => {
    await mint.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const env = { SATROUTE_DATA_DIR: dir, SATROUTE_MINTS: mint.url };

  let stolen: Proof[];
  {
    const { wallet, close } = openWallet({ dataDir: dir, mints: [mint.url] });
    await fundNow(wallet.ctx, ln, 300);
    // Someone with a copy of the database spends one of our proofs elsewhere.
    stolen = wallet.store.selectUnspent(mint.url, 'sat').slice(-1).map(toCashuProof);
    await close();
  }

  const ok = await satroute(env, 'audit', 'verify', '--json');
  assert.equal(ok.code, 0, ok.stderr);
  const report = JSON.parse(ok.stdout);
  assert.equal(report.ok, true);
  assert.equal(report.totals[0].funded, 300);
  assert.equal(report.totals[0].unspent, 300);

  const thief = new Wallet(mint.url);
  await thief.loadMint();
  await thief.receive({ mint: mint.url, proofs: stolen, unit: 'sat' });

  const bad = await satroute(env, 'audit', 'verify');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stdout, /DIFFERENCE: .*spent/i);
  assert.equal(bad.stderr.trim().split('\n').length, 1, 'one line on stderr');
  assert.match(bad.stderr, /invariant does not hold/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
});
