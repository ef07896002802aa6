import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEncodedToken, getTokenMetadata, Wallet } from '@cashu/cashu-ts';
import { outsideToken, testMint } from '../world.ts';
import { take, paymentsWorld, newPayments, testProvider, payProvider, requiredSat, assertBooksBalance, balanceOf, mintCallsSince } from './fixture.ts';
import type { WalletContext } from '../../../wallet/context.ts';
import { Payments } from '../../../wallet/payments/index.ts';
import { WorkerSwapEngine } from '../../../wallet/swap/engine.ts';
import { verifyInvariant } from '../../../wallet/invariant.ts';

/** The same context with a clock the test moves by hand. */
function manualClock(ctx: WalletContext) {
  let now = 1_700_000_000_000;
  return { ctx: { ...ctx, clock: () => now } as WalletContext, advance: (ms: number) => { now += ms; } };
}

async function spentToken(ln: Parameters<typeof outsideToken>[0], mintUrl: string, amount: number): Promise<string> {
  const token = await outsideToken(ln, mintUrl, amount);
  const thief = new Wallet(mintUrl);
  await thief.loadMint();
  await thief.receive(token);
  return token;
}

test('change tokens of one mint are swapped in together: one mint call for ten tokens', async (t) => {
  const { ln, mint, ctx, payments } = await paymentsWorld(t, { engine: 'worker' });
  const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => outsideToken(ln, mint.url, 3 + i)));
  for (const [i, token] of tokens.entries()) payments.changeQueue.enqueue(`r${i}`, 'change', token, mint.url);
  await ctx.mints.wallet(mint.url); // keys loaded once per process
  const before = mint.requestCounts();
  const report = await payments.changeQueue.drain();
  assert.deepEqual(mintCallsSince(before, mint.requestCounts()), { 'POST /v1/swap': 1 });
  assert.equal(report.received, 10);
  const total = tokens.reduce((a, tk) => a + getTokenMetadata(tk).amount.toNumber(), 0);
  assert.equal(balanceOf(ctx, mint.url).unspent, total);
  assert.ok(payments.swaps.engine.busyMs() > 0, 'the swap ran in the worker thread');
  for (let i = 0; i < 10; i++) assert.equal(payments.changeQueue.rowsOf(`r${i}`)[0].state, 'received');
  await assertBooksBalance(ctx);
});

test('double-spent change is refused and flagged, and the rest of its batch still comes in', async (t) => {
  const { ln, mint, ctx, payments } = await paymentsWorld(t);
  const good = await Promise.all([5, 6, 7, 8].map((a) => outsideToken(ln, mint.url, a)));
  const bad = await spentToken(ln, mint.url, 9);
  for (const [i, token] of [...good.slice(0, 2), bad, ...good.slice(2)].entries()) payments.changeQueue.enqueue(`d${i}`, 'change', token, mint.url);
  await payments.changeQueue.drain();
  const refused = payments.changeQueue.rowsOf('d2')[0];
  assert.equal(refused.state, 'invalid');
  assert.deepEqual((refused.evidence as { reason: string; mint_code: number }).reason, 'already_spent');
  assert.equal((refused.evidence as { mint_code: number }).mint_code, 11001);
  for (const id of ['d0', 'd1', 'd3', 'd4']) assert.equal(payments.changeQueue.rowsOf(id)[0].state, 'received');
  assert.equal(balanceOf(ctx, mint.url).unspent, 5 + 6 + 7 + 8, 'the spent token counts for nothing');
  await assertBooksBalance(ctx);
});

