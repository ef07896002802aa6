import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { outsideToken } from '../world.ts';
import { take, paymentsWorld, newPayments, openContext, testProvider, payProvider, requiredSat, assertBooksBalance, balanceOf, chatBody, MODEL } from './fixture.ts';
import { recoverPayments, retryRefunds } from '../../../wallet/payments/recovery.ts';
import { startProvider } from '../../world/provider.ts';
import { InlineSwapEngine } from '../../../wallet/swap/engine.ts';
import { CashuWallet } from '../../../wallet/index.ts';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

/** Start a wallet process on the same database; resolves with it and its JSON lines as they come. */
function startChild(t: TestContext, args: Record<string, unknown>) {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const lines: Record<string, unknown>[] = [];
  let waiters: (() => void)[] = [];
  let buf = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
      waiters.forEach((w) => w());
      waiters = [];
    }
  });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const next = (step: string) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const check = () => {
      const found = lines.find((l) => l.step === step);
      if (found) return resolve(found);
      if (child.exitCode !== null) return reject(new Error(`child exited ${child.exitCode}: ${stderr}`));
      waiters.push(check);
    };
    child.once('exit', () => check());
    check();
  });
  const go = () => child.stdin!.write('go\n');
  return { child, next, go };
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test('killed after taking a token, before sending it: on restart the token is swapped back and the balance is whole', async (t) => {
  const { mint, ctx, dbFile, payments } = await paymentsWorld(t, { fundSat: 400 });
  const { child, next } = startChild(t, { dbFile, mintUrl: mint.url, step: 'take', paymentId: 'crash-1', amountSat: 37 });
  const taken = await next('taken');
  await kill(child);
  assert.equal(balanceOf(ctx, mint.url).pending, taken.sentSat, 'the dead process left its token pending');
  const report = await recoverPayments(payments);
  assert.deepEqual(report.payments.map((r) => [r.paymentId, r.action]), [['crash-1', 'reclaimed']]);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 400, pending: 0 });
  assert.equal(payments.outcome('crash-1')!.state, 'reclaimed');
  // Running recovery again changes nothing.
  assert.deepEqual((await recoverPayments(payments)).payments, []);
  await assertBooksBalance(ctx);
});

test('killed after the provider took the token, before settling: the change comes back through the refund endpoint', async (t) => {
  const { mint, ctx, dbFile, payments } = await paymentsWorld(t, { fundSat: 1000 });
  const provider = await testProvider(t, mint.url);
  const { child, next } = startChild(t, { dbFile, mintUrl: mint.url, step: 'take', paymentId: 'crash-2', amountSat: requiredSat(), providerUrl: provider.url });
  const { token, sentSat } = (await next('taken')) as { token: string; sentSat: number };
  const res = await payProvider(provider, token); // the answer (and its change) dies with the process
  assert.equal(res.status, 200);
  const change = getTokenMetadata(res.change!).amount.toNumber();
  await kill(child);
  const report = await recoverPayments(payments);
  assert.deepEqual(report.payments.map((r) => r.action), ['refunded']);
  const outcome = payments.outcome('crash-2')!;
  assert.equal(outcome.state, 'refunded');
  assert.equal(outcome.changeReceivedSat, change, 'the refund was swapped in by the recovery run');
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 1000 - sentSat + change, pending: 0 });
  assert.equal(provider.stats().earnedSat, sentSat - change);
  await assertBooksBalance(ctx);
});

