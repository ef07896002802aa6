import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Wallet, getEncodedToken, hashToCurve, type Proof } from '@cashu/cashu-ts';
import { verifyInvariant } from '../../wallet/invariant.ts';
import { toCashuProof, type StoredProof } from '../../wallet/store.ts';
import { sweepUnspent, SWEEP_REF_PREFIX, type SweepReport } from '../../wallet/sweep.ts';
import type { WalletContext } from '../../wallet/context.ts';
import { CashuWallet } from '../../wallet/index.ts';
import { InlineSwapEngine } from '../../wallet/swap/engine.ts';
import type { LightningNetwork } from '../world/lightning.ts';
import { fundNow, openContext, world } from './world.ts';
import { chatBody, payProvider, requiredSat, testProvider } from './payments/fixture.ts';

/** Someone else's cashu-ts wallet at this mint (a provider, or whoever got a copy of our proofs). */
async function stranger(mintUrl: string): Promise<Wallet> {
  const w = new Wallet(mintUrl);
  await w.loadMint();
  return w;
}

/**
 * `n` one-sat proofs minted by a stranger, in quotes of at most 90 (a mint call signing hundreds
 * takes seconds here, long enough for the server to drop the client's idle pooled sockets).
 */
async function mintOnes(ln: LightningNetwork, minter: Wallet, n: number): Promise<Proof[]> {
  const out: Proof[] = [];
  for (let left = n; left > 0; left -= 90) {
    const amount = Math.min(90, left);
    const q = await minter.createMintQuoteBolt11(amount);
    ln.pay(q.request);
    out.push(...(await minter.mintProofsBolt11(amount, q.quote, undefined, { type: 'random', denominations: Array(amount).fill(1) })));
  }
  return out;
}

const unspentAt = (ctx: WalletContext, mint: string) => ctx.store.selectUnspent(mint, 'sat');
const sumOf = (ps: readonly { amount: number }[]) => ps.reduce((a, p) => a + p.amount, 0);
const statesOf = (ctx: WalletContext, ps: readonly StoredProof[]) => ps.map((p) => ctx.store.get(p.secret)?.state);

async function assertBooksBalanceAtMint(ctx: WalletContext): Promise<void> {
  const r = await verifyInvariant(ctx, { checkMints: true });
  assert.deepEqual(r.differences, [], r.differences.join('\n'));
}

/** A CashuWallet on this context (swaps inline, no background refills), stopped when the test ends. */
function quietWallet(t: TestContext, ctx: WalletContext, dir: string, mintUrl: string): CashuWallet {
  const wallet = new CashuWallet({ db: ctx.db, dataDir: dir, mints: [mintUrl], engine: new InlineSwapEngine(), payments: { autoRefill: false } });
  t.after(() => wallet.stop());
  return wallet;
}

/**
 * A power cut: every commit since `lastSynced` (a copy of the database as the disk held it at
 * the last WAL sync) is gone. The wallet on `ctx` is stopped first; returns the reopened context.
 */
async function powerCut(t: TestContext, w: { ctx: WalletContext; dir: string; mint: { url: string } }, wallet: CashuWallet, lastSynced: string): Promise<WalletContext> {
  const dbFile = path.join(w.dir, 'satroute.db');
  await wallet.stop();
  w.ctx.db.close();
  for (const f of [dbFile, `${dbFile}-wal`, `${dbFile}-shm`]) fs.rmSync(f, { force: true });
  fs.copyFileSync(lastSynced, dbFile);
  const ctx = openContext(dbFile, [w.mint.url]);
  t.after(() => ctx.db.close());
  return ctx;
}

