// Requests a kill cut while they ran on a session (DESIGN.md step 7, in session mode). The
// restart finishes them `interrupted` (recover.ts) without knowing what the node charged: a node
// serves a request to its end though the client is gone (proxy.py), and takes its cost from the
// balance. Before such a session is refunded on start, the node's balance tells: what it lost
// beyond the charges we booked is what those requests cost, at most what they reserved. That is
// charged to the cut requests - each one's attempt, its request and the client's budget learn
// their part, in one transaction. Several cut on one session: the node's balance shows only their
// sum, so it is split pro rata to their reservations (each request's worst case, which is what
// the node reserved for it too): integer msat, the rounding remainder to the largest, never above
// any one's reservation, the parts adding up exactly. The close then finds nothing unexplained, so
// the provider is not flagged for our crash; a node that kept more than the cut requests could
// cost is still flagged there.
import type { DB } from '../../db/sqlite.ts';
import type { Budgets } from './budgets.ts';
import { requestCostMsat, type RequestLedger } from './ledger.ts';
import type { SessionApi } from './session-api.ts';
import type { SessionPayments } from './session-refund.ts';
import type { SessionRow } from './session-store.ts';

/** The request books a session's cut requests are charged in. */
export interface InterruptedBooks {
  ledger: RequestLedger;
  budgets: Budgets;
}

export interface CutAttempt {
  requestId: string;
  n: number;
  /** The request's reservation (its worst case), msat: the most the node may have charged it. */
  reservedMsat: number;
}

/** Attempts on the session a restart finished `interrupted`, their charge unknown. */
export function cutAttempts(db: DB, sessionId: string): CutAttempt[] {
  return db.prepare(`SELECT a.request_id AS requestId, a.n, r.reserved_msat AS reservedMsat FROM attempts a JOIN requests r ON r.id = a.request_id
    WHERE a.session_id = ? AND a.status = 'failed' AND a.error_code = 'interrupted' AND a.session_charged_msat IS NULL ORDER BY a.started_at`).all(sessionId) as CutAttempt[];
}

/** Before the session's refund on start: its cut requests charged what the node's balance lost beyond our charges (msat booked). */
export async function chargeCut(d: { db: DB; books: InterruptedBooks; payments: SessionPayments; api: SessionApi }, row: SessionRow): Promise<number> {
  const cut = cutAttempts(d.db, row.sessionId);
  const wallet = d.payments.session(row.sessionId);
  if (cut.length === 0 || wallet?.state !== 'open') return 0;
  const node = await d.api.info(row.providerUrl, row.apiKey);
  if (node.reservedMsat > 0) return 0; // still running there: the refund waits, and its close books what the node kept
  const oursMsat = (wallet.depositedSat - wallet.refundedSat - wallet.lostSat) * 1000 - wallet.chargedMsat;
  return bookCut(d.db, d.books, d.payments, row.sessionId, cut, oursMsat - node.balanceMsat);
}

/** Book what the balance lost for the cut attempts (`lostMsat`, bounded by their reservations), in one transaction. */
function bookCut(db: DB, books: InterruptedBooks, payments: SessionPayments, sessionId: string, cut: readonly CutAttempt[], lostMsat: number): number {
  const msat = Math.min(lostMsat, cut.reduce((s, a) => s + a.reservedMsat, 0));
  if (msat <= 0) return 0;
  const shares = splitCutCharge(msat, cut.map((a) => a.reservedMsat));
  db.transaction(() => {
    cut.forEach((a, i) => {
      if (shares[i] === 0) return;
      payments.sessionCharge(sessionId, shares[i], `${a.requestId}.${a.n}`);
      const request = books.ledger.lateSessionCharge(a.requestId, a.n, shares[i]);
      books.budgets.settle(a.requestId, requestCostMsat(request));
    });
  }).immediate();
  return msat;
}

/**
 * `totalMsat` split between cut requests pro rata to their reservations (msat, in order): each part
 * rounded down, the remainder given one msat at a time from the largest reservation down, never
 * past a reservation. The parts add up to `totalMsat`, which must not exceed the reservations' sum.
 */
export function splitCutCharge(totalMsat: number, reservedMsat: readonly number[]): number[] {
  const sum = reservedMsat.reduce((s, r) => s + r, 0);
  if (!Number.isSafeInteger(totalMsat) || totalMsat < 0 || totalMsat > sum) throw new RangeError(`cannot split ${totalMsat} msat over reservations of ${sum}`);
  if (totalMsat === 0) return reservedMsat.map(() => 0);
  // BigInt: total x reservation can pass 2^53.
  const shares = reservedMsat.map((r) => Number((BigInt(totalMsat) * BigInt(r)) / BigInt(sum)));
  let left = totalMsat - shares.reduce((s, x) => s + x, 0);
  // One pass is enough: the room left under the reservations is sum - shares >= total - shares.
  const largestFirst = reservedMsat.map((_, i) => i).sort((a, b) => reservedMsat[b] - reservedMsat[a] || a - b);
  for (const i of largestFirst) {
    const room = Math.min(left, reservedMsat[i] - shares[i]);
    shares[i] += room;
    left -= room;
  }
  return shares;
}