test('killed after a provider kept the whole token: after bounded refund retries it is a loss with evidence', async (t) => {
  const { mint, ctx, dbFile, payments: unused } = await paymentsWorld(t, { fundSat: 300 });
  void unused;
  const provider = await testProvider(t, mint.url, { internalError500: true });
  const { child, next } = startChild(t, { dbFile, mintUrl: mint.url, step: 'take', paymentId: 'crash-3', amountSat: requiredSat(), providerUrl: provider.url });
  const { token, sentSat } = (await next('taken')) as { token: string; sentSat: number };
  assert.equal((await payProvider(provider, token)).status, 500);
  await kill(child);
  const waits: number[] = [];
  const payments = newPayments(t, ctx, { payments: { refund: { pollAttempts: 3, pollDelayMs: 2000, sleep: async (ms) => { waits.push(ms); }, maxRefundRounds: 1 } } });
  const report = await recoverPayments(payments);
  assert.deepEqual(report.payments.map((r) => r.action), ['lost']);
  assert.deepEqual(waits, [2000, 2000], 'the pending refund was asked for three times');
  const loss = ctx.ledger.list({ kind: 'loss', ref: 'crash-3' });
  assert.equal(loss.length, 1);
  assert.equal(loss[0].amount, -sentSat);
  assert.match(JSON.stringify(loss[0].evidence), /spent/);
  assert.match(JSON.stringify(loss[0].evidence), /pending/);
  assert.deepEqual(payments.outcome('crash-3')!.flags, ['lost']);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 300 - sentSat, pending: 0 });
  await assertBooksBalance(ctx);
});

test('a refund still pending is asked for again later, not written off at once', async (t) => {
  const { mint, ctx, payments: first } = await paymentsWorld(t, { fundSat: 300 });
  void first;
  const provider = await testProvider(t, mint.url, { internalError500: true });
  const payments = newPayments(t, ctx, { payments: { refund: { pollAttempts: 1, sleep: async () => {}, maxRefundRounds: 3 } } });
  const taken = await take(payments, mint.url, requiredSat(), 'slow-refund', { providerUrl: provider.url });
  await payProvider(provider, taken.token);
  const r = await payments.reclaim('slow-refund');
  assert.equal(r.action, 'refund_wait');
  assert.equal(payments.outcome('slow-refund')!.state, 'refund_wait');
  assert.deepEqual((await recoverPayments(payments)).payments, [], 'not asked again before its time');
  assert.equal(balanceOf(ctx, mint.url).pending, taken.sentSat, 'still pending, with its reason');
  await assertBooksBalance(ctx);
});

test('killed while receiving change with the mint down: on restart the change is received once', async (t) => {
  const { ln, mint, ctx, dbFile, payments } = await paymentsWorld(t, { fundSat: 500 });
  const change = await outsideToken(ln, mint.url, 25);
  const { child, next, go } = startChild(t, { dbFile, mintUrl: mint.url, step: 'receive-change', paymentId: 'crash-4', amountSat: 30, changeToken: change });
  await next('settled');
  await mint.setDown(true);
  go();
  const drained = (await next('drained')) as { report: { retrying: number } };
  assert.equal(drained.report.retrying, 1, 'the swap is prepared and waits for the mint');
  await kill(child);
  await mint.setDown(false);
  const report = await recoverPayments(payments);
  assert.deepEqual(report.swaps.map((s) => s.status), ['done']);
  const outcome = payments.outcome('crash-4')!;
  assert.equal(outcome.changeReceivedSat, 25);
  assert.equal(outcome.changePending, false);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 500 - outcome.sentSat + 25, pending: 0 });
  await recoverPayments(payments);
  assert.equal(balanceOf(ctx, mint.url).unspent, 500 - outcome.sentSat + 25, 'never counted twice');
  await assertBooksBalance(ctx);
});

test('killed in the middle of a change swap the mint then completes: restored, or lost with evidence, and the books balance', async (t) => {
  const { ln, mint, ctx, dbFile, payments } = await paymentsWorld(t, { fundSat: 500 });
  const change = await outsideToken(ln, mint.url, 19);
  const { child, next, go } = startChild(t, { dbFile, mintUrl: mint.url, step: 'receive-change', paymentId: 'crash-5', amountSat: 30, changeToken: change });
  await next('settled');
  // Hold the swap at the mint, and kill the wallet while its call is out.
  mint.knobs.latencyMs = 300;
  const swapsBefore = mint.requestCounts()['POST /v1/swap'] ?? 0;
  go();
  while ((mint.requestCounts()['POST /v1/swap'] ?? 0) === swapsBefore) await new Promise((r) => setTimeout(r, 2));
  await kill(child); // the swap request reached the mint; its answer never will
  await new Promise((r) => setTimeout(r, 400)); // the mint finishes the swap for a dead client
  mint.knobs.latencyMs = 0;
  await recoverPayments(payments);
  const outcome = payments.outcome('crash-5')!;
  const restore = (await ctx.mints.wallet(mint.url)).getMintInfo().isSupported(9).supported;
  if (restore) assert.equal(outcome.changeReceivedSat, 19);
  else {
    assert.deepEqual(outcome.flags, ['change_lost']);
    assert.match(JSON.stringify(outcome.changes[0].evidence), /NUT-09/);
  }
  assert.equal(outcome.changePending, false);
  await assertBooksBalance(ctx);
});