test('after a power cut rolled back a paid token, the sweep finds its proofs spent at the mint, books the loss and the books balance again', async (t) => {
  const w = await world(t);
  const { ln, mint, dir } = w;
  await fundNow(w.ctx, ln, 2000);
  const before = quietWallet(t, w.ctx, dir, mint.url);
  await before.payments.reserve.refill(mint.url);
  const lastSynced = path.join(dir, 'synced.db');
  w.ctx.db.exec(`VACUUM INTO '${lastSynced}'`);
  const provider = await testProvider(t, mint.url);
  const taken = await before.payments.takeToken({ paymentId: 'r-lost', mint: mint.url, amountSat: requiredSat(), providerUrl: provider.url });
  assert.equal(taken.mintRoundTrip, false, 'taken from the warm reserve: no swap after the last sync');
  const res = await payProvider(provider, taken.token, chatBody());
  assert.equal(res.status, 200, 'the provider redeemed the token and answered');
  // The take, the payment row and the provider's change never reached the disk.
  const ctx = await powerCut(t, w, before, lastSynced);

  const wallet = quietWallet(t, ctx, dir, mint.url);
  await wallet.recover();
  assert.equal(wallet.balance().totalSat, 2000, 'after the reboot the database says the token was never taken');
  const redeemed = new Set((await ctx.mints.wallet(mint.url)).decodeToken(taken.token).proofs.map((p) => p.secret));

  const [report] = await wallet.sweepUnspent();
  assert.equal(report.mint, mint.url);
  assert.equal(report.failed, undefined);
  assert.deepEqual(report.spent, { count: redeemed.size, amount: taken.sentSat });
  assert.deepEqual(report.pending, { count: 0, amount: 0 });
  assert.equal(wallet.balance().totalSat, 2000 - taken.sentSat);
  assert.ok([...redeemed].every((s) => ctx.store.get(s)?.state === 'spent'), 'the redeemed proofs are spent here too');
  const rest = unspentAt(ctx, mint.url);
  assert.ok(rest.every((p) => !redeemed.has(p.secret)), 'no redeemed proof can be selected again');
  assert.ok((await ctx.mints.checkStates(mint.url, 'sat', rest.map(toCashuProof))).every((s) => s === 'UNSPENT'), 'what is left is really ours');
  const [loss] = wallet.history({ kind: 'loss' });
  assert.equal(loss.amount, -taken.sentSat);
  assert.ok(loss.ref?.startsWith(SWEEP_REF_PREFIX));
  const evidence = loss.evidence as { reason: string; mint_state: string; proofs: number; Ys: string[] };
  assert.equal(evidence.reason, 'spent_while_unspent_here');
  assert.equal(evidence.mint_state, 'SPENT');
  assert.equal(evidence.Ys.length, redeemed.size);
  assert.ok(!JSON.stringify(loss.evidence).includes([...redeemed][0]), 'the evidence names proofs by Y, never by secret');
  await assertBooksBalanceAtMint(ctx);

  const [again] = await wallet.sweepUnspent();
  assert.deepEqual([again.spent.count, again.checked], [0, rest.length], 'a second sweep finds nothing more');
  assert.equal(wallet.history({ kind: 'loss' }).length, 1);
});

/** Runs `beforeNextCall` once, just before the next swap's mint call (after its durable commit). */
class SnapshotEngine extends InlineSwapEngine {
  beforeNextCall?: () => void;
  override complete(req: Parameters<InlineSwapEngine['complete']>[0]) {
    const hook = this.beforeNextCall;
    this.beforeNextCall = undefined;
    hook?.();
    return super.complete(req);
  }
}

test('a power cut right after a split swap reached the mint loses only the token sent: recovery restores the swap, the sweep books the token', async (t) => {
  const w = await world(t);
  const { ln, mint, dir } = w;
  await fundNow(w.ctx, ln, 2000);
  const engine = new SnapshotEngine();
  const before = new CashuWallet({ db: w.ctx.db, dataDir: dir, mints: [mint.url], engine, payments: { autoRefill: false } });
  t.after(() => before.stop());
  const lastSynced = path.join(dir, 'synced.db');
  // The commit before a swap's mint call is durable (fsynced, wallet/durable.ts): the disk holds it and nothing after.
  engine.beforeNextCall = () => w.ctx.db.exec(`VACUUM INTO '${lastSynced}'`);
  const provider = await testProvider(t, mint.url);
  const taken = await before.payments.takeToken({ paymentId: 'r-cold', mint: mint.url, amountSat: requiredSat(), providerUrl: provider.url });
  assert.equal(taken.mintRoundTrip, true, 'the token needed a split swap at the mint');
  assert.ok(fs.existsSync(lastSynced));
  assert.equal((await payProvider(provider, taken.token, chatBody())).status, 200);
  const ctx = await powerCut(t, w, before, lastSynced);

  const wallet = quietWallet(t, ctx, dir, mint.url);
  await wallet.recover();
  assert.equal(wallet.balance().totalSat + wallet.balance().pendingSat, 2000, 'the split swap is restored (NUT-09): its outputs are ours again');
  const [report] = await wallet.sweepUnspent();
  assert.deepEqual(report.spent, { count: (await ctx.mints.wallet(mint.url)).decodeToken(taken.token).proofs.length, amount: taken.sentSat });
  assert.equal(wallet.balance().totalSat, 2000 - taken.sentSat);
  assert.deepEqual(wallet.history({ kind: 'loss' }).map((r) => r.amount), [-taken.sentSat], 'only the token sent is lost');
  await assertBooksBalanceAtMint(ctx);
});

