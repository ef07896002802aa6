import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outsideToken } from '../world.ts';
import { paymentsWorld, newPayments, assertBooksBalance, balanceOf } from '../payments/fixture.ts';
import type { WalletContext } from '../../../wallet/context.ts';

/** The same context with a clock the test moves by hand. */
function manualClock(ctx: WalletContext) {
  let now = 1_700_000_000_000;
  return { ctx: { ...ctx, clock: () => now } as WalletContext, advance: (ms: number) => { now += ms; } };
}

async function changeWithLostAnswer(t: Parameters<typeof paymentsWorld>[0]) {
  const w = await paymentsWorld(t);
  const { ctx, advance } = manualClock(w.ctx);
  const payments = newPayments(t, ctx);
  const change = await outsideToken(w.ln, w.mint.url, 21);
  await ctx.mints.wallet(w.mint.url);
  payments.changeQueue.enqueue('lost-answer', 'change', change, w.mint.url);
  w.mint.knobs.loseResponseNext = 1; // the mint does the swap; its answer never arrives
  assert.equal((await payments.changeQueue.drain()).retrying, 1);
  return { ...w, ctx, advance, payments };
}

test('change whose swap answer was lost is received once, though the mint answers the re-sent swap "outputs already signed" (11003)', async (t) => {
  const { mint, ctx, advance, payments } = await changeWithLostAnswer(t);
  advance(1_000);
  await payments.changeQueue.drain();
  const row = payments.changeQueue.rowsOf('lost-answer')[0];
  assert.equal(row.state, 'received', JSON.stringify(row));
  assert.equal(balanceOf(ctx, mint.url).unspent, 21);
  await assertBooksBalance(ctx);
});

test('change whose swap answer was lost is received once, though the mint rotated its keyset before the retry', async (t) => {
  const { mint, ctx, advance, payments } = await changeWithLostAnswer(t);
  mint.rotateKeyset();
  advance(1_000);
  await payments.changeQueue.drain();
  const row = payments.changeQueue.rowsOf('lost-answer')[0];
  assert.equal(row.state, 'received', JSON.stringify(row));
  assert.equal(balanceOf(ctx, mint.url).unspent, 21);
  await assertBooksBalance(ctx);
});
