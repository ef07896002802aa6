// Taking one session's balance home: POST /v1/balance/refund (session-api.ts), as routstr-core
// v0.4.5 balance.py answers it, and the wallet's booking of what came of it.
//   200                      the token into the change queue (sessionRefund); closed
//   400 no balance / too small  nothing to refund: the wallet closes the session now
//   400 ongoing requests, 409,  tried again after each delay of REFUND_RETRY_MS; still
//   5xx, no answer              refused: written off as a loss with the evidence - but the row
//                               stays `closing`, so the next start asks again, and a refund that
//                               comes after all corrects the loss (wallet/payments/sessions.ts)
//   410 swept, 401 key unknown  the node will never give it back: a loss, closed
// A session whose token is already queued (a crash after queuing) is not asked again: the same
// token queued twice would be refused at its second swap.
import type { Logger } from '../../protocol/logger.ts';
import { SessionApiError, type SessionApi } from './session-api.ts';
import type { SessionRow, SessionStore } from './session-store.ts';
import type { Payments } from '../../wallet/payments/index.ts';

/** What the session manager needs of the wallet's payment path. */
export type SessionPayments = Pick<Payments, 'sessionDeposit' | 'sessionDeposited' | 'sessionCharge' | 'sessionRefund' | 'sessionLost' | 'session' | 'reclaim'>;

/** Delays between refund tries (ms): ongoing requests, a concurrent change, a node error, no answer. */
export const REFUND_RETRY_MS = [500, 1_000, 2_000, 5_000, 10_000] as const;

export interface RefundDeps {
  payments: SessionPayments;
  store: SessionStore;
  api: SessionApi;
  sleep(ms: number): Promise<void>;
  logger: Logger;
  onFlag?: (providerId: string, flag: string, detail: Record<string, unknown>) => void;
}

export async function refundSession(d: RefundDeps, row: SessionRow, reason: string): Promise<void> {
  const { payments, store } = d;
  store.setState(row.sessionId, 'closing');
  const wallet = payments.session(row.sessionId);
  if (!wallet || wallet.state === 'closed' || wallet.state === 'refunding') {
    store.setState(row.sessionId, 'closed');
    return;
  }
  let last: SessionApiError | null = null;
  for (let i = 0; i <= REFUND_RETRY_MS.length; i++) {
    try {
      const r = await d.api.refund(row.providerUrl, row.apiKey);
      payments.sessionRefund(row.sessionId, r.token, { reason, refund_msat: r.amountMsat });
      store.setState(row.sessionId, 'closed');
      d.logger.info('session refunded', { session: row.sessionId, provider: row.providerId, reason, amountMsat: r.amountMsat });
      return;
    } catch (err) {
      if (!(err instanceof SessionApiError)) throw err;
      last = err;
      if (err.code === 'no_balance') {
        payments.sessionRefund(row.sessionId, null, { reason, node: err.message });
        store.setState(row.sessionId, 'closed');
        return;
      }
      if (err.code === 'swept' || err.code === 'key_not_found') break;
      if (i < REFUND_RETRY_MS.length) await d.sleep(REFUND_RETRY_MS[i]);
    }
  }
  const final = last?.code === 'swept' || last?.code === 'key_not_found';
  if (last?.code === 'ongoing_requests') {
    d.logger.warn('session refund postponed: the node still runs requests on it', { session: row.sessionId });
    return; // left 'closing': the next start tries again
  }
  const evidence = { reason, provider: row.providerUrl, node_status: last?.status ?? null, node_answer: last?.code ?? 'unknown', detail: last?.message.slice(0, 200), tries: REFUND_RETRY_MS.length + 1 };
  if (payments.session(row.sessionId)?.state !== 'lost') {
    payments.sessionLost(row.sessionId, evidence);
    d.onFlag?.(row.providerId, 'session_lost', evidence);
  }
  // Swept or forgotten: never coming. Otherwise the next start asks again.
  if (final) store.setState(row.sessionId, 'closed');
}