test('killed mid change swap, restarted while the mint is down: once it is back the change is restored, not refused as spent', async (t) => {
  const { ln, mint, ctx, dbFile } = await paymentsWorld(t, { fundSat: 500 });
  const change = await outsideToken(ln, mint.url, 19);
  const { child, next, go } = startChild(t, { dbFile, mintUrl: mint.url, step: 'receive-change', paymentId: 'crash-6', amountSat: 30, changeToken: change });
  await next('settled');
  mint.knobs.latencyMs = 300;
  const swapsBefore = mint.requestCounts()['POST /v1/swap'] ?? 0;
  go();
  while ((mint.requestCounts()['POST /v1/swap'] ?? 0) === swapsBefore) await new Promise((r) => setTimeout(r, 2));
  await kill(child); // the mint does the swap; its answer dies with the process
  await new Promise((r) => setTimeout(r, 400));
  mint.knobs.latencyMs = 0;
  // The restarted process finds the mint down (it cannot even load its keys).
  await mint.setDown(true);
  const restarted = openContext(dbFile, [mint.url]);
  t.after(() => restarted.db.close());
  const payments = newPayments(t, restarted);
  assert.deepEqual((await recoverPayments(payments)).swaps.map((s) => s.status), ['retry']);
  await mint.setDown(false);
  await recoverPayments(payments);
  const outcome = payments.outcome('crash-6')!;
  assert.deepEqual(outcome.flags, [], JSON.stringify(outcome.changes));
  assert.equal(outcome.changeReceivedSat, 19, 'our own earlier swap spent the change: its outputs are restored');
  assert.equal(balanceOf(restarted, mint.url).unspent, 500 - outcome.sentSat + 19);
  await assertBooksBalance(restarted);
});

test('a refund_token already banked is not written off as a loss when the provider\'s refund endpoint is unreachable', async (t) => {
  const { mint, ctx, payments: first } = await paymentsWorld(t, { fundSat: 500 });
  void first;
  const provider = await testProvider(t, mint.url, { failureRate: 1 });
  const payments = newPayments(t, ctx, { payments: { refund: { pollAttempts: 1, sleep: async () => {}, maxRefundRounds: 1 } } });
  const taken = await take(payments, mint.url, requiredSat(), 'banked-refund', { providerUrl: provider.url });
  const res = await payProvider(provider, taken.token);
  assert.equal(res.status, 502);
  payments.refunded('banked-refund', (res.body as { error: { refund_token: string } }).error.refund_token);
  provider.knobs.dead = true; // the refund endpoint cannot be asked any more
  const r = await payments.reclaim('banked-refund');
  await payments.changeQueue.drain();
  assert.deepEqual(ctx.ledger.list({ kind: 'loss' }), [], 'nothing was lost');
  assert.equal(r.action, 'unchanged', 'refunded already: nothing to reclaim');
  const outcome = payments.outcome('banked-refund')!;
  assert.deepEqual(outcome.flags, []);
  assert.equal(outcome.changeReceivedSat, taken.sentSat);
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 500, pending: 0 });
  await assertBooksBalance(ctx);
});

