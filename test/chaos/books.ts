// The chaos suite's last word: every sat, to the sat, from three independent books - the world
// (what Lightning paid into our mint quotes), the wallet's ledger (wallet.verify totals) and the
// request ledger (the audit's attempts):
//   funded (world)            = the wallet's funding rows, every paid quote issued
//   funded                    = unspent + pending + (charged + input fees - surplus) + lost change
//                               + the mint's fees on our own swaps + other losses
//   paid to providers + reclaim fees = sum over attempts of (sent - change + lost change)
// (a token taken back unredeemed is, for the request ledger, change of sent - input fee and an
// input fee; for the wallet, no payment and a reclaim swap's mint fee: the same sats, and the
// wallet's reclaim fees are exactly those attempts' input fees)
//   session balances          = 0 (no session mode yet)
//   every loss has evidence and a cause a real node could give; this world's providers are
//   honest, so there is none.
// And every request is settled or explicitly recorded: no pending request or attempt; a failed
// one names its error code; each answer a client saw is a succeeded request. A payment still
// open is one the provider redeemed (the mint says spent) and answered with an error, its
// refund awaited from the node's refund endpoint with the evidence of each round (a node that
// failed after redeeming, as a real one can): the wallet holds it as pending, the request ledger
// as sent - so it is counted once, as open.
import path from 'node:path';
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { World } from '../world/index.ts';
import type { InvariantReport } from '../../wallet/invariant.ts';
import type { AuditReport } from '../../daemon/requests/audit.ts';
import { control } from './daemon-process.ts';
import type { Sent } from './traffic.ts';

export interface OpenPayment {
  paymentId: string;
  state: string;
  sentSat: number;
  evidence: { mint?: { mint?: string }; refund?: unknown; rounds?: number } | null;
}

