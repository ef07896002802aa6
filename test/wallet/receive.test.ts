import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { verifyInvariant } from '../../wallet/invariant.ts';
import { InvalidTokenError, MintRejectedError, UntrustedMintError } from '../../wallet/errors.ts';
import type { MintOptions } from '../world/mint.ts';
import { CashuWallet } from '../../wallet/index.ts';
import { fundNow, outsideToken, testMint, walletOn, world } from './world.ts';

/** A test world with a wallet on it: `receive` swaps a token in through the wallet's swap service. */
async function receiveWorld(t: TestContext, opts: Partial<MintOptions> = {}) {
  const w = await world(t, opts);
  const wallet = walletOn(t, w);
  return { ...w, ctx: wallet.ctx, wallet, receiveToken: (token: string) => wallet.receive(token), resumeSwaps: () => wallet.swaps.resumeDue(true) };
}

test('receiving a token swaps it at the mint and credits its value', async (t) => {
  const { ln, mint, ctx, receiveToken, resumeSwaps } = await receiveWorld(t);
  const token = await outsideToken(ln, mint.url, 37);
  const r = await receiveToken(token);
  assert.deepEqual([r.amount, r.fee, r.received, r.mint], [37, 0, 37, mint.url]);
  assert.equal(ctx.store.balances()[0].unspent, 37);
  assert.deepEqual(ctx.ledger.list().map((x) => [x.kind, x.amount]), [['receive', 37]]);
  // The sender's proofs are spent now; ours are not.
  assert.ok(ctx.store.selectUnspent(mint.url, 'sat').every((p) => !mint.isSpent(p.secret)));
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('the same token received twice is refused as already spent and credits nothing', async (t) => {
  const { ln, mint, ctx, receiveToken, resumeSwaps } = await receiveWorld(t);
  const token = await outsideToken(ln, mint.url, 8);
  await receiveToken(token);
  await assert.rejects(receiveToken(token), (err: Error) => err instanceof MintRejectedError && /already spent/.test(err.message));
  assert.equal(ctx.store.balances()[0].unspent, 8);
  assert.equal((await verifyInvariant(ctx)).ok, true);
});

test('a token from an untrusted mint is refused with a clear message, without contacting that mint', async (t) => {
  const { ln, ctx, receiveToken } = await receiveWorld(t);
  const stranger = await testMint(t, ln, { name: 'stranger' });
  const token = await outsideToken(ln, stranger.url, 10);
  const before = stranger.requestCounts();
  await assert.rejects(receiveToken(token), (err: Error) => {
    assert.ok(err instanceof UntrustedMintError);
    assert.match(err.message, new RegExp(`mint ${stranger.url.replace(/[.:/]/g, '\\$&')} is not trusted; add it to "mints"`));
    return true;
  });
  assert.deepEqual(stranger.requestCounts(), before);
  assert.deepEqual(ctx.store.balances(), []);
  ctx.mints.trust(stranger.url); // the user adds the mint
  assert.equal((await receiveToken(token)).received, 10);
});

test('a fee-charging mint: the input fee is booked as mint_fee and the balance is value minus fee', async (t) => {
  const { ln, mint, ctx, receiveToken, resumeSwaps } = await receiveWorld(t, { inputFeePpk: 500 });
  const token = await outsideToken(ln, mint.url, 100); // 64+32+4: 3 inputs -> ceil(1.5) = 2
  const r = await receiveToken(token);
  assert.equal(r.fee, 2);
  assert.equal(ctx.store.balances()[0].unspent, 98);
  assert.deepEqual(ctx.ledger.list().map((x) => [x.kind, x.amount]).sort(), [['mint_fee', -2], ['receive', 100]]);
  assert.equal(mint.stats().inputFees, 2);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('a token minted on a keyset the mint has since rotated away is still received', async (t) => {
  const { ln, mint, ctx, receiveToken, resumeSwaps } = await receiveWorld(t);
  await ctx.mints.wallet(mint.url);
  const token = await outsideToken(ln, mint.url, 12);
  const fresh = mint.rotateKeyset();
  const r = await receiveToken(token);
  assert.equal(r.received, 12);
  assert.ok(ctx.store.selectUnspent(mint.url, 'sat').every((p) => p.keysetId === fresh));
});

test('garbage is refused as an invalid token', async (t) => {
  const { receiveToken } = await receiveWorld(t);
  await assert.rejects(receiveToken('cashuBnotatoken'), InvalidTokenError);
});

test('a receive whose answer was lost is resumed on the next start, and credits once', async (t) => {
  const { ln, mint, ctx, receiveToken, resumeSwaps } = await receiveWorld(t);
  const token = await outsideToken(ln, mint.url, 16);
  await ctx.mints.wallet(mint.url); // keys loaded; the mint goes down before the swap call
  await mint.setDown(true);
  await assert.rejects(receiveToken(token), /unavailable/);
  await mint.setDown(false);
  const recovered = await resumeSwaps();
  assert.deepEqual(recovered.map((r) => r.status), ['done']);
  assert.deepEqual(await resumeSwaps(), []);
  assert.equal(ctx.store.balances()[0].unspent, 16);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('a mint with sat and msat keeps a balance per unit, and msat tokens are received in msat', async (t) => {
  const { ln, mint, ctx, receiveToken, resumeSwaps } = await receiveWorld(t, { units: ['sat', 'msat'] });
  await receiveToken(await outsideToken(ln, mint.url, 5, 'sat'));
  const r = await receiveToken(await outsideToken(ln, mint.url, 2500, 'msat'));
  assert.deepEqual([r.unit, r.received], ['msat', 2500]);
  assert.deepEqual(ctx.store.balances().map((b) => [b.unit, b.unspent]), [['msat', 2500], ['sat', 5]]);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('a recovery pass while `wallet receive` is still swapping leaves that swap to it: credited once, no error', async (t) => {
  const { ln, mint, ctx, receiveToken, resumeSwaps } = await receiveWorld(t, { restore: false });
  const token = await outsideToken(ln, mint.url, 50);
  mint.knobs.latencyMs = 150; // the swap is at the mint while the wallet's periodic recovery runs
  const receiving = receiveToken(token);
  const deadline = Date.now() + 5000;
  while (!ctx.db.prepare(`SELECT 1 FROM wallet_swaps WHERE state = 'prepared'`).get()) {
    assert.ok(Date.now() < deadline, 'the swap was never prepared');
    await new Promise((r) => setTimeout(r, 5));
  }
  const resumed = await resumeSwaps();
  assert.deepEqual(resumed, [], 'the live swap is not resumed behind its caller');
  const r = await receiving;
  assert.equal(r.received, 50);
  mint.knobs.latencyMs = 0;
  assert.deepEqual(ctx.ledger.list().map((x) => [x.kind, x.amount]), [['receive', 50]]);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('a received token\'s DLEQ checks and swap run on the swap worker thread, off the request thread', async (t) => {
  const w = await world(t);
  const wallet = new CashuWallet({ db: w.ctx.db, dataDir: w.dir, mints: [w.mint.url] }); // the default engine: a worker
  t.after(() => wallet.stop());
  const r = await wallet.receive(await outsideToken(w.ln, w.mint.url, 21));
  assert.equal(r.received, 21);
  assert.ok(wallet.swaps.engine.busyMs() > 0, 'the swap worker did the work');
});

test('receiving a token made of the wallet\'s own proofs (one it sent out) is refused: the same sats would count twice', async (t) => {
  const { ln, mint, ctx, wallet } = await receiveWorld(t);
  await fundNow(ctx, ln, 100);
  const sent = await wallet.payments.takeToken({ paymentId: 'mine.1', mint: mint.url, amountSat: 30, providerUrl: 'http://127.0.0.1:9' });
  await assert.rejects(wallet.receive(sent.token), InvalidTokenError);
  assert.deepEqual(ctx.ledger.list({ kind: 'receive' }), []);
  assert.deepEqual([ctx.store.balances()[0].unspent, ctx.store.balances()[0].pending], [100 - sent.sentSat, sent.sentSat]);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});
