// Session money (wallet/payments/sessions.ts) against the world's balance (API-key) mode, which
// follows routstr-core v0.4.5 balance.py / auth.py: a deposit is a token redeemed into a balance
// at the provider (an exposure, not a spend), requests are charged against it, and the balance
// comes back as a refund token - or is lost with the provider. At every step the invariant holds:
// funded - charged - fees - losses = unspent + pending + held in sessions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { paymentsWorld, testProvider, chatBody, balanceOf } from './fixture.ts';
import { walletOn } from '../world.ts';
import { verifyInvariant } from '../../../wallet/invariant.ts';
import type { WalletContext } from '../../../wallet/context.ts';
import { InsufficientFundsError, PaymentError } from '../../../wallet/errors.ts';
import type { TestProvider } from '../../world/provider.ts';

async function assertBooks(ctx: WalletContext): Promise<void> {
  const report = await verifyInvariant(ctx, { checkMints: true });
  assert.deepEqual(report.differences, [], report.differences.join('\n'));
}

async function createBalance(provider: TestProvider, token: string): Promise<{ api_key: string; balance: number }> {
  const res = await fetch(`${provider.url}/v1/balance/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ initial_balance_token: token }) });
  assert.equal(res.status, 200);
  return (await res.json()) as { api_key: string; balance: number };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });

async function balanceInfo(provider: TestProvider, key: string): Promise<number> {
  const res = await fetch(`${provider.url}/v1/balance/info`, { headers: bearer(key) });
  return ((await res.json()) as { balance: number }).balance;
}

async function chargedRequest(provider: TestProvider, key: string): Promise<number> {
  const res = await fetch(`${provider.url}/v1/chat/completions`, { method: 'POST', headers: bearer(key), body: JSON.stringify(chatBody()) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { usage: { cost: { total_msats: number } } }).usage.cost.total_msats;
}

async function refundBalance(provider: TestProvider, key: string): Promise<{ token: string; sats: string }> {
  const res = await fetch(`${provider.url}/v1/balance/refund`, { method: 'POST', headers: bearer(key) });
  assert.equal(res.status, 200);
  return (await res.json()) as { token: string; sats: string };
}

test('a session deposit, a charged request and the refund: the wallet knows where the money is at every step', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 1000 });
  const wallet = walletOn(t, w);
  const payments = wallet.payments;
  const provider = await testProvider(t, w.mint.url);
  const dep = await payments.sessionDeposit({ sessionId: 's1', providerUrl: provider.url, mint: w.mint.url, amountSat: 100 });
  assert.equal(getTokenMetadata(dep.token).amount.toNumber(), dep.sentSat);
  await payments.reserve.splitsDone(w.mint.url); // the reserve's refill after the deposit (its inputs are pending while it runs)
  await assertBooks(w.ctx); // the deposit token is pending: still ours
  const created = await createBalance(provider, dep.token);
  const credited = dep.sentSat - dep.feeSat;
  assert.equal(created.balance, credited * 1000);
  let s = payments.sessionDeposited(dep.paymentId);
  assert.deepEqual([s.state, s.depositedSat, s.heldSat], ['open', credited, credited]);
  assert.deepEqual(wallet.balance().sessions, [{ providerUrl: provider.url, mint: w.mint.url, unit: 'sat', heldSat: credited, sessions: 1 }]);
  assert.equal(wallet.balance().heldSat, credited);
  assert.deepEqual(balanceOf(w.ctx, w.mint.url), { unspent: 1000 - dep.sentSat, pending: 0 });
  await assertBooks(w.ctx);

  const costMsat = await chargedRequest(provider, created.api_key);
  assert.equal(await balanceInfo(provider, created.api_key), created.balance - costMsat);
  s = payments.sessionCharge('s1', costMsat, 'req-1');
  assert.deepEqual([s.chargedMsat, s.chargedSat, s.heldSat], [costMsat, Math.ceil(costMsat / 1000), credited - Math.ceil(costMsat / 1000)]);
  await assertBooks(w.ctx);

  const refund = await refundBalance(provider, created.api_key);
  assert.equal(Number(refund.sats), Math.floor((created.balance - costMsat) / 1000));
  s = payments.sessionRefund('s1', refund.token);
  assert.equal(s.state, 'refunding');
  await payments.changeQueue.drain();
  s = payments.session('s1')!;
  assert.deepEqual([s.state, s.refundedSat, s.heldSat, s.flags], ['closed', Number(refund.sats), 0, []]);
  assert.deepEqual(wallet.balance().sessions, []);
  assert.deepEqual(balanceOf(w.ctx, w.mint.url), { unspent: 1000 - dep.sentSat + Number(refund.sats), pending: 0 });
  assert.deepEqual(w.ctx.ledger.list({ ref: 's1' }).map((r) => r.kind).sort(), ['session_deposit', 'session_refund']);
  assert.deepEqual(w.ctx.ledger.list({ kind: 'session_charge' }).map((r) => [r.ref, r.amount]), [['req-1', -Math.ceil(costMsat / 1000)]]);
  await assertBooks(w.ctx);
  const [totals] = (await wallet.verify()).totals;
  assert.equal(totals.funded - totals.sessionCharged - totals.mintFees, totals.unspent + totals.pending + totals.heldInSessions);
});

test('a provider that vanishes holding a session balance is a loss with evidence, and the books still balance', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 500 });
  const wallet = walletOn(t, w);
  const payments = wallet.payments;
  const provider = await testProvider(t, w.mint.url);
  const dep = await payments.sessionDeposit({ sessionId: 's2', providerUrl: provider.url, mint: w.mint.url, amountSat: 64 });
  await createBalance(provider, dep.token);
  payments.sessionDeposited(dep.paymentId);
  // One session is one balance at one provider; a deposit the wallet cannot afford opens nothing.
  await assert.rejects(payments.sessionDeposit({ sessionId: 's2', providerUrl: 'http://127.0.0.1:9', mint: w.mint.url, amountSat: 8 }), PaymentError);
  await assert.rejects(payments.sessionDeposit({ sessionId: 's2b', providerUrl: provider.url, mint: w.mint.url, amountSat: 100_000 }), InsufficientFundsError);
  assert.equal(payments.session('s2b'), undefined);
  provider.knobs.vanished = true; // port closed for good, the balances gone
  const s = payments.sessionLost('s2', { reason: 'provider vanished', refund: 'connection refused' });
  assert.deepEqual([s.state, s.heldSat, s.lostSat], ['lost', 0, dep.sentSat - dep.feeSat]);
  const [loss] = w.ctx.ledger.list({ kind: 'session_loss' });
  assert.equal(loss.amount, -(dep.sentSat - dep.feeSat));
  assert.match(JSON.stringify(loss.evidence), /vanished/);
  assert.deepEqual(wallet.balance().sessions, []);
  await assertBooks(w.ctx);
});

test('a deposit whose answer was lost is held in the session when the mint says the node took it, and comes back when it did not', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 500 });
  const payments = walletOn(t, w).payments;
  const provider = await testProvider(t, w.mint.url);
  const taken = await payments.sessionDeposit({ sessionId: 's3', providerUrl: provider.url, mint: w.mint.url, amountSat: 40 });
  await createBalance(provider, taken.token); // the node redeemed it; our process never saw the answer
  const r = await payments.reclaim(taken.paymentId);
  assert.equal(r.action, 'deposited');
  assert.equal(payments.session('s3')!.heldSat, taken.sentSat - taken.feeSat);
  const unsent = await payments.sessionDeposit({ sessionId: 's3', providerUrl: provider.url, mint: w.mint.url, amountSat: 20 });
  assert.equal((await payments.reclaim(unsent.paymentId)).action, 'reclaimed');
  assert.equal(payments.session('s3')!.heldSat, taken.sentSat - taken.feeSat, 'a deposit that never arrived is not held');
  assert.deepEqual(balanceOf(w.ctx, w.mint.url), { unspent: 500 - taken.sentSat, pending: 0 });
  await assertBooks(w.ctx);
});

test('a session balance that shrinks more than the charges reported is flagged at close, and the difference is booked as charged', async (t) => {
  const w = await paymentsWorld(t, { fundSat: 500 });
  const payments = walletOn(t, w).payments;
  // Charges 1.5x the price but reports the honest cost (balance mode: adjust_payment_for_tokens).
  const provider = await testProvider(t, w.mint.url, { overchargeFactor: 1.5, overchargeReports: 'honest' });
  const dep = await payments.sessionDeposit({ sessionId: 's4', providerUrl: provider.url, mint: w.mint.url, amountSat: 100 });
  const created = await createBalance(provider, dep.token);
  payments.sessionDeposited(dep.paymentId);
  for (let i = 0; i < 3; i++) payments.sessionCharge('s4', await chargedRequest(provider, created.api_key), `over-${i}`);
  const refund = await refundBalance(provider, created.api_key);
  payments.sessionRefund('s4', refund.token);
  await payments.changeQueue.drain();
  const s = payments.session('s4')!;
  assert.equal(s.state, 'closed');
  assert.deepEqual(s.flags, ['unreported_charge']);
  assert.ok(s.chargedSat > Math.ceil(s.chargedMsat / 1000), 'the unreported part is booked as charged');
  assert.equal(s.heldSat, 0);
  await assertBooks(w.ctx);
});