test('garbage change from a provider is refused at once and the request is flagged change_invalid', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 1000 });
  const provider = await testProvider(t, mint.url, { invalidChange: 'garbage' });
  const taken = await take(payments, mint.url, requiredSat(), 'g1', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 200);
  const outcome = payments.settle('g1', res.change);
  assert.deepEqual(outcome.flags, ['change_invalid']);
  assert.equal(outcome.changes[0].state, 'invalid');
  assert.equal((outcome.changes[0].evidence as { reason: string }).reason, 'undecodable');
  assert.equal(payments.changeQueue.openCount(), 0);
  assert.equal(balanceOf(ctx, mint.url).unspent, 1000 - taken.sentSat);
  await assertBooksBalance(ctx);
});

test('change the provider already spent is refused with the mint\'s answer as evidence, and is the provider\'s money, not ours', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 1000 });
  const provider = await testProvider(t, mint.url, { invalidChange: 'spent' });
  const taken = await take(payments, mint.url, requiredSat(), 's1', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token);
  payments.settle('s1', res.change);
  const seen: string[][] = [];
  payments.onOutcome((o) => seen.push(o.flags));
  await payments.changeQueue.drain();
  const outcome = payments.outcome('s1')!;
  assert.deepEqual(outcome.flags, ['change_invalid']);
  assert.equal((outcome.changes[0].evidence as { mint_code: number }).mint_code, 11001);
  assert.equal(outcome.changeReceivedSat, 0);
  assert.equal(balanceOf(ctx, mint.url).unspent, 1000 - taken.sentSat);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, [['change_invalid']], 'the daemon hears about it');
  await assertBooksBalance(ctx);
});

test('with the mint down, change waits and is retried with backoff; once the mint is back the balance is right', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 500 });
  const { ctx, advance } = manualClock(w.ctx);
  const payments = newPayments(t, ctx);
  const change = await outsideToken(w.ln, w.mint.url, 21);
  await w.mint.setDown(true);
  payments.changeQueue.enqueue('down-1', 'change', change, w.mint.url);
  const first = await payments.changeQueue.drain();
  assert.equal(first.retrying, 1);
  assert.equal(payments.outcome('down-1'), undefined, 'no payment row: change can be queued for any request');
  assert.equal(payments.changeQueue.rowsOf('down-1')[0].state, 'swapping');
  assert.equal(balanceOf(ctx, w.mint.url).unspent, 500, 'not counted before it is swapped');
  await w.mint.setDown(false);
  const early = await payments.changeQueue.drain();
  assert.equal(early.swaps, 0, 'not retried before its backoff is over');
  advance(1_000);
  const later = await payments.changeQueue.drain();
  assert.equal(later.swaps, 1);
  assert.equal(payments.changeQueue.rowsOf('down-1')[0].state, 'received');
  assert.equal(balanceOf(ctx, w.mint.url).unspent, 521);
  await assertBooksBalance(ctx);
});

test('queued change survives a restart of the wallet and is received once', async (t) => {
  const { ln, mint, ctx, payments } = await paymentsWorld(t);
  const change = await outsideToken(ln, mint.url, 33);
  payments.changeQueue.enqueue('restart-1', 'change', change, mint.url);
  await payments.stop();
  const again = newPayments(t, ctx);
  await again.changeQueue.drain();
  assert.equal(again.changeQueue.rowsOf('restart-1')[0].state, 'received');
  await again.changeQueue.drain();
  assert.equal(balanceOf(ctx, mint.url).unspent, 33);
  await assertBooksBalance(ctx);
});

test('a mint answering 500 is retried with the same outputs and the change is received once', async (t) => {
  const w = await paymentsWorld(t);
  const { ctx, advance } = manualClock(w.ctx);
  const payments = newPayments(t, ctx);
  payments.changeQueue.enqueue('e500', 'change', await outsideToken(w.ln, w.mint.url, 17), w.mint.url);
  await ctx.mints.wallet(w.mint.url); // so the 500 hits the swap, not the key download
  w.mint.knobs.failNext = 1;
  assert.equal((await payments.changeQueue.drain()).retrying, 1);
  advance(1_000);
  await payments.changeQueue.drain();
  assert.equal(payments.changeQueue.rowsOf('e500')[0].state, 'received');
  assert.equal(balanceOf(ctx, w.mint.url).unspent, 17);
  await assertBooksBalance(ctx);
});

