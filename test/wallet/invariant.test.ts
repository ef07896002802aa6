import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Wallet } from '@cashu/cashu-ts';
import { verifyInvariant } from '../../wallet/invariant.ts';
import { withdraw } from '../../wallet/withdraw.ts';
import { toCashuProof } from '../../wallet/store.ts';
import { toProofJson } from '../../wallet/swap/steps.ts';
import { fundNow, outsideToken, walletOn, world } from './world.ts';

test('after funding, receiving and withdrawing, the books balance to the sat and match the mint', async (t) => {
  const w = await world(t, { inputFeePpk: 200 });
  const { ln, mint, ctx } = w;
  await fundNow(ctx, ln, 2000);
  await walletOn(t, w).receive(await outsideToken(ln, mint.url, 300));
  await withdraw(ctx, ln.node('shop').createInvoice(700_000).bolt11);
  const r = await verifyInvariant(ctx, { checkMints: true });
  assert.equal(r.ok, true, r.differences.join('; '));
  const [m] = r.totals;
  assert.equal(m.funded, 2000);
  assert.equal(m.received, 300);
  assert.equal(m.withdrawn, 700);
  assert.equal(m.funded + m.received - m.withdrawn - m.withdrawalFees - m.paidToProviders - m.mintFees - m.losses, m.unspent + m.pending);
  assert.equal(m.mintCheck?.spentAmount, 0);
  assert.ok(m.mintFees > 0);
});

test('proofs spent behind the wallet\'s back are named as a difference', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 64);
  // Someone with a copy of the proofs (a restored backup, a bug) spends them elsewhere.
  const thief = new Wallet(mint.url);
  await thief.loadMint();
  await thief.receive(ctx.store.selectUnspent(mint.url, 'sat').map(toCashuProof));
  const r = await verifyInvariant(ctx, { checkMints: true });
  assert.equal(r.ok, false);
  assert.deepEqual(r.differences, [`${mint.url} (sat): 64 sat we count as unspent is spent at the mint`]);
});

test('a ledger that disagrees with the proofs is named with the difference', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 10);
  ctx.ledger.record({ kind: 'funding', mint: mint.url, unit: 'sat', amount: 5, ref: 'phantom' });
  const r = await verifyInvariant(ctx);
  assert.equal(r.ok, false);
  assert.match(r.differences[0], /ledger says 15 sat but proofs hold 10 unspent \+ 0 pending \(difference 5 sat\)/);
});

test('an unreachable mint makes the check fail as unverified rather than pass', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 10);
  await mint.setDown(true);
  const r = await verifyInvariant(ctx, { checkMints: true });
  assert.equal(r.ok, false);
  assert.match(r.differences[0], /could not ask the mint.*unverified/);
});

test('a token counted twice is named: change swapped in from our own pending proofs, and those proofs spent at the mint', async (t) => {
  const { ln, mint, ctx, dir } = await world(t);
  await fundNow(ctx, ln, 200);
  const wallet = walletOn(t, { ctx, dir, mint });
  const taken = await wallet.payments.takeToken({ paymentId: 'twice.1', mint: mint.url, amountSat: 40, providerUrl: 'http://127.0.0.1:9' });
  // What a wallet without the own-proof check did with an echo: swap our own token in as if it were someone else's.
  const own = ctx.store.pendingOf('twice.1');
  const done = await wallet.swaps.start({ mint: mint.url, unit: 'sat', purpose: 'receive', ref: 'echo', foreign: own.map((p) => toProofJson(toCashuProof(p))) });
  assert.equal(done.status, 'done');
  assert.equal(ctx.store.balances()[0].unspent + ctx.store.balances()[0].pending, 200 + taken.sentSat, 'the same sats, twice');
  const r = await verifyInvariant(ctx, { checkMints: true });
  assert.equal(r.ok, false);
  assert.ok(r.differences.some((d) => d.includes(`${taken.sentSat} sat pending for payment twice.1 is spent at the mint`)), r.differences.join('\n'));
  assert.ok(r.differences.some((d) => d.includes(`swapped in ${taken.sentSat} sat of our own proofs`) && d.includes('counted twice')), r.differences.join('\n'));
  // Offline, the ledger still balances: only the mint and the swap records tell.
  const offline = await verifyInvariant(ctx);
  assert.ok(offline.differences.some((d) => d.includes('counted twice')), offline.differences.join('\n'));
});

test('proofs the wallet moves while the mint is being asked (a swap finishing, a token taken) are not named as differences', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 64);
  const proofs = ctx.store.selectUnspent(mint.url, 'sat');
  // Spent at the mint: as by a provider redeeming a token the wallet is taking right now.
  const node = new Wallet(mint.url);
  await node.loadMint();
  await node.receive(proofs.map(toCashuProof));
  // The mint answers the check after the wallet has moved them (its books moved with them).
  const ask = ctx.mints.checkStates.bind(ctx.mints);
  ctx.mints.checkStates = async (...args: Parameters<typeof ask>) => {
    const states = await ask(...args);
    ctx.mints.checkStates = ask;
    ctx.db.transaction(() => ctx.store.movePending(proofs.map((p) => p.secret), 'request', 'r1'))();
    return states;
  };
  const r = await verifyInvariant(ctx, { checkMints: true });
  assert.deepEqual(r.differences, [], 'the snapshot asked about is gone: nothing to name');
  // Asked again, they are pending for a payment nothing explains: named.
  const again = await verifyInvariant(ctx, { checkMints: true });
  assert.deepEqual(again.differences, [`${mint.url} (sat): 64 sat pending for payment r1 is spent at the mint (not settled in our books)`]);
});