test('a wallet started with sweep asks the mints after its recovery and reports what it found as its last step', async (t) => {
  const { ln, mint, ctx, dir } = await world(t);
  await fundNow(ctx, ln, 100); // 64 + 32 + 4
  const [p64] = unspentAt(ctx, mint.url).filter((p) => p.amount === 64);
  await (await stranger(mint.url)).receive([toCashuProof(p64)]);
  const wallet = quietWallet(t, ctx, dir, mint.url);
  const started = await wallet.start(60_000, { sweep: true });
  const last = started.steps.at(-1)!;
  assert.equal(last.name, 'sweep');
  assert.deepEqual((last.result as SweepReport[]).map((r) => r.spent), [{ count: 1, amount: 64 }]);
  assert.equal(wallet.balance().totalSat, 36);
  await assertBooksBalanceAtMint(ctx);
});

test('proofs at a mint no longer trusted are reported as not asked about and left as they are', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 100);
  const gone = 'http://127.0.0.1:9';
  const [p4] = unspentAt(ctx, mint.url).filter((p) => p.amount === 4);
  // A proof kept from a mint the configuration no longer lists (its data reused: it is never sent anywhere).
  ctx.db.transaction(() => {
    ctx.store.insertProofs([{ ...toCashuProof(p4), secret: `${p4.secret}-old` }], gone, 'sat', 'unspent', 'test:old');
    ctx.ledger.record({ kind: 'receive', mint: gone, unit: 'sat', amount: 4, ref: 'test:old' });
  })();
  const reports = await sweepUnspent(ctx);
  const old = reports.find((r) => r.mint === gone)!;
  assert.match(old.failed ?? '', /not trusted/);
  assert.equal(old.checked, 0);
  assert.equal(unspentAt(ctx, gone).length, 1);
  assert.equal(reports.find((r) => r.mint === mint.url)?.failed, undefined, 'the trusted mint is still asked');
});

test('proofs the mint says are unspent are left exactly as they were', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 1000);
  const before = unspentAt(ctx, mint.url);
  const ledgerRows = ctx.ledger.list().length;
  const [report] = await sweepUnspent(ctx);
  assert.deepEqual(report, { mint: mint.url, unit: 'sat', checked: before.length, spent: { count: 0, amount: 0 }, pending: { count: 0, amount: 0 }, released: { count: 0, amount: 0 } });
  assert.deepEqual(unspentAt(ctx, mint.url), before);
  assert.equal(ctx.ledger.list().length, ledgerRows, 'no ledger row');
});

test('a mint that does not answer is reported and nothing changes; the next sweep, with the mint back, finds what was spent', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 100); // 64 + 32 + 4
  const [p64] = unspentAt(ctx, mint.url).filter((p) => p.amount === 64);
  await (await stranger(mint.url)).receive(getEncodedToken({ mint: mint.url, proofs: [toCashuProof(p64)], unit: 'sat' }));
  await mint.setDown(true);
  const before = unspentAt(ctx, mint.url);
  const [down] = await sweepUnspent(ctx);
  assert.match(down.failed ?? '', /unavailable/);
  assert.deepEqual([down.checked, down.spent.count], [0, 0]);
  assert.deepEqual(unspentAt(ctx, mint.url), before, 'no proof moved');
  assert.deepEqual(ctx.ledger.list({ kind: 'loss' }), []);

  await mint.setDown(false);
  const [up] = await sweepUnspent(ctx);
  assert.equal(up.failed, undefined);
  assert.deepEqual(up.spent, { count: 1, amount: 64 });
  await assertBooksBalanceAtMint(ctx);
});