test('a change swap the mint did but whose answer was lost is restored, or recorded as lost with evidence; never counted twice', async (t) => {
  const w = await paymentsWorld(t);
  const { ctx, advance } = manualClock(w.ctx);
  const payments = newPayments(t, ctx);
  payments.changeQueue.enqueue('lostans', 'change', await outsideToken(w.ln, w.mint.url, 12), w.mint.url);
  await ctx.mints.wallet(w.mint.url); // so the lost answer is the swap's, not the key download's
  w.mint.knobs.loseResponseNext = 1;
  assert.equal((await payments.changeQueue.drain()).retrying, 1);
  advance(1_000);
  await payments.changeQueue.drain();
  const row = payments.changeQueue.rowsOf('lostans')[0];
  const restore = (await ctx.mints.wallet(w.mint.url)).getMintInfo().isSupported(9).supported;
  if (restore) {
    assert.equal(row.state, 'received');
    assert.equal(balanceOf(ctx, w.mint.url).unspent, 12);
  } else {
    assert.equal(row.state, 'lost');
    assert.match(JSON.stringify(row.evidence), /NUT-09/);
    assert.equal(balanceOf(ctx, w.mint.url).unspent, 0);
  }
  await assertBooksBalance(ctx);
});

test('a token a provider hands back with a 402 is banked like change', async (t) => {
  const { ln, mint, ctx, payments } = await paymentsWorld(t, { fundSat: 500 });
  const provider = await testProvider(t, mint.url);
  await payments.reserve.refill(mint.url);
  const taken = await take(payments, mint.url, 1, 'small', { providerUrl: provider.url });
  assert.equal((await payProvider(provider, taken.token)).status, 402);
  // Some nodes send an X-Cashu token with a 402 (ROUTSTR.md section 3); this one does not, so bank a stand-in.
  payments.bankToken('small', await outsideToken(ln, mint.url, 4));
  await payments.changeQueue.drain();
  assert.equal(payments.outcome('small')!.changeReceivedSat, 4);
  assert.equal((await payments.reclaim('small')).action, 'reclaimed');
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 504, pending: 0 });
  await assertBooksBalance(ctx);
});

test('a mint that hangs does not hold the change queue: the swap times out and waits for its retry', async (t) => {
  const { ln, mint, ctx } = await paymentsWorld(t);
  const quick = new Payments(ctx, { engine: new WorkerSwapEngine({ requestTimeoutMs: 200 }) });
  t.after(() => quick.stop());
  quick.changeQueue.enqueue('hang', 'change', await outsideToken(ln, mint.url, 9), mint.url);
  await ctx.mints.wallet(mint.url);
  mint.knobs.latencyMs = 1_500;
  const report = await quick.changeQueue.drain();
  assert.equal(report.retrying, 1, 'given up after the request timeout, not after the mint answered');
  assert.equal(quick.changeQueue.rowsOf('hang')[0].state, 'swapping');
  mint.knobs.latencyMs = 0;
});

test('a refund_token banked after the reclaim already fetched the same token from the refund endpoint is received once, not flagged invalid', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 500 });
  const provider = await testProvider(t, mint.url, { failureRate: 1 });
  const taken = await take(payments, mint.url, requiredSat(), 'upstream-502', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 502);
  const refundToken = (res.body as { error: { refund_token: string } }).error.refund_token;
  // The router gives the token up, then banks the refund_token it got (as bankToken's doc says).
  assert.equal((await payments.reclaim('upstream-502')).action, 'refunded');
  payments.bankToken('upstream-502', refundToken);
  await payments.changeQueue.drain();
  const outcome = payments.outcome('upstream-502')!;
  assert.deepEqual(outcome.flags, [], JSON.stringify(outcome.changes));
  assert.equal(outcome.changeClaimedSat, taken.sentSat);
  assert.equal(outcome.changeReceivedSat, taken.sentSat);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 500, pending: 0 });
  await assertBooksBalance(ctx);
});

