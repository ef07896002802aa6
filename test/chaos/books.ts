// The chaos suite's last word: every sat, to the sat, from three independent books - the world
// (what Lightning paid into our mint quotes), the wallet's ledger (wallet.verify totals, and its
// sessions' rows) and the request ledger (the audit's attempts):
//   funded (world)   = the wallet's funding rows, every paid quote issued
//   funded           = unspent + pending                        the wallet's ecash
//                    + held in sessions                         balances at providers (their promise)
//                    + X-Cashu: charged + input fees - surplus + lost change
//                    + sessions: charged to attempts + charged for interrupted requests
//                    + the mint's fees on our own swaps (session deposits' input fees included)
//                    + losses (with evidence) + session losses (with evidence)
//   paid to providers + reclaim fees = sum over X-Cashu attempts of (sent - change + lost change)
//   (a token taken back unredeemed is, for the request ledger, change of sent - input fee and an
//   input fee; for the wallet, no payment and a reclaim swap's mint fee: the same sats, and the
//   wallet's reclaim fees of request payments are exactly those attempts' input fees)
//   session charges  = per session, its attempts' msat rounded up once (daemon/requests/audit.ts
//                      sessionChargesSat, as the demo counts them; requests a kill cut on the
//                      session are charged there on the next start, several pro rata to their
//                      reservations), plus, only on a session where the node still ran a cut
//                      request at the restart, what the node charged for it - at most its reservation
// Every loss has evidence and a cause a real node gives: X-Cashu none here (honest providers);
// a session lost only at the provider that vanished, at most its cap. And every request is
// settled or explicitly recorded: no pending request or attempt; a failed one names its error
// code; each answer a client saw is a succeeded request. A payment still open is one the
// provider redeemed (the mint says spent) and answered with an error, its refund awaited from
// the node's refund endpoint with the evidence of each round (a node that failed after
// redeeming, as a real one can): the wallet holds it as pending, the request ledger as sent - so
// it is counted once, as open.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { World } from '../world/index.ts';
import type { InvariantReport } from '../../wallet/invariant.ts';
import { sessionChargesSat, type AuditReport } from '../../daemon/requests/audit.ts';
import { control } from './daemon-process.ts';
import { peek, withDb } from './peek.ts';
import type { Sent } from './traffic.ts';

export interface OpenPayment {
  paymentId: string;
  state: string;
  sentSat: number;
  evidence: { mint?: { mint?: string }; refund?: unknown; rounds?: number } | null;
}

/** Payments not final yet, read from the daemon's database as an auditor would (read-only). */
export function openPayments(dir: string): OpenPayment[] {
  return peek<{ payment_id: string; state: string; sent: number; evidence: string | null }>(dir, "SELECT payment_id, state, sent, evidence FROM payments WHERE state IN ('pending', 'refund_wait')")
    .map((r) => ({ paymentId: r.payment_id, state: r.state, sentSat: r.sent, evidence: r.evidence ? JSON.parse(r.evidence) : null }));
}

/** Open only as an explicit record: redeemed (spent at the mint), the refund endpoint asked at least once. */
export const explicitlyOpen = (p: OpenPayment) => p.state === 'refund_wait' && p.evidence?.mint?.mint === 'spent' && p.evidence.refund !== undefined;

/** One session as the wallet books it, beside what its attempts say. */
export interface SessionBooks {
  id: string;
  provider: string;
  state: string;
  deposited: number;
  /** Booked as charged (sat): its attempts' charges rounded up, plus the close's correction. */
  charged: number;
  chargedMsat: number;
  refunded: number;
  lost: number;
  flags: string;
  evidence: string | null;
  /** What its attempts' balance lost, msat (the request ledger). */
  attemptsMsat: number;
  /** Its attempts a kill interrupted whose charge no request shows (cut), and their requests' reservations (msat). */
  interrupted: number;
  interruptedReservedMsat: number;
  /** Its attempts a kill interrupted, charged on the next start what the balance lost for them. */
  cutCharged: number;
}

export function sessionBooks(dir: string): SessionBooks[] {
  return peek<SessionBooks>(dir, `SELECT s.session_id AS id, s.provider_url AS provider, s.state, s.deposited, s.charged, s.charged_msat AS chargedMsat,
      s.refunded, s.lost, s.flags, s.evidence,
      (SELECT COALESCE(SUM(a.session_charged_msat), 0) FROM attempts a WHERE a.session_id = s.session_id) AS attemptsMsat,
      (SELECT COUNT(*) FROM attempts a WHERE a.session_id = s.session_id AND a.error_code = 'interrupted' AND a.session_charged_msat IS NULL) AS interrupted,
      (SELECT COALESCE(SUM(r.reserved_msat), 0) FROM attempts a JOIN requests r ON r.id = a.request_id
        WHERE a.session_id = s.session_id AND a.error_code = 'interrupted' AND a.session_charged_msat IS NULL) AS interruptedReservedMsat,
      (SELECT COUNT(*) FROM attempts a WHERE a.session_id = s.session_id AND a.error_code = 'interrupted' AND a.session_charged_msat > 0) AS cutCharged
    FROM wallet_sessions s ORDER BY s.created_at`);
}

