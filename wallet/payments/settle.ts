// How a payment's proofs end once a provider redeemed them, and the reclaim purpose's
// bookkeeping (the swap that takes back a token a provider saw but, we think, never redeemed).
// Synchronous: both run inside the transaction of the settle or of the reclaim swap.
import type { WalletContext } from '../context.ts';
import { NUT_CODE } from '../mints.ts';
import type { PurposeHandler } from '../swap/service.ts';
import type { PaymentRow, PaymentRows } from './rows.ts';
import type { SessionBook } from './sessions.ts';

/**
 * The provider redeemed the token: its proofs pending for the payment are spent (ledger:
 * payment_sent) and the payment is `state` ('settled', or 'refunded' when it handed the token
 * back as a refund). False when none are pending.
 */
export function settleSpent(ctx: WalletContext, rows: PaymentRows, row: PaymentRow, state: 'settled' | 'refunded' = 'settled'): boolean {
  if (ctx.store.markSpentIfPending(row.paymentId).count === 0) return false;
  ctx.ledger.record({ kind: 'payment_sent', mint: row.mint, unit: row.unit, amount: -row.sentSat, ref: row.paymentId,
    evidence: { provider: row.providerUrl, amount: row.amountSat, input_fee: row.feeSat, overpay: row.overpaySat } });
  rows.setState(row.paymentId, state);
  return true;
}

/**
 * The provider credited a session deposit (the payment's token): its proofs pending for the
 * payment are spent, the session holds their value less the input fee, the payment is 'settled'.
 * False when none are pending (a reclaim swap holds them).
 */
export function depositTaken(ctx: WalletContext, rows: PaymentRows, sessions: SessionBook, row: PaymentRow, evidence: unknown): boolean {
  if (!row.sessionId || ctx.store.markSpentIfPending(row.paymentId).count === 0) return false;
  sessions.deposited(row.sessionId, row.paymentId, row.sentSat, row.feeSat, evidence);
  rows.setState(row.paymentId, 'settled', { session: row.sessionId, ...(evidence && typeof evidence === 'object' ? evidence : {}) });
  return true;
}

/** The 'reclaim' purpose: the swap's ref is the payment id. */
export function reclaimHandler(ctx: WalletContext, rows: PaymentRows): PurposeHandler {
  return {
    done: (swap, r) => {
      ctx.ledger.record({ kind: 'mint_fee', mint: swap.mint, unit: swap.unit, amount: -r.fee, ref: swap.id, evidence: { purpose: 'reclaim', payment: swap.ref } });
      if (swap.ref) rows.setState(swap.ref, 'reclaimed', { swap: swap.id, fee: r.fee, restored: r.restored });
    },
    rejected: (swap, failure, own) => {
      // Nothing happened at the mint: the proofs go back to the payment; resolving it again
      // (NUT-07 first) decides between another reclaim and the refund path.
      ctx.store.releaseSecrets(own);
      if (swap.ref) ctx.store.movePending(own, 'request', swap.ref);
      const payment = swap.ref ? rows.get(swap.ref) : undefined;
      // The provider's answer settled (or refunded) it while this swap was out, and the mint says it spent them.
      const answered = payment?.flags.includes('settled_during_reclaim') ? 'settled' : payment?.flags.includes('refunded_during_reclaim') ? 'refunded' : null;
      if (payment && answered && failure.kind === 'rejected' && failure.mintCode === NUT_CODE.PROOFS_ALREADY_SPENT) {
        settleSpent(ctx, rows, payment, answered);
        return;
      }
      ctx.logger.warn('reclaim refused by the mint', { payment: swap.ref, error: failure.message });
    },
    lost: (swap, evidence) => {
      if (swap.ref) {
        rows.setState(swap.ref, 'lost', evidence);
        rows.addFlag(swap.ref, 'lost');
      }
    },
  };
}
