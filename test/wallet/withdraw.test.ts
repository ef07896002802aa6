import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resumeMelts, withdraw } from '../../wallet/withdraw.ts';
import { verifyInvariant } from '../../wallet/invariant.ts';
import { InsufficientFundsError, WithdrawError } from '../../wallet/errors.ts';
import { fundNow, world } from './world.ts';

test('withdrawing pays the invoice and returns the unused fee reserve as change', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 1000);
  ln.knobs.routingFeeMsat = 1000; // 1 sat actual fee; the mint reserves 3 sat (1%)
  const invoice = ln.node('shop').createInvoice(300_000, 'coffee');
  const r = await withdraw(ctx, invoice.bolt11);
  assert.equal(r.state, 'paid');
  assert.equal(r.amount, 300);
  assert.equal(r.feeReserve, 3);
  assert.equal(r.lightningFee, 1);
  assert.equal(r.preimage, invoice.preimage);
  assert.ok(ln.lookup(invoice.paymentHash)?.paidAtMs);
  assert.equal(ctx.store.balances()[0].unspent, 1000 - 300 - 1);
  const change = ctx.store.selectUnspent(mint.url, 'sat').filter((p) => p.source === `melt:${r.quoteId}`);
  assert.equal(r.change, change.reduce((a, p) => a + p.amount, 0));
  assert.ok(r.change >= 2, 'the unused reserve came back as change');
  const kinds = ctx.ledger.list({ ref: r.quoteId }).map((x) => [x.kind, x.amount]).sort();
  assert.deepEqual(kinds, [['withdrawal', -300], ['withdrawal_fee', -1]]);
  assert.deepEqual(ctx.store.pendingGroups(), []);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('withdrawing more than the balance fails before any proof moves', async (t) => {
  const { ln, ctx } = await world(t);
  await fundNow(ctx, ln, 100);
  const invoice = ln.node('shop').createInvoice(99_000);
  await assert.rejects(withdraw(ctx, invoice.bolt11), (err: Error) => err instanceof InsufficientFundsError && /need 101 sat, have 100 sat/.test(err.message));
  assert.deepEqual(ctx.store.balances()[0], { mint: ctx.mints.defaultMint(), unit: 'sat', unspent: 100, pending: 0 });
});

test('a Lightning payment the mint cannot make leaves the balance untouched', async (t) => {
  const { ln, ctx } = await world(t);
  await fundNow(ctx, ln, 500);
  ln.knobs.failNextPayments = 1;
  const invoice = ln.node('shop').createInvoice(100_000);
  await assert.rejects(withdraw(ctx, invoice.bolt11), (err: Error) => err instanceof WithdrawError && /nothing was spent/.test(err.message));
  assert.equal(ctx.store.balances()[0].unspent, 500);
  assert.equal(ctx.store.balances()[0].pending, 0);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('a fee-charging mint: the input fee of a withdrawal is booked as mint_fee', async (t) => {
  const { ln, mint, ctx } = await world(t, { inputFeePpk: 1000 });
  await fundNow(ctx, ln, 256);
  const invoice = ln.node('shop').createInvoice(100_000);
  const r = await withdraw(ctx, invoice.bolt11);
  assert.equal(r.state, 'paid');
  assert.ok(r.inputFee >= 1);
  const rows = ctx.ledger.list({ ref: r.quoteId });
  assert.equal(rows.find((x) => x.kind === 'mint_fee')?.amount, -r.inputFee);
  assert.equal(mint.stats().inputFees, r.inputFee);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('a melt whose answer never came is settled from the mint on the next start, change included', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 1000);
  const w = await ctx.mints.wallet(mint.url);
  const original = w.completeMelt.bind(w);
  w.completeMelt = ((...args: Parameters<typeof original>) => {
    mint.knobs.loseResponseNext = 1;
    return original(...args);
  }) as typeof w.completeMelt;
  const invoice = ln.node('shop').createInvoice(200_000);
  const r = await withdraw(ctx, invoice.bolt11);
  w.completeMelt = original;
  assert.equal(r.state, 'pending');
  assert.ok(ctx.store.balances()[0].pending > 0);
  const [after] = await resumeMelts(ctx);
  assert.equal(after.state, 'paid');
  assert.ok(after.change > 0);
  assert.equal(ctx.store.balances()[0].pending, 0);
  assert.equal(ctx.store.balances()[0].unspent, 1000 - 200 - after.lightningFee);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
  assert.deepEqual(await resumeMelts(ctx), []);
});

test('withdrawing after a keyset rotation puts the change on the new keyset', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 600);
  const fresh = mint.rotateKeyset();
  const r = await withdraw(ctx, ln.node('shop').createInvoice(100_000).bolt11);
  assert.equal(r.state, 'paid');
  const change = ctx.store.selectUnspent(mint.url, 'sat').filter((p) => p.source === `melt:${r.quoteId}`);
  assert.ok(change.length > 0 && change.every((p) => p.keysetId === fresh));
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});

test('a melt whose change comes back larger than the books expect settles once, booking the surplus, instead of being retried for ever', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 1000);
  const w = await ctx.mints.wallet(mint.url);
  const original = w.completeMelt.bind(w);
  w.completeMelt = ((...args: Parameters<typeof original>) => {
    mint.knobs.loseResponseNext = 1;
    return original(...args);
  }) as typeof w.completeMelt;
  const r = await withdraw(ctx, ln.node('shop').createInvoice(200_000).bolt11);
  w.completeMelt = original;
  assert.equal(r.state, 'pending');
  // As if the mint kept less input fee than the wallet booked for this melt (mints differ on fees
  // for melts): its change is then more than inputs - input fee - amount.
  ctx.db.prepare('UPDATE wallet_melts SET input_fee = input_fee + 3 WHERE quote_id = ?').run(r.quoteId);
  const [after] = await resumeMelts(ctx);
  assert.equal(after.state, 'paid');
  assert.ok(after.lightningFee >= 0 && after.inputFee >= 0);
  assert.deepEqual(await resumeMelts(ctx), [], 'settled once, not retried');
  assert.equal(ctx.store.balances()[0].pending, 0);
  assert.equal(ctx.store.balances()[0].unspent, 1000 - 200 - mint.stats().lightningFees);
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});
