import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { MintOperationError, Wallet, getEncodedToken, hasValidDleq, sumProofs, type Proof } from '@cashu/cashu-ts';
import { LightningNetwork } from './lightning.ts';
import { startMint, type MintOptions, type TestMint } from './mint.ts';

async function world(t: TestContext, opts: Partial<MintOptions> = {}, unit: 'sat' | 'msat' = 'sat') {
  const ln = opts.lightning ?? new LightningNetwork();
  const mint = await startMint({ lightning: ln, ...opts });
  t.after(() => mint.stop());
  const wallet = new Wallet(mint.url, { unit, requireSigDleq: true });
  await wallet.loadMint();
  return { ln, mint, wallet };
}

/** Mint `amount` through a paid Lightning invoice, as a user funding a wallet would. */
async function fund(ln: LightningNetwork, wallet: Wallet, amount: number): Promise<Proof[]> {
  const quote = await wallet.createMintQuoteBolt11(amount);
  ln.pay(quote.request);
  return wallet.mintProofsBolt11(amount, quote.quote);
}

const total = (proofs: Proof[]) => sumProofs(proofs).toNumber();

async function rejection(p: Promise<unknown>): Promise<MintOperationError> {
  const err = await p.then(
    () => assert.fail('expected the mint to refuse'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MintOperationError, `expected MintOperationError, got ${String(err)}`);
  return err;
}

describe('test mint through the cashu-ts Wallet', () => {
  test('paying the mint quote invoice lets the wallet mint proofs with verified DLEQ', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const quote = await wallet.createMintQuoteBolt11(100);
    assert.equal(quote.state, 'UNPAID');
    assert.equal(ln.lookup(ln.pay(quote.request).paymentHash)?.payee, mint.nodeId);
    assert.equal((await wallet.checkMintQuoteBolt11(quote.quote)).state, 'PAID');
    const proofs = await wallet.mintProofsBolt11(100, quote.quote);
    assert.equal(total(proofs), 100);
    const keyset = wallet.keyChain.getKeyset(wallet.keysetId);
    for (const p of proofs) assert.ok(p.dleq && hasValidDleq(p, keyset), 'every proof carries a valid DLEQ');
    assert.equal((await wallet.checkMintQuoteBolt11(quote.quote)).state, 'ISSUED');
    assert.equal(mint.stats().outstanding, 100);
  });

  test('send then receive swaps the token, and the same token received twice is refused as spent', async (t) => {
    const { ln, mint, wallet } = await world(t);
    const proofs = await fund(ln, wallet, 64 + 32 + 4);
    const { send, keep } = await wallet.send(37, proofs);
    assert.equal(total(send), 37);
    assert.equal(total(keep), 63);
    const token = getEncodedToken({ mint: mint.url, proofs: send, unit: 'sat' });
    const received = await wallet.receive(token);
    assert.equal(total(received), 37);
    const err = await rejection(wallet.receive(token));
    assert.equal(err.code, 11001);
    assert.ok(send.every((p) => mint.isSpent(p.secret)));
    assert.ok(received.every((p) => !mint.isSpent(p.secret)));
  });
});