/** Payments not final yet, read from the daemon's database as an auditor would (read-only). */
export function openPayments(dir: string): OpenPayment[] {
  const db = new Database(path.join(dir, 'satroute.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT payment_id, state, sent, evidence FROM payments WHERE state IN ('pending', 'refund_wait')").all() as { payment_id: string; state: string; sent: number; evidence: string | null }[])
      .map((r) => ({ paymentId: r.payment_id, state: r.state, sentSat: r.sent, evidence: r.evidence ? JSON.parse(r.evidence) : null }));
  } finally {
    db.close();
  }
}

/** Open only as an explicit record: redeemed (spent at the mint), the refund endpoint asked at least once. */
export const explicitlyOpen = (p: OpenPayment) => p.state === 'refund_wait' && p.evidence?.mint?.mint === 'spent' && p.evidence.refund !== undefined;

export async function checkBooks(t: TestContext, o: { dir: string; world: World; quotes: { id: string; amountSat: number }[]; sent: Sent[] }): Promise<void> {
  const mint = o.world.mints[0];
  // The world's side: what Lightning paid into our quotes; a paid quote must have been issued.
  let fundedWorld = 0;
  for (const q of o.quotes) {
    const state = mint.mintQuoteState(q.id);
    if (state === 'PAID') assert.fail(`quote ${q.id} was paid but never minted: its sats are stuck at the mint`);
    if (state === 'ISSUED') fundedWorld += q.amountSat;
  }

  const wallet = await control<InvariantReport>(o.dir, 'wallet.verify', { check_mints: true });
  assert.deepEqual(wallet.differences, []);
  assert.equal(wallet.totals.length, 1, 'one mint, one unit');
  const w = wallet.totals[0];

  const audit = await control<AuditReport>(o.dir, 'audit.requests', {});
  const attempts = (await control<AuditReport>(o.dir, 'audit.requests', { attempts: true })).attempts!;
  const sum = (f: (a: (typeof attempts)[number]) => number) => attempts.reduce((x, a) => x + f(a), 0);
  const num = (v: unknown) => Number(v ?? 0);
  const sentSat = sum((a) => num(a.sent_sats));
  const changeSat = sum((a) => num(a.change_sats));
  const feeSat = sum((a) => num(a.fee_sats));
  const lostSat = sum((a) => num(a.lost_sats));
  const chargedMsat = sum((a) => num(a.charged_msat));
  const surplusSat = sum((a) => num(a.surplus_sats));
  const fees = (await control<{ entries: { amount: number; evidence: { purpose?: string } | null }[] }>(o.dir, 'wallet.history', { kind: 'mint_fee' })).entries;
  const reclaimFees = -fees.filter((e) => e.evidence?.purpose === 'reclaim').reduce((x, e) => x + e.amount, 0);
  const ownFees = w.mintFees - reclaimFees;
  const open = openPayments(o.dir);
  for (const p of open) {
    assert.ok(explicitlyOpen(p), `payment ${p.paymentId} is open without the evidence of a refund awaited: ${JSON.stringify(p)}`);
    const a = attempts.find((x) => x.payment_id === p.paymentId);
    assert.ok(a && a.status === 'failed' && a.error, `the attempt of open payment ${p.paymentId} is recorded failed with its error`);
    t.diagnostic(`open: ${p.paymentId} ${p.sentSat} sat, ${a!.error} (HTTP ${a!.http_status}), refund awaited after ${p.evidence?.rounds ?? 0} rounds`);
  }
  const openSat = open.reduce((x, p) => x + p.sentSat, 0);
  const figures = { openSat, reclaimFees, ownFees,  fundedWorld, funded: w.funded, received: w.received, unspent: w.unspent, pending: w.pending, paidToProviders: w.paidToProviders, mintFees: w.mintFees, losses: w.losses, sentSat, changeSat, feeSat, lostSat, chargedMsat, surplusSat, requests: audit.requests!.length, attempts: attempts.length };
  t.diagnostic(`books: ${JSON.stringify(figures)}`);

  // Settled or explicitly recorded.
  for (const r of audit.requests!) {
    assert.notEqual(r.status, 'pending', `request ${r.request_id} is still pending`);
    if (r.status !== 'succeeded') assert.ok(r.error_code, `request ${r.request_id} ${r.status} without an error code`);
  }
  for (const a of attempts) assert.notEqual(a.status, 'pending', `attempt ${a.request_id}#${a.attempt} is still pending`);
  const byId = new Map(audit.requests!.map((r) => [r.request_id, r]));
  for (const s of o.sent) {
    if (s.outcome !== 'answered' || !s.requestId) continue;
    assert.equal(byId.get(s.requestId)?.status, 'succeeded', `the client got an answer for ${s.requestId}; the books say ${byId.get(s.requestId)?.status}`);
  }

  // Exact sat arithmetic.
  assert.equal(chargedMsat % 1000, 0, 'tokens move in whole sats');
  const chargedSat = chargedMsat / 1000;
  assert.equal(chargedSat, sentSat - changeSat - feeSat + surplusSat, 'charged = sent - change - fee (+ surplus, charged 0)');
  assert.equal(w.funded, fundedWorld, 'the wallet was funded with exactly what Lightning paid into its quotes');
  assert.equal(w.received, 0);
  assert.equal(w.sessionDeposited + w.sessionRefunded + w.sessionCharged + w.sessionLost + w.heldInSessions, 0, 'no session balances');
  assert.equal(w.paidToProviders + reclaimFees + openSat, sentSat - changeSat + lostSat, 'the wallet paid providers (and the mint, for tokens taken back; and holds open) what the request ledger says');
  assert.equal(lostSat, 0, 'no change lost: every provider here is honest');
  assert.equal(w.losses, 0, 'no loss: every provider here is honest and every kill is recovered');
  assert.ok(w.pending >= openSat, 'open payments are held as pending');
  assert.equal(fundedWorld, w.unspent + (w.pending - openSat) + chargedSat + feeSat - surplusSat + lostSat + ownFees + w.losses,
    'funded = wallet + charged + input fees + evidenced losses + the mint\'s fees on our own swaps');
}
