// Taking and topping up tokens (wallet/payments/take.ts) against test/world providers: what a
// top-up may reuse, and that proofs a provider has seen never return to the unspent set raw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { take, paymentsWorld, newPayments, testProvider, payProvider, chatBody, requiredSat, assertBooksBalance, balanceOf } from './fixture.ts';
import { PaymentStateError } from '../../../wallet/payments/index.ts';
import { verifyInvariant } from '../../../wallet/invariant.ts';
import type { WalletContext } from '../../../wallet/context.ts';
import type { FetchLike } from '../../../protocol/refund.ts';

async function secretsOf(ctx: WalletContext, mintUrl: string, token: string): Promise<string[]> {
  const wallet = await ctx.mints.wallet(mintUrl);
  return wallet.decodeToken(token).proofs.map((p) => p.secret);
}

test('after an upstream 402 (the node redeemed the token and refunded it), a top-up is refused and the refund is banked as this payment\'s: no spent proof comes back', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 1000 });
  // routstr-core upstream/base.py: the upstream's 402 (out of credit) arrives after redemption, with a full refund_token.
  const provider = await testProvider(t, mint.url, { upstreamError: { status: 402 } });
  const taken = await take(payments, mint.url, requiredSat(), 'up402.1', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 402);
  const refundToken = (res.body as { error: { refund_token: string } }).error.refund_token;
  await assert.rejects(payments.topUp('up402.1', requiredSat() + 8), PaymentStateError);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 1000 - taken.sentSat, pending: taken.sentSat }, 'the refused top-up moved nothing');
  const refunded = payments.refunded('up402.1', refundToken);
  assert.equal(refunded.state, 'refunded');
  await payments.changeQueue.drain();
  const outcome = payments.outcome('up402.1')!;
  assert.deepEqual(outcome.changes.map((c) => [c.kind, c.state]), [['refund', 'received']]);
  assert.equal(outcome.changeReceivedSat, taken.sentSat, 'refunded in full');
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 1000, pending: 0 });
  for (const secret of await secretsOf(ctx, mint.url, taken.token)) assert.equal(ctx.store.get(secret)!.state, 'spent');
  await assert.rejects(payments.topUp('up402.1', requiredSat() + 8), PaymentStateError, 'never after a refund either');
  const audit = await verifyInvariant(ctx, { checkMints: true });
  assert.deepEqual(audit.differences, []);
  // The next token is good money: the provider, its upstream back, takes it.
  provider.knobs.upstreamError = null;
  const next = await take(payments, mint.url, requiredSat(), 'up402.2', { providerUrl: provider.url });
  const ok = await payProvider(provider, next.token);
  assert.equal(ok.status, 200);
  payments.settle('up402.2', ok.change);
  await payments.changeQueue.drain();
  await assertBooksBalance(ctx);
});

test('a top-up keeps every proof the provider saw in the new token: none returns to the unspent set raw', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 3000 });
  await payments.reserve.refill(mint.url);
  const provider = await testProvider(t, mint.url);
  const small = await take(payments, mint.url, 1, 'seen.1', { providerUrl: provider.url });
  const first = await payProvider(provider, small.token);
  assert.equal(first.status, 402); // routstr-core check_token_balance: before redemption, token unspent
  const required = Math.ceil((first.body.detail as { amount_required_msat: number }).amount_required_msat / 1000);
  const bigger = await payments.topUp('seen.1', required);
  const seen = await secretsOf(ctx, mint.url, small.token);
  const now = new Set(await secretsOf(ctx, mint.url, bigger.token));
  for (const secret of seen) {
    assert.ok(now.has(secret), 'a proof the provider saw is in the new token');
    assert.notEqual(ctx.store.get(secret)!.state, 'unspent');
  }
  assert.ok(bigger.sentSat >= required + bigger.feeSat);
  assert.equal(balanceOf(ctx, mint.url).pending, bigger.sentSat);
  const second = await payProvider(provider, bigger.token);
  assert.equal(second.status, 200);
  payments.settle('seen.1', second.change);
  await payments.changeQueue.drain();
  await assertBooksBalance(ctx);
});