test('recovery leaves alone a payment this process is still serving, and runs as part of the wallet\'s recovery', async (t) => {
  const { mint, ctx, dir } = await paymentsWorld(t, { fundSat: 200 });
  const wallet = new CashuWallet({ db: ctx.db, dataDir: dir, mints: [mint.url], engine: new InlineSwapEngine(), payments: { autoRefill: false } });
  t.after(() => wallet.stop());
  const payments = wallet.payments;
  const live = await take(payments, mint.url, 15, 'in-flight');
  const report = await wallet.recover();
  const step = report.steps.find((s) => s.name === 'swaps and payments');
  assert.ok(step && !step.error, JSON.stringify(report));
  assert.deepEqual((step.result as { payments: unknown[] }).payments, [], 'the live payment was not reclaimed');
  assert.equal(balanceOf(ctx, mint.url).pending, live.sentSat);
  // Once its caller gives it up, it is reclaimed.
  assert.equal((await payments.reclaim('in-flight')).action, 'reclaimed');
  assert.deepEqual(balanceOf(ctx, mint.url), { unspent: 200, pending: 0 });
  await assertBooksBalance(ctx);
});

/** Wait (polling the event loop) until `cond` holds: for something another part does, never for time. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

/** Send a paid request and drop the connection once the node has redeemed the token (its answer never reaches us). */
async function sendAndDrop(provider: Awaited<ReturnType<typeof startProvider>>, token: string): Promise<void> {
  const before = provider.stats().redeemed;
  const ac = new AbortController();
  const sent = fetch(`${provider.url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json', 'X-Cashu': token }, body: JSON.stringify(chatBody()) }).catch(() => null);
  await until(() => provider.stats().redeemed > before);
  ac.abort();
  await sent;
}

test('a refund asked before the node recorded the token (404) is asked again later, and the change it mints then comes home', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 1000 });
  let now = 1_700_000_000_000;
  const clock = () => now;
  // routstr-core v0.4.5 records the redeemed token (store_cashu_transaction) a moment after
  // redeeming it; a refund asked in between answers 404.
  const provider = await startProvider({ name: 'p404', relays: [], mints: [w.mint.url], models: [MODEL], noAnnounce: true, clock, knobs: { refundRecordDelayMs: 5_000 } });
  t.after(() => provider.stop());
  const payments = newPayments(t, { ...w.ctx, clock }, { payments: { refund: { pollAttempts: 2, sleep: async () => {} } } });
  const taken = await take(payments, w.mint.url, requiredSat(), 'rec-404', { providerUrl: provider.url });
  await sendAndDrop(provider, taken.token);
  const first = await payments.reclaim('rec-404');
  assert.equal(first.action, 'refund_wait', JSON.stringify(first.detail));
  assert.deepEqual(w.ctx.ledger.list({ kind: 'loss' }), [], 'a 404 so soon after sending is "not yet", not a loss');
  now += 5_000; // the node records the token, serves the request and mints the change
  await until(() => provider.stats().succeeded === 1);
  now = payments.rows.get('rec-404')!.nextAt!;
  const [second] = await retryRefunds(payments);
  assert.equal(second.action, 'refunded');
  await payments.changeQueue.drain();
  const outcome = payments.outcome('rec-404')!;
  const change = taken.sentSat - provider.stats().earnedSat;
  assert.ok(change > 0);
  assert.equal(outcome.changeReceivedSat, change);
  assert.deepEqual(balanceOf(w.ctx, w.mint.url), { unspent: 1000 - taken.sentSat + change, pending: 0 });
  await assertBooksBalance(w.ctx);
});

test('a 404 that outlasts the window for the node\'s version is final: a loss with the answers as evidence', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 1000 });
  let now = 1_700_000_000_000;
  // The node never records the token (its clock stands still): every refund answer is 404.
  const provider = await startProvider({ name: 'p404f', relays: [], mints: [w.mint.url], models: [MODEL], noAnnounce: true, clock: () => 0, knobs: { refundRecordDelayMs: 1 } });
  t.after(() => provider.stop());
  const payments = newPayments(t, { ...w.ctx, clock: () => now }, { payments: { refund: { pollAttempts: 1, sleep: async () => {} } } });
  const taken = await take(payments, w.mint.url, requiredSat(), 'rec-404f', { providerUrl: provider.url, providerVersion: '0.4.5' });
  await sendAndDrop(provider, taken.token);
  assert.equal((await payments.reclaim('rec-404f')).action, 'refund_wait');
  now += 10 * 60_000; // well past a v0.4.5 node's record window
  const last = await payments.resolve('rec-404f');
  assert.equal(last.action, 'lost');
  const [loss] = w.ctx.ledger.list({ kind: 'loss', ref: 'rec-404f' });
  assert.equal(loss.amount, -taken.sentSat);
  assert.match(JSON.stringify(loss.evidence), /not_found/);
  await assertBooksBalance(w.ctx);
});

test('a node before v0.4.4 says 404 while the request runs: for such a node the wait is longer', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 1000 });
  let now = 1_700_000_000_000;
  const clock = () => now;
  // routstr-core v0.4.3: 404 "Refund not found" until the "out" row exists (the request runs 4 minutes here).
  const provider = await startProvider({ name: 'p043', relays: [], mints: [w.mint.url], models: [MODEL], noAnnounce: true, clock, version: '0.4.3', knobs: { refundRecordDelayMs: 4 * 60_000 } });
  t.after(() => provider.stop());
  const payments = newPayments(t, { ...w.ctx, clock }, { payments: { refund: { pollAttempts: 1, sleep: async () => {} } } });
  const taken = await take(payments, w.mint.url, requiredSat(), 'rec-043', { providerUrl: provider.url, providerVersion: '0.4.3' });
  await sendAndDrop(provider, taken.token);
  assert.equal((await payments.reclaim('rec-043')).action, 'refund_wait');
  now += 3 * 60_000; // longer than a current node's window, still 404
  assert.equal((await payments.resolve('rec-043')).action, 'refund_wait');
  now += 60_000;
  await until(() => provider.stats().succeeded === 1);
  assert.equal((await payments.resolve('rec-043')).action, 'refunded');
  assert.deepEqual(w.ctx.ledger.list({ kind: 'loss' }), []);
  await payments.changeQueue.drain();
  await assertBooksBalance(w.ctx);
});

test('a token banked on the node\'s own 402 is not this payment\'s refund: after a top-up and a lost answer the refund endpoint is still asked, and the real change comes home', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 2000 });
  const provider = await testProvider(t, w.mint.url);
  const payments = newPayments(t, w.ctx, { payments: { refund: { pollAttempts: 2, sleep: async () => {} } } });
  const small = await take(payments, w.mint.url, 1, 'banked.1', { providerUrl: provider.url });
  const first = await payProvider(provider, small.token);
  assert.equal(first.status, 402);
  // Some clients have seen an X-Cashu header come with the node's 402 (ROUTSTR.md): the router banks it.
  const stray = await outsideToken(w.ln, w.mint.url, 5);
  payments.bankToken('banked.1', stray);
  const required = Math.ceil((first.body.detail as { amount_required_msat: number }).amount_required_msat / 1000);
  const bigger = await payments.topUp('banked.1', required);
  await sendAndDrop(provider, bigger.token);
  await until(() => provider.stats().succeeded === 1); // the node served it and minted the change
  const r = await payments.reclaim('banked.1');
  assert.equal(r.action, 'refunded');
  await payments.changeQueue.drain();
  const change = bigger.sentSat - provider.stats().earnedSat;
  assert.ok(change > 0);
  const outcome = payments.outcome('banked.1')!;
  assert.deepEqual(outcome.changes.map((c) => c.kind), ['change', 'refund'], 'the refund endpoint was asked');
  assert.equal(outcome.changeReceivedSat, 5 + change);
  assert.deepEqual(w.ctx.ledger.list({ kind: 'loss' }), []);
  assert.deepEqual(balanceOf(w.ctx, w.mint.url), { unspent: 2000 - bigger.sentSat + 5 + change, pending: 0 });
  await assertBooksBalance(w.ctx);
});