test('250 unspent proofs are asked about 100 at a time (3 checkstate calls), and spent ones in any batch are found', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const minter = await stranger(mint.url);
  const ones = await mintOnes(ln, minter, 250);
  assert.equal(ones.length, 250);
  // Received into our wallet (the ledger row with the proofs, as a receive swap would write them).
  ctx.db.transaction(() => {
    ctx.store.insertProofs(ones, mint.url, 'sat', 'unspent', 'test:ones');
    ctx.ledger.record({ kind: 'receive', mint: mint.url, unit: 'sat', amount: 250, ref: 'test:ones' });
  })();
  const gone: Proof[] = [ones[0], ones[170], ones[249]];
  await minter.receive(gone);
  const calls = () => mint.requestCounts()['POST /v1/checkstate'] ?? 0;
  const callsBefore = calls();
  const [report] = await sweepUnspent(ctx);
  assert.equal(calls() - callsBefore, 3);
  assert.equal(report.checked, 250);
  assert.deepEqual(report.spent, { count: 3, amount: 3 });
  assert.deepEqual(gone.map((p) => ctx.store.get(p.secret)?.state), ['spent', 'spent', 'spent']);
  await assertBooksBalanceAtMint(ctx);
});

test('a wallet holding more than 1000 proofs (more than a mint takes in one request) still sweeps them all and finds the spent ones', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const minter = await stranger(mint.url);
  const keysetId = (await ctx.mints.wallet(mint.url)).keysetId;
  // Proofs the mint never signed answer UNSPENT to NUT-07, as at Nutshell (a Y it has no record of
  // is unspent), so 1,100 of them stand in for a long-running wallet's small change without minting each.
  const filler = Array.from({ length: 1100 }, (_, i) => ({
    id: keysetId, amount: 1, secret: `filler-${i}`, C: hashToCurve(new TextEncoder().encode(`filler C ${i}`)).toHex(true),
  }));
  const real = await mintOnes(ln, minter, 4);
  ctx.db.transaction(() => {
    ctx.store.insertProofs([real[0], ...filler.slice(0, 600), real[1], ...filler.slice(600), real[2], real[3]], mint.url, 'sat', 'unspent', 'test:many');
    ctx.ledger.record({ kind: 'receive', mint: mint.url, unit: 'sat', amount: 1104, ref: 'test:many' });
  })();
  await minter.receive([real[0], real[1], real[3]]);
  const [report] = await sweepUnspent(ctx, { batchSize: 5000 });
  assert.equal(report.failed, undefined, 'no request was refused as too long');
  assert.equal(report.checked, 1104);
  assert.deepEqual(report.spent, { count: 3, amount: 3 });
  assert.deepEqual([real[0], real[1], real[2], real[3]].map((p) => ctx.store.get(p.secret)?.state), ['spent', 'spent', 'unspent', 'spent']);
  await assertBooksBalanceAtMint(ctx);
});

test('a mint that stops answering halfway keeps what earlier batches found and reports how far it got', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const minter = await stranger(mint.url);
  const ones = await mintOnes(ln, minter, 100);
  ctx.db.transaction(() => {
    ctx.store.insertProofs(ones, mint.url, 'sat', 'unspent', 'test:ones');
    ctx.ledger.record({ kind: 'receive', mint: mint.url, unit: 'sat', amount: 100, ref: 'test:ones' });
  })();
  const stored = unspentAt(ctx, mint.url);
  await minter.receive([toCashuProof(stored[10]), toCashuProof(stored[90])]);
  await ctx.mints.wallet(mint.url); // keys loaded before the limit, so only checkstate calls count
  // Nutshell's limiter answers 429 once its window is full: the third call is refused.
  mint.knobs.rateLimit = { retryAfterSec: null, maxRequests: 2, windowMs: 60_000 };
  const [report] = await sweepUnspent(ctx, { batchSize: 40 });
  assert.ok(report.failed, 'the refusal is reported');
  assert.equal(report.checked, 80);
  assert.deepEqual(report.spent, { count: 1, amount: 1 }, 'the proof in the first batch is found');
  assert.equal(ctx.store.get(stored[90].secret)?.state, 'unspent', 'the third batch was not asked about: unchanged');
  mint.knobs.rateLimit = null;
  const [rest] = await sweepUnspent(ctx);
  assert.deepEqual(rest.spent, { count: 1, amount: 1 });
  await assertBooksBalanceAtMint(ctx);
});

