import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getTokenMetadata, Wallet } from '@cashu/cashu-ts';
import { take, paymentsWorld, newPayments, testProvider, payProvider, chatBody, requiredSat, assertBooksBalance, balanceOf, mintCallsSince, GatedEngine } from './fixture.ts';
import { outsideToken, walletOn } from '../world.ts';
import { verifyInvariant } from '../../../wallet/invariant.ts';
import { InsufficientFundsError } from '../../../wallet/errors.ts';
import { Payments, PaymentError, PaymentStateError } from '../../../wallet/payments/index.ts';
import { defaultReserve } from '../../../wallet/payments/reserve.ts';

test('with a warm reserve, tokens are made without asking the mint', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 6000, payments: { autoRefill: false, reserve: defaultReserve(256, 5) } });
  await payments.reserve.refill(mint.url);
  const before = mint.requestCounts();
  const amounts = [1, 3, 7, 12, 21, 50, 99, 130, 200, 257, 5, 64, 33, 18, 2];
  let sent = 0;
  for (const [i, amount] of amounts.entries()) {
    const taken = await take(payments, mint.url, amount, `req-${i}`);
    assert.equal(taken.mintRoundTrip, false);
    assert.equal(getTokenMetadata(taken.token).amount.toNumber(), taken.sentSat);
    assert.equal(taken.sentSat, amount + taken.feeSat + taken.overpaySat);
    sent += taken.sentSat;
  }
  assert.deepEqual(mintCallsSince(before, mint.requestCounts()), {}, 'no request reached the mint');
  assert.equal(balanceOf(ctx, mint.url).pending, sent);
  assert.equal(payments.stats().roundtrips, 0);
  await assertBooksBalance(ctx);
});

test('100 concurrent takeToken calls never hand out the same proof twice', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 6000 });
  await payments.reserve.refill(mint.url);
  const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => take(payments, mint.url, 1 + (i % 37), `c-${i}`)));
  const taken = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof payments.takeToken>>>).value);
  assert.equal(taken.length, 100, results.find((r) => r.status === 'rejected') ? String((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason) : '');
  const wallet = await ctx.mints.wallet(mint.url);
  const secrets = taken.flatMap((x) => wallet.decodeToken(x.token).proofs.map((p) => p.secret));
  assert.equal(new Set(secrets).size, secrets.length, 'a proof appears in two tokens');
  assert.equal(balanceOf(ctx, mint.url).pending, taken.reduce((a, x) => a + x.sentSat, 0));
  await payments.changeQueue.idle();
  await assertBooksBalance(ctx);
});

test('the provider redeems the token and the change comes back into the balance through the queue', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 2000, engine: 'worker', payments: { autoRefill: true } });
  await payments.reserve.refill(mint.url);
  const provider = await testProvider(t, mint.url);
  const amount = requiredSat();
  const taken = await take(payments, mint.url, amount, 'r1', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 200);
  assert.ok(res.change, 'the provider returned change');
  const settled = payments.settle('r1', res.change);
  assert.equal(settled.state, 'settled');
  assert.equal(settled.changePending, true);
  const held = () => { const b = balanceOf(ctx, mint.url); return b.unspent + b.pending; }; // a background refill may hold proofs pending
  const before = held();
  await payments.changeQueue.drain();
  const outcome = payments.outcome('r1')!;
  const claimed = getTokenMetadata(res.change).amount.toNumber();
  assert.equal(outcome.changeClaimedSat, claimed);
  assert.equal(outcome.changeReceivedSat, claimed, 'no input fee at this mint');
  assert.equal(outcome.changePending, false);
  assert.deepEqual(outcome.flags, []);
  assert.equal(held(), before + claimed);
  // What the provider kept is what we paid minus the change.
  assert.equal(provider.stats().earnedSat, taken.sentSat - claimed);
  await assertBooksBalance(ctx);
});

test('on a fee-charging mint the token also covers the input fee the provider pays, so it nets the amount asked', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { mint: { inputFeePpk: 600 }, fundSat: 3000, payments: { autoRefill: false } });
  await payments.reserve.refill(mint.url);
  const provider = await testProvider(t, mint.url);
  for (const [i, amount] of [9, 30, 77].entries()) {
    const taken = await take(payments, mint.url, amount, `f-${i}`);
    assert.ok(taken.feeSat > 0);
    assert.equal(taken.feeSat, Math.ceil((taken.proofCount * 600) / 1000));
    // Redeem it as a provider does and look at what it nets.
    const receiver = new Wallet(mint.url);
    await receiver.loadMint();
    const got = await receiver.receive(taken.token);
    const net = got.reduce((a, p) => a + Number(p.amount), 0);
    assert.equal(net, amount + taken.overpaySat, `asked ${amount}, the provider netted ${net}`);
    payments.settle(`f-${i}`);
  }
  // And a real provider accepts it as covering its required amount.
  const taken = await take(payments, mint.url, requiredSat(), 'f-provider', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 200);
  payments.settle('f-provider', res.change);
  await payments.changeQueue.drain();
  const outcome = payments.outcome('f-provider')!;
  assert.ok(outcome.changeFeeSat > 0, 'receiving change pays the input fee too');
  assert.equal(outcome.changeReceivedSat, outcome.changeClaimedSat - outcome.changeFeeSat);
  await assertBooksBalance(ctx);
});

