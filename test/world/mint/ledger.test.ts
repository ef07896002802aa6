// Keyset id versions and internal melts, as real mints do them (NUT-02 ids; nutshell settles a
// melt for one of its own invoices internally, with no fee reserve).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getEncodedToken, sumProofs, Wallet } from '@cashu/cashu-ts';
import { LightningNetwork } from '../lightning.ts';
import { startMint } from '../mint.ts';

test('a mint keeping version 01 keyset ids works with cashu-ts, short ids in cashuB tokens included', async (t) => {
  const ln = new LightningNetwork();
  const mint = await startMint({ lightning: ln, keysetIdVersion: '01' });
  t.after(() => mint.stop());
  assert.match(mint.activeKeysetId(), /^01[0-9a-f]{64}$/);
  const wallet = new Wallet(mint.url, { unit: 'sat' });
  await wallet.loadMint();
  const quote = await wallet.createMintQuoteBolt11(20);
  ln.pay(quote.request);
  const proofs = await wallet.mintProofsBolt11(20, quote.quote);
  const token = getEncodedToken({ mint: mint.url, unit: 'sat', proofs });
  assert.equal(sumProofs(await wallet.receive(token)).toNumber(), 20);
});

test("melting into one of the mint's own invoices is settled internally: no fee reserve, no routing fee", async (t) => {
  const ln = new LightningNetwork();
  ln.knobs.routingFeeMsat = 5000;
  const mint = await startMint({ lightning: ln });
  t.after(() => mint.stop());
  const wallet = new Wallet(mint.url, { unit: 'sat' });
  await wallet.loadMint();
  const funding = await wallet.createMintQuoteBolt11(50);
  ln.pay(funding.request);
  const proofs = await wallet.mintProofsBolt11(50, funding.quote);
  const own = await wallet.createMintQuoteBolt11(40);
  const melt = await wallet.createMeltQuoteBolt11(own.request);
  assert.equal(melt.fee_reserve.toNumber(), 0);
  const paid = await wallet.meltProofsBolt11(melt, proofs);
  assert.equal(sumProofs(paid.change).toNumber(), 10);
  assert.equal(sumProofs(await wallet.mintProofsBolt11(40, own.quote)).toNumber(), 40, 'the quote is paid and mints');
  assert.equal(mint.stats().lightningFees, 0);
});