/** Someone melts `proof` (we count it unspent) and the mint holds the melt in flight until released. */
async function meltBehindOurBack(w: Awaited<ReturnType<typeof world>>, proof: StoredProof) {
  const melter = await stranger(w.mint.url);
  const quote = await melter.createMeltQuoteBolt11(w.ln.node('shop').createInvoice(50_000).bolt11);
  const release = w.mint.holdMelts();
  const melting = melter.meltProofsBolt11(quote, [toCashuProof(proof)]).catch((err: unknown) => err);
  while (w.mint.meltQuoteState(quote.quote) !== 'PENDING') await new Promise((r) => setImmediate(r));
  return { release, melting };
}

test('a proof pending at the mint is held out of selection, and booked as lost once the melt completes', async (t) => {
  const w = await world(t);
  const { ln, mint, ctx } = w;
  await fundNow(ctx, ln, 100); // 64 + 32 + 4
  const [p64] = unspentAt(ctx, mint.url).filter((p) => p.amount === 64);
  const { release, melting } = await meltBehindOurBack(w, p64);

  const [first] = await sweepUnspent(ctx);
  assert.deepEqual(first.pending, { count: 1, amount: 64 });
  assert.deepEqual(first.spent, { count: 0, amount: 0 });
  const held = ctx.store.get(p64.secret)!;
  assert.equal(held.state, 'pending');
  assert.equal(held.reasonKind, 'send');
  assert.ok(held.reasonRef?.startsWith(SWEEP_REF_PREFIX));
  assert.ok(!ctx.store.unspentCoins(mint.url, 'sat', { fresh: true }).coins.some((c) => c.secret === p64.secret), 'no payment can select it');
  await assertBooksBalanceAtMint(ctx);

  const [still] = await sweepUnspent(ctx);
  assert.deepEqual([still.pending.count, still.spent.count], [1, 0], 'still in flight: still held');
  release();
  await melting;
  const [done] = await sweepUnspent(ctx);
  assert.deepEqual(done.spent, { count: 1, amount: 64 });
  assert.deepEqual(done.pending, { count: 0, amount: 0 });
  assert.equal(ctx.store.get(p64.secret)?.state, 'spent');
  const [loss] = ctx.ledger.list({ kind: 'loss' });
  assert.equal(loss.amount, -64);
  assert.equal(loss.ref, held.reasonRef, 'the loss names the sweep that held the proof');
  await assertBooksBalanceAtMint(ctx);
});

test('a held proof whose melt fails is spendable again at the next sweep', async (t) => {
  const w = await world(t);
  const { ln, mint, ctx } = w;
  await fundNow(ctx, ln, 100);
  const [p64] = unspentAt(ctx, mint.url).filter((p) => p.amount === 64);
  const { release, melting } = await meltBehindOurBack(w, p64);
  await sweepUnspent(ctx);
  assert.equal(ctx.store.get(p64.secret)?.state, 'pending');
  ln.knobs.failNextPayments = 1;
  release();
  await melting; // refused: the mint unlocks the proof
  const [report] = await sweepUnspent(ctx);
  assert.deepEqual(report.released, { count: 1, amount: 64 });
  assert.deepEqual(report.spent, { count: 0, amount: 0 });
  assert.equal(ctx.store.get(p64.secret)?.state, 'unspent');
  assert.equal(sumOf(unspentAt(ctx, mint.url)), 100);
  assert.deepEqual(ctx.ledger.list({ kind: 'loss' }), []);
  await assertBooksBalanceAtMint(ctx);
});

test('a proof a payment takes while the mint is being asked stays with the payment', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await fundNow(ctx, ln, 100);
  const [p64] = unspentAt(ctx, mint.url).filter((p) => p.amount === 64);
  await (await stranger(mint.url)).receive([toCashuProof(p64)]);
  // The sweep reads the proofs, then waits for the mint; meanwhile a payment takes the proof.
  const sweeping = sweepUnspent(ctx);
  ctx.store.movePending([p64.secret], 'request', 'pay-concurrent');
  const [report] = await sweeping;
  assert.deepEqual(report.spent, { count: 0, amount: 0 });
  assert.deepEqual(statesOf(ctx, [p64]), ['pending']);
  assert.deepEqual(ctx.ledger.list({ kind: 'loss' }), []);
});
