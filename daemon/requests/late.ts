// Late outcomes (DESIGN.md step 6-7): what the wallet learns about a payment after its attempt
// ended - change swapped in or refused as invalid, a token reclaimed from the mint, a refund
// from the provider's refund endpoint, a loss recorded with evidence - reaches the request books
// here. One transaction: the attempt's change, loss and fact flags replaced by the wallet's facts
// (reconciled again, rolled up into its request) and, for a finished request, its budget settled
// again at the new cost. Returns what changed, so the caller can tell the router, the metrics
// and the `payments` topic; null when nothing did (the common case: change swapped as claimed).
import type { DB } from '../../db/sqlite.ts';
import type { PaymentOutcome } from '../../wallet/payments/index.ts';
import type { Budgets } from './budgets.ts';
import { requestCostMsat, type AttemptRow, type RequestLedger, type RequestRow } from './ledger.ts';
import { paymentFacts } from './payment-facts.ts';
import type { Flag } from './reconcile.ts';

export interface LateChange {
  before: AttemptRow;
  after: AttemptRow;
  request: RequestRow;
  /** Flags the attempt did not have before. */
  newFlags: Flag[];
}

export function applyLateOutcome(books: { db: DB; ledger: RequestLedger; budgets: Budgets }, o: PaymentOutcome): LateChange | null {
  const { db, ledger, budgets } = books;
  const before = ledger.attemptByPayment(o.paymentId);
  // Not a request's payment, or its attempt still running (its own finish reads the facts).
  if (!before || before.status === 'pending') return null;
  const f = paymentFacts(o);
  if (before.changeSat === f.returnedSat && before.lostSat === f.lostSat && f.facts.every((x) => before.flags.includes(x))) return null;
  return db.transaction((): LateChange => {
    const request = ledger.applyLate(o.paymentId, { changeSat: f.returnedSat, lostSat: f.lostSat, facts: f.facts })!;
    if (request.status !== 'pending') budgets.settle(request.id, requestCostMsat(request));
    const after = ledger.attemptByPayment(o.paymentId)!;
    return { before, after, request, newFlags: after.flags.filter((x) => !before.flags.includes(x)) };
  }).immediate();
}