test('when the proofs cannot make the amount offline, one swap makes the token and refills the reserve', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 1024, payments: { autoRefill: false } });
  assert.deepEqual(ctx.store.selectUnspent(mint.url, 'sat').map((p) => p.amount), [1024]);
  const before = mint.requestCounts();
  const taken = await take(payments, mint.url, 10, 'big');
  assert.equal(taken.mintRoundTrip, true);
  assert.equal(taken.sentSat, 10);
  assert.deepEqual(mintCallsSince(before, mint.requestCounts()), { 'POST /v1/swap': 1 });
  assert.equal(payments.stats().roundtrips, 1);
  // The same swap refilled small denominations: the next tokens need no mint.
  const after = mint.requestCounts();
  for (const [i, amount] of [3, 17, 40].entries()) assert.equal((await take(payments, mint.url, amount, `next-${i}`)).mintRoundTrip, false);
  assert.deepEqual(mintCallsSince(after, mint.requestCounts()), {});
  await assertBooksBalance(ctx);
});

test('a request the wallet cannot afford fails at once and moves nothing', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 50 });
  await assert.rejects(take(payments, mint.url, 51, 'too-much'), InsufficientFundsError);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 50, pending: 0 });
  assert.equal(payments.outcome('too-much'), undefined);
});

test('the attempt row is written in the same transaction, and a failure there leaves the proofs unspent', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 500 });
  await assert.rejects(
    take(payments, mint.url, 20, 'tx-1', { inTransaction: () => { throw new Error('request row refused'); } }),
    /request row refused/,
  );
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 500, pending: 0 });
  assert.equal(payments.outcome('tx-1'), undefined);
  let seen: string | null = null;
  await take(payments, mint.url, 20, 'tx-2', { inTransaction: (taken) => { seen = taken.paymentId; } });
  assert.equal(seen, 'tx-2');
  await assert.rejects(take(payments, mint.url, 5, 'tx-2'), PaymentStateError, 'one token per payment id');
});

test('after a 402 the token is replaced by a bigger one reusing its proofs, and the provider accepts it', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 2000 });
  const provider = await testProvider(t, mint.url);
  const small = await take(payments, mint.url, 1, 'r402', { providerUrl: provider.url });
  const first = await payProvider(provider, small.token);
  assert.equal(first.status, 402);
  const required = Math.ceil(((first.body.detail as { amount_required_msat: number }).amount_required_msat) / 1000);
  const bigger = await payments.topUp('r402', required);
  assert.equal(bigger.sentSat, required + bigger.feeSat + bigger.overpaySat);
  assert.equal(balanceOf(ctx, mint.url).pending, bigger.sentSat, 'only the new token is pending');
  assert.equal(payments.outcome('r402')!.sentSat, bigger.sentSat);
  const second = await payProvider(provider, bigger.token);
  assert.equal(second.status, 200);
  payments.settle('r402', second.change);
  await payments.changeQueue.drain();
  await assertBooksBalance(ctx);
});

test('reclaiming a token the provider never redeemed returns the money', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 300 });
  const taken = await take(payments, mint.url, 40, 'lost-conn');
  assert.equal(balanceOf(ctx, mint.url).pending, taken.sentSat);
  const result = await payments.reclaim('lost-conn');
  assert.equal(result.action, 'reclaimed');
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 300, pending: 0 });
  assert.equal(payments.outcome('lost-conn')!.state, 'reclaimed');
  // The provider saw the secrets, so they were swapped: the old token is worthless now.
  const wallet = await ctx.mints.wallet(mint.url);
  for (const p of wallet.decodeToken(taken.token).proofs) assert.equal(mint.isSpent(p.secret), true);
  await assertBooksBalance(ctx);
});

test('a token is written to the request before it is returned, and settling twice is refused', async (t) => {
  const { mint, payments } = await paymentsWorld(t, { fundSat: 100 });
  const taken = await take(payments, mint.url, 10, 'once', { providerUrl: 'http://127.0.0.1:9/' });
  const o = payments.outcome('once')!;
  assert.equal(o.state, 'pending');
  assert.equal(o.providerUrl, 'http://127.0.0.1:9/');
  assert.equal(payments.rows.get('once')!.token, taken.token, 'the exact token is kept for the refund endpoint');
  payments.settle('once');
  assert.throws(() => payments.settle('once'), PaymentStateError);
  void chatBody;
});

