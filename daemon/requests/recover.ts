// Requests a crash left `pending` (DESIGN.md step 7). Run on start, after the wallet's own
// recovery has settled every orphaned token (NUT-07, the refund endpoint, a loss with evidence)
// and before the daemon listens. Each such request is finished `failed` (`interrupted`), each of
// its pending attempts from what the wallet knows of its payment; a payment the wallet could not
// settle yet (mint unreachable, refund awaited) reaches the books later as a late outcome. Its
// budget reservation is settled at the cost known now, in the same transaction.
import type { DB } from '../../db/sqlite.ts';
import type { Budgets } from './budgets.ts';
import { requestCostMsat, type RequestLedger } from './ledger.ts';
import type { PaymentFacts } from './payment-facts.ts';
import { migrateRequests } from './schema.ts';

export interface RecoveredRequests {
  requests: number;
  attempts: number;
}

export function recoverInterrupted(
  books: { db: DB; ledger: RequestLedger; budgets: Budgets },
  facts: (paymentId: string) => PaymentFacts | undefined,
  clock: () => number = Date.now,
): RecoveredRequests {
  const { db, ledger, budgets } = books;
  migrateRequests(db);
  const ids = db.prepare(`SELECT id FROM requests WHERE status = 'pending' ORDER BY time`).pluck().all() as string[];
  const out: RecoveredRequests = { requests: 0, attempts: 0 };
  for (const id of ids) {
    db.transaction(() => {
      for (const a of ledger.attempts(id)) {
        if (a.status !== 'pending') continue;
        const f = a.paymentId ? facts(a.paymentId) : undefined;
        ledger.finishAttempt(id, a.n, {
          status: 'failed', errorCode: 'interrupted', error: 'the daemon stopped during this attempt',
          changeSat: f?.returnedSat ?? 0, lostSat: f?.lostSat ?? 0, facts: f?.facts ?? [], endedAt: clock(),
        });
        out.attempts += 1;
      }
      const row = ledger.finishRequest(id, { status: 'failed', errorCode: 'interrupted', error: 'the daemon stopped during this request' });
      budgets.settle(id, requestCostMsat(row));
      out.requests += 1;
    }).immediate();
  }
  return out;
}