test('our own token echoed back by the node and banked is recognised: not counted as change, and the payment is reclaimed', async (t) => {
  const { mint, ctx, payments } = await paymentsWorld(t, { fundSat: 1000 });
  // routstr-core wallet.py: a token from a mint it does not list (an exact-string compare) whose
  // swap over Lightning fails is refused with 422 and echoed back in X-Cashu, still spendable.
  const provider = await testProvider(t, mint.url, { foreignMint: 'refuse' });
  const taken = await take(payments, mint.url, requiredSat(), 'echo.1', { providerUrl: provider.url, tokenMint: `${mint.url}/` });
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 422);
  assert.equal(res.change, taken.token, 'the node echoed our token');
  payments.bankToken('echo.1', res.change!); // a router that takes any X-Cashu for change
  await payments.changeQueue.drain();
  const outcome = payments.outcome('echo.1')!;
  assert.equal(outcome.state, 'reclaimed');
  assert.equal(outcome.changeReceivedSat, 0, 'the echo is not change');
  assert.deepEqual(outcome.changes, []);
  assert.ok(outcome.flags.includes('own_token_echoed'), JSON.stringify(outcome.flags));
  assert.deepEqual(ctx.ledger.list({ kind: 'change_received' }), []);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 1000, pending: 0 }, 'the same sats are counted once');
  // A router that "settles" with the echo as change spends nothing either: the payment is reclaimed.
  const again = await take(payments, mint.url, requiredSat(), 'echo.2', { providerUrl: provider.url, tokenMint: `${mint.url}/` });
  const echoed = await payProvider(provider, again.token);
  assert.equal(payments.settle('echo.2', echoed.change).state, 'pending');
  await payments.changeQueue.drain();
  assert.equal(payments.outcome('echo.2')!.state, 'reclaimed');
  assert.deepEqual(ctx.ledger.list({ kind: 'payment_sent' }), []);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 1000, pending: 0 });
  const audit = await verifyInvariant(ctx, { checkMints: true });
  assert.deepEqual(audit.differences, []);
});

test('a 2-sat refund at a mint with an input fee comes in as 1 sat, though the reserve wants denominations that fill its face value', async (t) => {
  // The reserve is empty, so it wants 1s and 2s; a token of one 2-sat proof nets 1 after the
  // mint's fee (100 ppk, rounded up per swap): outputs of 2 would be refused before the mint call.
  const { ln, mint, ctx, payments } = await paymentsWorld(t, { mint: { inputFeePpk: 100 } });
  const token = await outsideToken(ln, mint.url, 2);
  assert.equal(getTokenMetadata(token).amount.toNumber(), 2);
  await ctx.mints.wallet(mint.url);
  payments.changeQueue.enqueue('small', 'refund', token, mint.url);
  const report = await payments.changeQueue.drain();
  const row = payments.changeQueue.rowsOf('small')[0];
  assert.equal(row.state, 'received', JSON.stringify(row));
  assert.equal(report.received, 1);
  assert.equal(balanceOf(ctx, mint.url).unspent, 1);
  await assertBooksBalance(ctx);
});