test('the provider\'s answer settling a payment while its reclaim is out at the mint still banks the change, and the books balance', async (t) => {
  const engine = new GatedEngine();
  const w = await paymentsWorld(t, { fundSat: 1000 });
  const payments = new Payments(w.ctx, { engine, autoRefill: false, fetch: (url, init) => fetch(url, init) });
  t.after(() => payments.stop());
  const provider = await testProvider(t, w.mint.url);
  const taken = await take(payments, w.mint.url, requiredSat(), 'race', { providerUrl: provider.url });
  // The router gives up on the request and reclaims the token; the swap back waits at the gate.
  const gate = engine.hold();
  const reclaiming = payments.reclaim('race');
  await gate.reached;
  // Meanwhile the provider redeemed the token after all, and its answer (with change) arrives.
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 200);
  const change = getTokenMetadata(res.change!).amount.toNumber();
  try {
    payments.settle('race', res.change);
  } finally {
    gate.release();
  }
  await reclaiming; // the mint refuses the swap back: the provider spent those proofs
  await payments.reclaim('race');
  await payments.changeQueue.drain();
  assert.deepEqual(w.ctx.ledger.list({ kind: 'loss' }), [], 'nothing was lost');
  const outcome = payments.outcome('race')!;
  assert.equal(outcome.changeReceivedSat, change);
  assert.deepEqual(balanceOf(w.ctx, w.mint.url), { unspent: 1000 - taken.sentSat + change, pending: 0 });
  await assertBooksBalance(w.ctx);
});

test('a provider\'s answer arriving after its payment was reclaimed or written off still banks its change', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 1000 });
  const provider = await testProvider(t, w.mint.url, { internalError500: true });
  const payments = newPayments(t, w.ctx, { payments: { refund: { pollAttempts: 1, sleep: async () => {}, maxRefundRounds: 1 } } });
  const taken = await take(payments, w.mint.url, requiredSat(), 'late', { providerUrl: provider.url });
  await payProvider(provider, taken.token); // the node keeps the token and answers 500
  assert.equal((await payments.reclaim('late')).action, 'lost');
  // A change token for this payment arrives late after all (e.g. a slow answer on another connection).
  const change = await outsideToken(w.ln, w.mint.url, 7);
  payments.settle('late', change);
  await payments.changeQueue.drain();
  assert.equal(payments.outcome('late')!.changeReceivedSat, 7);
  assert.equal(balanceOf(w.ctx, w.mint.url).unspent, 1000 - taken.sentSat + 7);
  await assertBooksBalance(w.ctx);
});

test('the token names the mint as the provider spells it, and a spelling of another mint is refused', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 300 });
  const spelled = `${mint.url}/`; // as a provider lists it: a node compares the strings exactly
  const taken = await take(payments, mint.url, 12, 'spelled.1', { tokenMint: spelled });
  assert.equal(getTokenMetadata(taken.token).mint, spelled);
  assert.equal(taken.tokenMint, spelled);
  assert.equal(payments.outcome('spelled.1')!.tokenMint, spelled);
  assert.equal(payments.outcome('spelled.1')!.mint, mint.url, 'the wallet keeps its own spelling');
  await assert.rejects(take(payments, mint.url, 12, 'spelled.2', { tokenMint: 'http://127.0.0.1:1' }), PaymentError);
  assert.equal(payments.outcome('spelled.2'), undefined);
  assert.equal(balanceOf(ctx, mint.url).pending, taken.sentSat);
});

test('each provider tried for a request is its own payment, with its own token, proofs and refund address', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 500 });
  const first = await take(payments, mint.url, 20, 'req-7.1', { providerUrl: 'http://127.0.0.1:9/a' });
  const second = await take(payments, mint.url, 20, 'req-7.2', { providerUrl: 'http://127.0.0.1:9/b' });
  const wallet = await ctx.mints.wallet(mint.url);
  const secrets = (token: string) => new Set(wallet.decodeToken(token).proofs.map((p) => p.secret));
  const shared = [...secrets(first.token)].filter((s) => secrets(second.token).has(s));
  assert.deepEqual(shared, [], 'no proof is in both tokens');
  assert.equal(payments.outcome('req-7.1')!.providerUrl, 'http://127.0.0.1:9/a');
  assert.equal(payments.outcome('req-7.2')!.providerUrl, 'http://127.0.0.1:9/b');
  // The first provider failed before redeeming: its token comes back; the second one is paid.
  assert.equal((await payments.reclaim('req-7.1')).action, 'reclaimed');
  payments.settle('req-7.2');
  assert.deepEqual([payments.outcome('req-7.1')!.state, payments.outcome('req-7.2')!.state], ['reclaimed', 'settled']);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 500 - second.sentSat, pending: 0 });
  await assertBooksBalance(ctx);
});