test('a retry at another provider pays with fresh proofs, and each lost answer is asked of the provider that took that token', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 2000 });
  const asked: string[] = [];
  const recording: FetchLike = (url, init) => { asked.push(new URL(url).origin); return fetch(url, init); };
  const payments = newPayments(t, w.ctx, { payments: { fetch: recording, refund: { pollAttempts: 1, sleep: async () => {} } } });
  const a = await testProvider(t, w.mint.url, { failureRate: 1 }); // the upstream fails after redemption: full refund
  const b = await testProvider(t, w.mint.url);
  const first = await take(payments, w.mint.url, requiredSat(), 'retry.1', { providerUrl: a.url });
  const failed = await payProvider(a, first.token);
  assert.equal(failed.status, 502);
  payments.refunded('retry.1', (failed.body as { error: { refund_token: string } }).error.refund_token);
  const second = await take(payments, w.mint.url, requiredSat(), 'retry.2', { providerUrl: b.url });
  const seenByA = new Set(await secretsOf(w.ctx, w.mint.url, first.token));
  assert.deepEqual((await secretsOf(w.ctx, w.mint.url, second.token)).filter((s) => seenByA.has(s)), [], 'no proof A saw goes to B');
  // B takes the token; its answer is lost on the way back.
  const ac = new AbortController();
  const sent = fetch(`${b.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json', 'X-Cashu': second.token }, body: JSON.stringify(chatBody()) }).catch(() => null);
  while (b.stats().succeeded === 0) await new Promise((r) => setTimeout(r, 2));
  ac.abort();
  await sent;
  assert.equal((await payments.reclaim('retry.2')).action, 'refunded');
  assert.deepEqual([...new Set(asked)], [b.url], 'only B was asked for its change');
  await payments.changeQueue.drain();
  assert.equal(payments.outcome('retry.2')!.changeReceivedSat, second.sentSat - b.stats().earnedSat);
  await assertBooksBalance(w.ctx);
});

test('a token sent to a provider carries no DLEQ proofs, as routstr\'s client sends them (its blinding factors stay in the wallet, which keeps every DLEQ), and the node takes it', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 500 });
  const provider = await testProvider(t, mint.url);
  const taken = await take(payments, mint.url, requiredSat(), 'nodleq.1', { providerUrl: provider.url });
  const wallet = await ctx.mints.wallet(mint.url);
  const proofs = wallet.decodeToken(taken.token).proofs;
  assert.ok(proofs.length > 0);
  for (const p of proofs) {
    assert.equal(p.dleq, undefined, 'no DLEQ (and so no blinding factor r) in the token');
    assert.ok(ctx.store.get(p.secret)!.dleq?.r, 'the wallet still holds the proof\'s DLEQ, r included');
  }
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 200);
  payments.settle('nodleq.1', res.change);
  await payments.changeQueue.drain();
  await assertBooksBalance(ctx);
});

test('a coin the memory still offers but the table no longer holds unspent is never sent: the take reads the coins again and pays with others', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 1000 });
  const held = ctx.store.unspentCoins(mint.url, 'sat').coins;
  const smallest = held[0];
  // Behind the store's back (nothing it follows): the coins in memory are now stale.
  ctx.db.prepare(`UPDATE wallet_proofs SET state = 'spent' WHERE secret = ?`).run(smallest.secret);
  assert.ok(ctx.store.unspentCoins(mint.url, 'sat').coins.some((c) => c.secret === smallest.secret), 'the memory still offers it');
  const taken = await take(payments, mint.url, smallest.amountSat, 'stale.1');
  const sent = await secretsOf(ctx, mint.url, taken.token);
  assert.ok(!sent.includes(smallest.secret), 'the spent coin is not in the token');
  for (const secret of sent) assert.equal(ctx.store.get(secret)!.state, 'pending');
  assert.equal(ctx.store.get(smallest.secret)!.state, 'spent', 'and nothing moved it back');
  const table = (ctx.db.prepare(`SELECT secret FROM wallet_proofs WHERE state = 'unspent'`).pluck().all() as string[]).sort();
  assert.deepEqual(ctx.store.unspentCoins(mint.url, 'sat').coins.map((c) => c.secret).sort(), table, 'the coins in memory are the table\'s again');
});