test('change whose swap our side cannot prepare is kept and retried, not refused: the mint never saw it; once prepared, a mint refusal still refuses', async (t) => {
  const w = await paymentsWorld(t);
  const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
  const logger = { debug() {}, info() {}, error() {}, warn: (msg: string, fields?: Record<string, unknown>) => void warnings.push({ msg, fields: fields ?? {} }) };
  const clock = manualClock(w.ctx);
  const ctx = { ...clock.ctx, logger } as WalletContext;
  const payments = newPayments(t, ctx);
  const good = await outsideToken(w.ln, w.mint.url, 12);
  const spent = await spentToken(w.ln, w.mint.url, 9);
  // A bug on our side: the reserve wants a denomination the keyset has no key for, so cashu-ts
  // refuses to build the outputs (SwapStepError 'invalid') before any mint call.
  const wanted = payments.reserve.denominationsFor.bind(payments.reserve);
  payments.reserve.denominationsFor = () => [3];
  payments.changeQueue.enqueue('local-1', 'change', good, w.mint.url);
  payments.changeQueue.enqueue('local-2', 'change', spent, w.mint.url);
  await ctx.mints.wallet(w.mint.url);
  const before = w.mint.requestCounts();
  const first = await payments.changeQueue.drain();
  assert.deepEqual(mintCallsSince(before, w.mint.requestCounts()), {}, 'nothing was shown to the mint');
  assert.equal(first.invalid, 0);
  for (const id of ['local-1', 'local-2']) {
    const [row] = payments.changeQueue.rowsOf(id);
    assert.equal(row.state, 'queued', `${id} is kept, not refused`);
    assert.match(row.error ?? '', /could not be prepared here/);
    assert.equal(row.attempts, 1);
    assert.deepEqual(payments.changeQueue.rowsOf(id).map((c) => c.evidence), [null], 'no refusal evidence against the provider');
  }
  assert.deepEqual(warnings.map((x) => x.fields.payment).sort(), ['local-1', 'local-2'], 'one log line per token kept');
  assert.ok(warnings.every((x) => !JSON.stringify(x).includes(good) && !JSON.stringify(x).includes(spent)), 'the token never reaches the log');
  assert.equal(payments.changeQueue.openCount(), 2, 'still counted as change on its way');
  assert.equal((await payments.changeQueue.drain()).swaps, 0, 'not retried before its backoff is over');

  // The cause is gone (a fixed build, say): after the backoff each is tried again and the mint decides.
  payments.reserve.denominationsFor = wanted;
  clock.advance(1_000);
  await payments.changeQueue.drain();
  assert.equal(payments.changeQueue.rowsOf('local-1')[0].state, 'received');
  const refused = payments.changeQueue.rowsOf('local-2')[0];
  assert.equal(refused.state, 'invalid', 'a mint refusal takes the existing path');
  assert.deepEqual([(refused.evidence as { reason: string }).reason, (refused.evidence as { mint_code: number }).mint_code], ['already_spent', 11001]);
  assert.equal(balanceOf(ctx, w.mint.url).unspent, 12);
  await assertBooksBalance(ctx);
});

test('change on a keyset our mint does not list is the mint\'s refusal: refused and flagged, not kept for a retry', async (t) => {
  const w = await paymentsWorld(t);
  const other = await testMint(t, w.ln);
  // Proofs of another mint's keyset, in a token that names ours.
  const minter = new Wallet(other.url);
  await minter.loadMint();
  const quote = await minter.createMintQuoteBolt11(10);
  w.ln.pay(quote.request);
  const token = getEncodedToken({ mint: w.mint.url, unit: 'sat', proofs: await minter.mintProofsBolt11(10, quote.quote) });
  w.payments.changeQueue.enqueue('alien-1', 'change', token, w.mint.url);
  const report = await w.payments.changeQueue.drain();
  const [row] = w.payments.changeQueue.rowsOf('alien-1');
  assert.equal(row.state, 'invalid', JSON.stringify(row));
  assert.deepEqual([(row.evidence as { reason: string }).reason, (row.evidence as { mint_code: number }).mint_code], ['refused', 12001], 'the mint\'s keyset list is its answer');
  assert.equal(report.invalid, 1);
  assert.deepEqual(w.payments.outcome('alien-1'), undefined);
  assert.equal(balanceOf(w.ctx, w.mint.url).unspent, 0);
  await assertBooksBalance(w.ctx);
});