test('an attempt row written with await (a callback that returns a promise) is refused, and nothing is taken', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 200 });
  await assert.rejects(take(payments, mint.url, 10, 'async.1', { inTransaction: async () => {} }), (err: Error) => err instanceof PaymentError && /synchronous/.test(err.message));
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 200, pending: 0 });
  assert.equal(payments.outcome('async.1'), undefined);
});

test('a payment without the provider it goes to is refused (its lost change could never be asked for)', async (t) => {
  const { mint, payments } = await paymentsWorld(t, { fundSat: 100 });
  await assert.rejects(payments.takeToken({ paymentId: 'nowhere.1', mint: mint.url, amountSat: 5, providerUrl: '' }), PaymentError);
});

test('audit verify while a provider has redeemed a token we have not settled yet: the payment in flight explains it; once orphaned, it is named', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 500 });
  const wallet = walletOn(t, w);
  const provider = await testProvider(t, w.mint.url);
  const taken = await take(wallet.payments, w.mint.url, requiredSat(), 'inflight.1', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token); // redeemed; the router has not settled it yet
  assert.equal(res.status, 200);
  await wallet.payments.reserve.splitsDone(w.mint.url); // the reserve's refill after the take: its swap's proofs are spent at the mint too until it ends
  assert.deepEqual((await wallet.verify({ checkMints: true })).differences, []);
  // The same books seen by a process that does not hold the payment: nothing explains those spent proofs.
  const orphan = await verifyInvariant(w.ctx, { checkMints: true });
  assert.deepEqual(orphan.differences, [`${w.mint.url} (sat): ${taken.sentSat} sat pending for payment inflight.1 is spent at the mint (not settled in our books)`]);
  wallet.payments.settle('inflight.1', res.change);
  await wallet.payments.changeQueue.drain();
  assert.deepEqual((await verifyInvariant(w.ctx, { checkMints: true })).differences, []);
});

test('a stream that ended without usage (the node keeps the whole token) is a charge flagged usage_missing, not a loss', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 500 });
  // routstr-core: no usage in a stream -> no cost computed -> no change, the whole token kept.
  const provider = await testProvider(t, mint.url, { noUsage: true });
  const taken = await take(payments, mint.url, requiredSat(), 'nousage.1', { providerUrl: provider.url });
  const res = await fetch(`${provider.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'X-Cashu': taken.token }, body: JSON.stringify({ ...chatBody(), stream: true }) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-cashu'), null, 'no change');
  await res.text();
  const outcome = payments.settle('nousage.1', null, { usageMissing: true });
  assert.equal(outcome.state, 'settled');
  assert.deepEqual(outcome.flags, ['usage_missing']);
  assert.deepEqual(ctx.ledger.list({ kind: 'loss' }), []);
  assert.deepEqual(ctx.ledger.list({ kind: 'payment_sent' }).map((r) => r.amount), [-taken.sentSat]);
  assert.equal(provider.stats().earnedSat, taken.sentSat);
  await assertBooksBalance(ctx);
});

test('a refund handed back while the payment\'s reclaim is out at the mint is banked as its refund, and the books balance', async (t) => {
  const engine = new GatedEngine();
  const w = await paymentsWorld(t, { fundSat: 1000 });
  const payments = new Payments(w.ctx, { engine, autoRefill: false, fetch: (url, init) => fetch(url, init) });
  t.after(() => payments.stop());
  const provider = await testProvider(t, w.mint.url, { failureRate: 1 }); // redeemed, then the upstream fails: full refund
  const taken = await take(payments, w.mint.url, requiredSat(), 'race-refund', { providerUrl: provider.url });
  const gate = engine.hold();
  const reclaiming = payments.reclaim('race-refund');
  await gate.reached;
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 502);
  try {
    payments.refunded('race-refund', (res.body as { error: { refund_token: string } }).error.refund_token);
  } finally {
    gate.release();
  }
  await reclaiming; // the mint refuses the swap back: the provider spent those proofs
  await payments.changeQueue.drain();
  const outcome = payments.outcome('race-refund')!;
  assert.equal(outcome.state, 'refunded');
  assert.deepEqual(outcome.changes.map((c) => [c.kind, c.state]), [['refund', 'received']]);
  assert.deepEqual(w.ctx.ledger.list({ kind: 'loss' }), []);
  assert.deepEqual(balanceOf(w.ctx, w.mint.url), { unspent: 1000, pending: 0 });
  await assertBooksBalance(w.ctx);
});