export interface BooksInput {
  dir: string;
  world: World;
  quotes: { id: string; amountSat: number }[];
  sent: Sent[];
  /** Providers that vanished holding a session, with the cap the daemon showed for them before. */
  vanished: { url: string; capSat: number }[];
}

export async function checkBooks(t: TestContext, o: BooksInput): Promise<void> {
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
  const num = (v: unknown) => Number(v ?? 0);
  const byToken = attempts.filter((a) => a.session_id === null);
  const fromSession = attempts.filter((a) => a.session_id !== null);
  const sum = (f: (a: (typeof attempts)[number]) => number, of = byToken) => of.reduce((x, a) => x + f(a), 0);
  const sentSat = sum((a) => num(a.sent_sats));
  const changeSat = sum((a) => num(a.change_sats));
  const feeSat = sum((a) => num(a.fee_sats));
  const lostSat = sum((a) => num(a.lost_sats));
  const chargedMsat = sum((a) => num(a.charged_msat));
  const surplusSat = sum((a) => num(a.surplus_sats));
  // Fees the wallet paid the mint: reclaims of request payments (the attempts' input fees), the
  // session deposits' input fees, and its own swaps (change, refunds, splits, deposits reclaimed).
  const deposits = new Set(peek<{ id: string }>(o.dir, 'SELECT payment_id AS id FROM payments WHERE session_id IS NOT NULL').map((r) => r.id));
  const fees = (await control<{ entries: { amount: number; evidence: { purpose?: string; payment?: string } | null }[] }>(o.dir, 'wallet.history', { kind: 'mint_fee' })).entries;
  const feesFor = (f: (e: (typeof fees)[number]) => boolean) => -fees.filter(f).reduce((x, e) => x + e.amount, 0);
  const reclaimFees = feesFor((e) => e.evidence?.purpose === 'reclaim' && !deposits.has(e.evidence.payment ?? ''));
  const depositFees = feesFor((e) => e.evidence?.purpose === 'session_deposit');
  const ownFees = w.mintFees - reclaimFees;
  const open = openPayments(o.dir);
  for (const p of open) {
    assert.ok(explicitlyOpen(p), `payment ${p.paymentId} is open without the evidence of a refund awaited: ${JSON.stringify(p)}`);
    const a = attempts.find((x) => x.payment_id === p.paymentId);
    assert.ok(a && a.status === 'failed' && a.error, `the attempt of open payment ${p.paymentId} is recorded failed with its error`);
    t.diagnostic(`open: ${p.paymentId} ${p.sentSat} sat, ${a!.error} (HTTP ${a!.http_status}), refund awaited after ${p.evidence?.rounds ?? 0} rounds`);
  }
  const openSat = open.reduce((x, p) => x + p.sentSat, 0);

  // Sessions: each one's books against its attempts.
  const sessions = sessionBooks(o.dir);
  const sessionChargedSat = withDb(o.dir, sessionChargesSat);
  let interruptedChargesSat = 0;
  for (const s of sessions) {
    const held = s.deposited - s.charged - s.refunded - s.lost;
    const line = `session ${s.id} at ${s.provider} ${s.state}: deposited ${s.deposited}, charged ${s.charged} (${s.chargedMsat} msat; attempts ${s.attemptsMsat} msat), refunded ${s.refunded}, lost ${s.lost}, held ${held}, ${s.cutCharged} cut and charged, ${s.interrupted} cut uncharged, flags ${s.flags}`;
    t.diagnostic(line);
    // Beyond its attempts' charges (rounded up once), a session was charged only for requests a
    // kill cut there that no attempt shows: the node served them; at most what they reserved.
    const beyond = s.charged - Math.ceil(s.attemptsMsat / 1000);
    assert.ok(s.interrupted > 0 || (beyond === 0 && s.chargedMsat === s.attemptsMsat), `${s.id}: charged beyond its attempts with no request cut there to explain it: ${line}`);
    assert.ok(beyond >= 0 && beyond <= Math.ceil(s.interruptedReservedMsat / 1000), `${s.id}: the node kept ${beyond} sat beyond the attempts, more than the cut requests reserved (${s.interruptedReservedMsat} msat): ${line}`);
    assert.ok(!JSON.parse(s.flags).includes('unreported_charge') || s.interrupted > 0, `${s.id}: an honest provider flagged: ${line}`);
    interruptedChargesSat += beyond;
    if (s.lost > 0) {
      // A session is lost only with a provider that vanished holding it: bounded by its cap, with evidence.
      const v = o.vanished.find((x) => x.url === s.provider);
      assert.ok(v, `${s.id}: ${s.lost} sat lost at ${s.provider}, which never vanished: ${line}`);
      assert.ok(s.lost <= v.capSat, `${s.id}: ${s.lost} sat lost, above the cap ${v.capSat} the daemon showed for ${s.provider}`);
      const evidence = JSON.parse(s.evidence ?? 'null') as { provider?: string; node_answer?: string; tries?: number } | null;
      assert.equal(evidence?.provider, s.provider, `${s.id}: the loss names the provider: ${s.evidence}`);
      assert.ok(num(evidence?.tries) > 1, `${s.id}: written off only after asking again: ${s.evidence}`);
    }
    assert.notEqual(s.state, 'refunding', `${s.id}: its refund token is swapped in by the end`);
  }
  const sessionSum = (f: (s: SessionBooks) => number) => sessions.reduce((x, s) => x + f(s), 0);
  const figures = {
    openSat, reclaimFees, depositFees, ownFees, fundedWorld, funded: w.funded, received: w.received, unspent: w.unspent, pending: w.pending,
    paidToProviders: w.paidToProviders, mintFees: w.mintFees, losses: w.losses, sentSat, changeSat, feeSat, lostSat, chargedMsat, surplusSat,
    sessions: sessions.length, heldInSessions: w.heldInSessions, sessionDeposited: w.sessionDeposited, sessionRefunded: w.sessionRefunded,
    sessionCharged: w.sessionCharged, sessionChargedSat, interruptedChargesSat, sessionLost: w.sessionLost,
    requests: audit.requests!.length, attempts: attempts.length, sessionAttempts: fromSession.length,
  };
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

  // Exact sat arithmetic. X-Cashu: tokens move in whole sats.
  assert.equal(chargedMsat % 1000, 0, 'tokens move in whole sats');
  const chargedSat = chargedMsat / 1000;
  assert.equal(chargedSat, sentSat - changeSat - feeSat + surplusSat, 'charged = sent - change - fee (+ surplus, charged 0)');
  for (const a of fromSession) {
    assert.equal(num(a.sent_sats) + num(a.change_sats) + num(a.fee_sats), 0, `a session attempt moves no token (${a.request_id}#${a.attempt})`);
    assert.equal(num(a.charged_msat), num(a.session_charged_msat), `a session attempt is charged its balance's decrease (${a.request_id}#${a.attempt})`);
  }
  assert.equal(w.funded, fundedWorld, 'the wallet was funded with exactly what Lightning paid into its quotes');
  assert.equal(w.received, 0);
  assert.equal(w.paidToProviders + reclaimFees + openSat, sentSat - changeSat + lostSat, 'the wallet paid providers (and the mint, for tokens taken back; and holds open) what the request ledger says');
  assert.equal(lostSat, 0, 'no change lost: every provider here is honest');
  assert.equal(w.losses, 0, 'no loss: every provider here is honest and every kill is recovered');
  assert.ok(w.pending >= openSat, 'open payments are held as pending');
  // Sessions: the wallet's ledger against its session rows and the request ledger.
  assert.equal(w.sessionDeposited, sessionSum((s) => s.deposited), 'deposited: the ledger and the sessions agree');
  assert.equal(w.sessionRefunded, sessionSum((s) => s.refunded), 'refunded: the ledger and the sessions agree');
  assert.equal(w.sessionLost, sessionSum((s) => s.lost), 'lost: the ledger and the sessions agree');
  assert.equal(w.sessionCharged, sessionChargedSat + interruptedChargesSat, 'session charges = what the attempts were charged (rounded up per session) + what interrupted requests cost');
  assert.equal(w.heldInSessions, w.sessionDeposited - w.sessionCharged - w.sessionRefunded - w.sessionLost, 'held = deposited - charged - refunded - lost');
  assert.ok(depositFees <= ownFees, 'deposits\' input fees are among the wallet\'s own mint fees');
  assert.equal(fundedWorld,
    w.unspent + (w.pending - openSat) + w.heldInSessions
      + chargedSat + feeSat - surplusSat + lostSat
      + sessionChargedSat + interruptedChargesSat
      + ownFees + w.losses + w.sessionLost,
    'funded = wallet + held in sessions + charged (tokens and sessions) + fees + evidenced losses');
}
