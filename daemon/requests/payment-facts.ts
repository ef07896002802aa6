// What the wallet knows about one payment, in the ledger's terms - the one place that reads the
// wallet's PaymentOutcome. The request path feeds these facts to RequestLedger.finishAttempt /
// applyLate; `audit verify` compares them with the attempt rows.
import type { PaymentOutcome } from '../../wallet/payments/index.ts';
import type { FactFlag } from './reconcile.ts';

export interface PaymentFacts {
  sentSat: number;
  feeSat: number;
  /**
   * What came back from the provider's side: change and refunds that are not invalid (queued,
   * received, or lost on our side), or, for a token reclaimed unredeemed at the mint, the
   * whole token less its input fee - so the provider is charged nothing.
   */
  returnedSat: number;
  /** Valid change whose swap ended lost (counted in returnedSat: the provider gave it back). */
  lostSat: number;
  facts: FactFlag[];
  /** The payment has reached its end state (not pending, not waiting for a refund). */
  final: boolean;
}

export function paymentFacts(o: PaymentOutcome): PaymentFacts {
  const valid = o.changes.filter((c) => c.state !== 'invalid');
  const facts: FactFlag[] = [];
  if (o.changes.some((c) => c.state === 'invalid')) facts.push('change_invalid');
  if (o.state === 'refunded' || valid.some((c) => c.kind === 'refund')) facts.push('refunded');
  if (o.state === 'lost') facts.push('lost');
  const returnedSat = o.state === 'reclaimed' ? o.sentSat - o.feeSat : valid.reduce((t, c) => t + c.claimedSat, 0);
  return {
    sentSat: o.sentSat, feeSat: o.feeSat, returnedSat,
    lostSat: valid.filter((c) => c.state === 'lost').reduce((t, c) => t + c.claimedSat, 0),
    facts, final: o.state !== 'pending' && o.state !== 'refund_wait',
  };
}

/** A lookup of payment facts by payment id, from anything that can tell a payment's outcome (the wallet's Payments). */
export function paymentFactsLookup(payments: { outcome(paymentId: string): PaymentOutcome | undefined }): (paymentId: string) => PaymentFacts | undefined {
  return (paymentId) => {
    const o = payments.outcome(paymentId);
    return o && paymentFacts(o);
  };
}
