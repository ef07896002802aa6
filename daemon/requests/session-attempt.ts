// One attempt paid from a session balance (sessions.ts), the session twin of attempt.ts: the
// lease reserved locally, the attempt row (no token: sent/fee 0, its session named) written
// before any byte goes out, then the call with `Authorization: Bearer sk-...`. Refusals and
// transport failures end the attempt like an X-Cashu one (attempt.ts refusalFailure /
// transportFailure decide breaker and failover), but no money moves: a node in balance mode
// releases its reservation on an upstream failure, and whatever it kept anyway shows up as a
// shrink when the session is checked.
//
// Settling (in ONE transaction, like settle.ts): the charge (the balance's decrease) booked on
// the wallet's session, the attempt reconciled with it, the request finished, the budget set.
import type { Usage } from '../../protocol/cost.ts';
import type { CallOutcome } from '../../protocol/provider-call.ts';
import { CanceledError, toApiError } from '../api/errors.ts';
import { refusalFailure, transportFailure, type AttemptDeps, type AttemptInput, type AttemptOutcome, type Failure } from './attempt.ts';
import { requestCostMsat, type AttemptRow, type RequestRow } from './ledger.ts';
import type { Books, ServedAttempt } from './settle.ts';
import type { Lease } from './session-contract.ts';
import type { SessionManager } from './sessions.ts';

/** Run one attempt on `lease` (taken by the caller); the lease is released here unless the answer is served. */
export async function runSessionAttempt(d: AttemptDeps, sessions: SessionManager, lease: Lease, a: AttemptInput): Promise<AttemptOutcome> {
  const p = a.planned;
  try {
    d.db.transaction(() => {
      a.open?.();
      d.ledger.startAttempt({
        requestId: a.requestId, n: a.n, providerId: p.providerId, providerUrl: p.providerUrl, modelId: p.model, mint: p.tokenMint,
        paymentId: null, sessionId: lease.sessionId, price: p.price, sentSat: 0, feeSat: 0, startedAt: d.clock(),
      });
    }).immediate();
  } catch (err) {
    sessions.release(lease);
    return { kind: 'unpaid', error: err };
  }
  const t0 = d.now();
  let outcome: CallOutcome;
  try {
    outcome = await d.call({ providerUrl: p.providerUrl, endpoint: a.endpoint, body: a.body, payment: { kind: 'bearer', apiKey: lease.apiKey }, signal: a.signal, timeouts: d.timeouts }, d.callDeps);
  } catch (err) {
    return failedOnSession(d, sessions, lease, a, transportFailure(err, ''), d.now() - t0);
  }
  const providerMs = d.now() - t0;
  if (outcome.kind === 'ok') return { kind: 'ok', paymentId: '', session: lease, call: outcome, providerMs, topUps: 0 };
  return failedOnSession(d, sessions, lease, a, refusalFailure(outcome), providerMs);
}

function failedOnSession(d: AttemptDeps, sessions: SessionManager, lease: Lease, a: AttemptInput, f: Failure, providerMs: number): AttemptOutcome {
  d.ledger.finishAttempt(a.requestId, a.n, { status: 'failed', httpStatus: f.httpStatus, errorCode: f.errorCode, error: f.error, sessionChargedMsat: 0, endedAt: d.clock() });
  // An answer that never came, or a balance the node says is short: check the balance once quiet.
  sessions.release(lease, f.httpStatus === null || f.httpStatus === 402);
  // Nothing left the balance for it (the node releases its reservation): for the router, a retry, not a charge.
  return { kind: 'failed', paymentId: '', failover: f.failover, breaker: f.breaker, error: f.apiError, summary: `${f.errorCode}${f.httpStatus ? ` ${f.httpStatus}` : ''}`, providerMs, refunded: true };
}

/** The serving session attempt and the request end together (settle.ts settleServed, for a balance). */
export function settleSessionServed(
  books: Books, sessions: SessionManager, lease: Lease, a: ServedAttempt, usage: Usage | null, reportedMsat: number | null, remainingMsat: number | null,
  status: 'succeeded' | 'failed' | 'canceled', err: Error | null, clock: () => number,
): { attempt: AttemptRow; request: RequestRow } {
  const chargedMsat = sessions.charge(lease, reportedMsat, remainingMsat);
  try {
    return books.db.transaction(() => {
      sessions.book(lease, chargedMsat, `${a.requestId}.${a.n}`);
      const attempt = books.ledger.finishAttempt(a.requestId, a.n, {
        status: 'succeeded', httpStatus: a.httpStatus, usage, reportedMsat, sessionChargedMsat: chargedMsat,
        errorCode: err ? (err instanceof CanceledError ? 'canceled' : 'stream_broken') : null, error: err?.message ?? null, firstByteAt: a.firstByteAt ?? null, endedAt: clock(),
      });
      const request = books.ledger.finishRequest(a.requestId, { status, modelServed: a.model, errorCode: err ? toApiError(err).code : null, error: err?.message ?? null, endedAt: clock() });
      books.budgets.settle(a.requestId, requestCostMsat(request));
      return { attempt, request };
    }).immediate();
  } finally {
    sessions.release(lease, status !== 'succeeded');
  }
}

/** A session stream that broke before its first event reached the client: the attempt failed, the next candidate may serve. */
export function settleSessionBrokenEarly(books: Books, sessions: SessionManager, lease: Lease, a: ServedAttempt, reportedMsat: number | null, err: Error, clock: () => number): void {
  const chargedMsat = sessions.charge(lease, reportedMsat, null);
  try {
    books.db.transaction(() => {
      if (chargedMsat > 0) sessions.book(lease, chargedMsat, `${a.requestId}.${a.n}`);
      books.ledger.finishAttempt(a.requestId, a.n, { status: 'failed', httpStatus: a.httpStatus, errorCode: 'stream_broken', error: err.message, sessionChargedMsat: chargedMsat, endedAt: clock() });
    }).immediate();
  } finally {
    sessions.release(lease, true);
  }
}
