// Settling an attempt whose provider took the token, each in ONE commit (one fsync): the wallet's
// settle (its proofs spent, the change or refund queued), the attempt reconciled with the
// wallet's facts, and - for the attempt that ends the request - the request finished and its
// budget set to the real cost. Synchronous: the caller awaits nothing in between.
import type { Usage } from '../../protocol/cost.ts';
import type { DB } from '../../db/sqlite.ts';
import { CanceledError, toApiError } from '../api/errors.ts';
import type { PaymentPath } from './attempt.ts';
import type { Budgets } from './budgets.ts';
import { requestCostMsat, type AttemptRow, type RequestLedger, type RequestRow } from './ledger.ts';
import { paymentFacts } from './payment-facts.ts';

export interface Books {
  db: DB;
  ledger: RequestLedger;
  budgets: Budgets;
  payments: Pick<PaymentPath, 'settle'>;
}

/** The attempt that served (or broke while serving): which one, and what the node sent. */
export interface ServedAttempt {
  requestId: string;
  n: number;
  paymentId: string;
  /** The provider's model id. */
  model: string;
  httpStatus: number;
  changeToken: string | undefined;
  /** When the first streamed event went to the client: written with the settlement, not in a commit of its own. */
  firstByteAt?: number;
}

/** The serving attempt and the request end together: `status` is the request's; `err` why it did not succeed. */
export function settleServed(
  books: Books, a: ServedAttempt, usage: Usage | null, reportedMsat: number | null, status: 'succeeded' | 'failed' | 'canceled', err: Error | null, clock: () => number,
): { attempt: AttemptRow; request: RequestRow } {
  const { ledger, budgets, payments } = books;
  return books.db.transaction(() => {
    const facts = paymentFacts(payments.settle(a.paymentId, a.changeToken ?? null));
    const attempt = ledger.finishAttempt(a.requestId, a.n, {
      status: 'succeeded', httpStatus: a.httpStatus, usage, reportedMsat, changeSat: facts.returnedSat, lostSat: facts.lostSat, facts: facts.facts,
      errorCode: err ? (err instanceof CanceledError ? 'canceled' : 'stream_broken') : null, error: err?.message ?? null, firstByteAt: a.firstByteAt ?? null, endedAt: clock(),
    });
    const request = ledger.finishRequest(a.requestId, {
      status, modelServed: a.model, errorCode: err ? toApiError(err).code : null, error: err?.message ?? null, endedAt: clock(),
    });
    budgets.settle(a.requestId, requestCostMsat(request));
    return { attempt, request };
  }).immediate();
}

/** A stream that broke before its first event reached the client: the attempt failed (the node kept the token; its change is banked). */
export function settleBrokenEarly(books: Books, a: ServedAttempt, err: Error, clock: () => number): void {
  books.db.transaction(() => {
    const facts = paymentFacts(books.payments.settle(a.paymentId, a.changeToken ?? null));
    books.ledger.finishAttempt(a.requestId, a.n, {
      status: 'failed', httpStatus: a.httpStatus, errorCode: 'stream_broken', error: err.message, changeSat: facts.returnedSat, lostSat: facts.lostSat,
      facts: facts.facts, endedAt: clock(),
    });
  }).immediate();
}

/** No attempt served: the request ends (its attempts are finished already) and its budget is settled. */
export function finishUnserved(books: Books, requestId: string, status: 'failed' | 'canceled', err: Error, clock: () => number): RequestRow {
  return books.db.transaction(() => {
    const request = books.ledger.finishRequest(requestId, { status, errorCode: toApiError(err).code, error: err.message, endedAt: clock() });
    books.budgets.settle(requestId, requestCostMsat(request));
    return request;
  }).immediate();
}

/**
 * What the statistics should see as charged: the charge less the whole-sat rounding an honest node
 * adds (it returns change in whole sats, so it keeps ceil(cost / 1000) sats). Without this a
 * request costing 470 msat "costs" 1000 - a ratio of 2.1 that says nothing about the provider
 * and would mark every honest one an overcharger on small requests.
 */
export function chargeBeyondRounding(chargedMsat: number, expectedMsat: number): number {
  const rounding = Math.ceil(expectedMsat / 1000) * 1000 - expectedMsat;
  return Math.max(0, chargedMsat - rounding);
}
