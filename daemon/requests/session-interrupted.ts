// Requests a kill cut while they ran on a session (DESIGN.md step 7, in session mode). The
// restart finishes them `interrupted` (recover.ts) without knowing what the node charged: a node
// serves a request to its end though the client is gone (proxy.py), and takes its cost from the
// balance. Before such a session is refunded on start, the node's balance tells: what it lost
// beyond the charges we booked is what those requests cost, at most what they reserved. One cut
// request: charged to it (its attempt, its request and the client's budget learn it). Several:
// booked on the session (`<session>.interrupted`), the split between them being unknowable.
// Either way the close finds nothing unexplained, so the provider is not flagged for our crash;
// a node that kept more than the cut requests could cost is still flagged there.
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
  db.transaction(() => {
    if (cut.length > 1) return void payments.sessionCharge(sessionId, msat, `${sessionId}.interrupted`);
    const [a] = cut;
    payments.sessionCharge(sessionId, msat, `${a.requestId}.${a.n}`);
    const request = books.ledger.lateSessionCharge(a.requestId, a.n, msat);
    books.budgets.settle(a.requestId, requestCostMsat(request));
  }).immediate();
  return msat;
}
