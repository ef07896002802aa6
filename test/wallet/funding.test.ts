import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createFundingQuote, checkFunding, openFundingQuotes, resumeFunding, waitForFunding } from '../../wallet/funding.ts';
import { verifyInvariant } from '../../wallet/invariant.ts';
import { FundingError } from '../../wallet/errors.ts';
import { world } from './world.ts';
import { createLogger } from '../../protocol/logger.ts';

test('funding by invoice mints exactly the invoiced sats once the invoice is paid', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const q = await createFundingQuote(ctx, 1000);
  assert.equal(q.state, 'unpaid');
  assert.match(q.bolt11, /^lnbc/);
  assert.equal((await checkFunding(ctx, q.quoteId)).state, 'unpaid');
  ln.pay(q.bolt11);
  const done = await waitForFunding(ctx, q.quoteId, { pollMs: 5 });
  assert.equal(done.state, 'issued');
  assert.deepEqual(ctx.store.balances(), [{ mint: mint.url, unit: 'sat', unspent: 1000, pending: 0 }]);
  // Checking again never mints twice.
  assert.equal((await checkFunding(ctx, q.quoteId)).state, 'issued');
  assert.deepEqual(await resumeFunding(ctx), []);
  assert.equal(ctx.store.balances()[0].unspent, 1000);
  assert.deepEqual(ctx.ledger.list().map((r) => [r.kind, r.amount, r.ref]), [['funding', 1000, q.quoteId]]);
  const report = await verifyInvariant(ctx, { checkMints: true });
  assert.equal(report.ok, true, report.differences.join('; '));
  assert.equal(mint.stats().outstanding, 1000);
});

test('an unpaid invoice times out with a clear error and the quote stays resumable', async (t) => {
  const { ln, ctx } = await world(t);
  const q = await createFundingQuote(ctx, 21);
  await assert.rejects(waitForFunding(ctx, q.quoteId, { pollMs: 5, timeoutMs: 30 }), (err: Error) => err instanceof FundingError && /not paid within/.test(err.message));
  assert.deepEqual(openFundingQuotes(ctx).map((x) => x.quoteId), [q.quoteId]);
  ln.pay(q.bolt11);
  assert.deepEqual(await resumeFunding(ctx), [{ quoteId: q.quoteId, state: 'issued' }]);
  assert.equal(ctx.store.balances()[0].unspent, 21);
});

test('a mint that is down while the invoice gets paid is minted once it is back', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const q = await createFundingQuote(ctx, 50);
  ln.pay(q.bolt11);
  await mint.setDown(true);
  const during = await resumeFunding(ctx);
  assert.equal(during[0].state, 'unpaid');
  assert.match(during[0].error ?? '', /unavailable/);
  await mint.setDown(false);
  assert.equal((await resumeFunding(ctx))[0].state, 'issued');
  assert.equal(ctx.store.balances()[0].unspent, 50);
});

async function loseNextMintAnswer(ctx: Awaited<ReturnType<typeof world>>['ctx'], mint: Awaited<ReturnType<typeof world>>['mint'], quoteId: string): Promise<void> {
  // The mint processes the mint call, then drops the connection before answering.
  const w = await ctx.mints.wallet(mint.url);
  const original = w.completeMint.bind(w);
  w.completeMint = (preview) => {
    mint.knobs.loseResponseNext = 1;
    return original(preview);
  };
  await assert.rejects(checkFunding(ctx, quoteId), /unavailable/);
  w.completeMint = original;
}

test('a lost mint answer is recovered through NUT-09 restore: the sats arrive once, nothing lost', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const q = await createFundingQuote(ctx, 64);
  ln.pay(q.bolt11);
  await loseNextMintAnswer(ctx, mint, q.quoteId);
  const after = await checkFunding(ctx, q.quoteId);
  assert.equal(mint.mintQuoteState(q.quoteId), 'ISSUED');
  assert.equal(after.state, 'issued');
  assert.deepEqual(ctx.ledger.list({ ref: q.quoteId }).map((r) => [r.kind, r.amount]), [['funding', 64]]);
  assert.equal(ctx.store.balances()[0].unspent, 64);
  const report = await verifyInvariant(ctx, { checkMints: true });
  assert.equal(report.ok, true, report.differences.join('; '));
});

test('a lost mint answer (signed, never received) is recorded as a loss with evidence at a mint without restore, never silently', async (t) => {
  const { ln, mint, ctx } = await world(t, { restore: false });
  const q = await createFundingQuote(ctx, 64);
  ln.pay(q.bolt11);
  await loseNextMintAnswer(ctx, mint, q.quoteId);
  // The next step sees ISSUED with our outputs persisted and no proofs; this mint offers no NUT-09 restore.
  const after = await checkFunding(ctx, q.quoteId);
  assert.equal(mint.mintQuoteState(q.quoteId), 'ISSUED');
  assert.equal(after.state, 'lost');
  const rows = ctx.ledger.list({ ref: q.quoteId });
  assert.deepEqual(rows.map((r) => [r.kind, r.amount]).sort(), [['funding', 64], ['loss', -64]]);
  const loss = rows.find((r) => r.kind === 'loss')!;
  assert.equal((loss.evidence as { mintState: string }).mintState, 'ISSUED');
  assert.equal((await verifyInvariant(ctx)).ok, true);
});

test('a restore that brings back only part of a lost answer keeps that part and books only the rest as lost', async (t) => {
  const { ln, mint, ctx } = await world(t);
  const lines: string[] = [];
  ctx.logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  const q = await createFundingQuote(ctx, 64 + 8);
  ln.pay(q.bolt11);
  await loseNextMintAnswer(ctx, mint, q.quoteId);
  // The mint's restore answer misses the 8-sat output (e.g. the mint lost part of its records).
  const restore = ctx.mints.restore.bind(ctx.mints);
  ctx.mints.restore = async (...args) => (await restore(...args))?.filter((p) => Number(p.amount) !== 8) ?? null;
  const after = await checkFunding(ctx, q.quoteId);
  assert.equal(after.state, 'issued');
  assert.equal(ctx.store.balances()[0].unspent, 64, 'the restored 64 sat are spendable, not thrown away');
  assert.deepEqual(ctx.ledger.list({ ref: q.quoteId }).map((r) => [r.kind, r.amount]).sort(), [['funding', 72], ['loss', -8]]);
  assert.equal((await verifyInvariant(ctx)).ok, true);
  // The quote id is a bearer secret until minted: the logs carry only its first characters.
  assert.ok(lines.length > 0);
  assert.ok(!lines.join('').includes(q.quoteId), 'no full quote id in the logs');
});

test('a keyset rotated between quote and mint: the wallet mints on the new keyset', async (t) => {
  const { ln, mint, ctx } = await world(t);
  await ctx.mints.wallet(mint.url); // keys cached before the rotation
  const q = await createFundingQuote(ctx, 40);
  ln.pay(q.bolt11);
  const newId = mint.rotateKeyset();
  assert.equal((await checkFunding(ctx, q.quoteId)).state, 'issued');
  const proofs = ctx.store.selectUnspent(mint.url, 'sat');
  assert.equal(proofs.reduce((a, p) => a + p.amount, 0), 40);
  assert.ok(proofs.every((p) => p.keysetId === newId));
  assert.equal((await verifyInvariant(ctx, { checkMints: true })).ok, true);
});
