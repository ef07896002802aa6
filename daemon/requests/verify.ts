// Per-request consistency for `satroute audit verify` (beside the wallet's money invariant):
// - each attempt: charged = max(0, sent - change - fee) x 1000 msat, plus what a session balance
//   lost for it (session mode: no token, its session named); flagged change_surplus when the
//   change exceeded sent - fee;
// - each attempt paid by token: its wallet payment exists, with the same sent and fee, and -
//   once the payment is final - the same change handed back, loss and money flags;
// - each request: its totals are the sums of its attempts.
// Every difference is one line naming the request, the attempt and both figures.
import type { DB } from '../../db/sqlite.ts';
import type { PaymentFacts } from './payment-facts.ts';
import { attemptFromDb, requestFromDb, type AttemptDbRow, type RequestDbRow } from './rows.ts';
import { keptBy } from './reconcile.ts';
import { migrateRequests } from './schema.ts';

export interface RequestsVerifyReport {
  ok: boolean;
  requests: number;
  attempts: number;
  /** Attempts whose payment is not final yet (token out, refund awaited): money not compared. */
  open: number;
  differences: string[];
}

/** Check every request and attempt; `payment(id)` reads the wallet's facts for a payment id. */
export function verifyRequests(db: DB, payment: (paymentId: string) => PaymentFacts | undefined): RequestsVerifyReport {
  migrateRequests(db);
  const report: RequestsVerifyReport = { ok: true, requests: 0, attempts: 0, open: 0, differences: [] };
  const diff = (line: string) => report.differences.push(line);
  const attemptsOf = db.prepare('SELECT * FROM attempts WHERE request_id = ? ORDER BY n');
  db.transaction(() => {
    for (const raw of db.prepare('SELECT * FROM requests ORDER BY time, id').iterate() as IterableIterator<RequestDbRow>) {
      const r = requestFromDb(raw);
      report.requests += 1;
      const attempts = (attemptsOf.all(r.id) as AttemptDbRow[]).map(attemptFromDb);
      for (const a of attempts) {
        report.attempts += 1;
        const at = `request ${r.id} attempt ${a.n} (${a.providerId})`;
        const { chargedMsat: keptMsat, surplusSat } = keptBy(a.sentSat, a.changeSat, a.feeSat);
        const kept = keptMsat + (a.sessionChargedMsat ?? 0);
        const session = a.sessionChargedMsat === null ? '' : ` + session ${a.sessionChargedMsat} msat`;
        if (a.chargedMsat !== kept) diff(`${at}: charged ${a.chargedMsat} msat, but sent ${a.sentSat} - change ${a.changeSat} - fee ${a.feeSat} sat${session} = ${kept} msat`);
        if ((surplusSat > 0) !== a.flags.includes('change_surplus')) diff(`${at}: change surplus ${surplusSat} sat, but the flag change_surplus is ${a.flags.includes('change_surplus') ? 'set' : 'not set'}`);
        if (a.paymentId === null) {
          if (a.sessionId === null) diff(`${at}: names neither a wallet payment nor a session`);
          continue;
        }
        const p = payment(a.paymentId);
        if (!p) {
          diff(`${at}: the wallet has no payment ${a.paymentId}`);
          continue;
        }
        if (p.sentSat !== a.sentSat) diff(`${at}: sent ${a.sentSat} sat, but the wallet's payment ${a.paymentId} sent ${p.sentSat} sat`);
        if (p.feeSat !== a.feeSat) diff(`${at}: input fee ${a.feeSat} sat, but the wallet's payment ${a.paymentId} has ${p.feeSat} sat`);
        if (!p.final || a.status === 'pending') {
          report.open += 1;
          continue;
        }
        if (p.returnedSat !== a.changeSat) diff(`${at}: change ${a.changeSat} sat, but the wallet got ${p.returnedSat} sat back for payment ${a.paymentId}`);
        if (p.lostSat !== a.lostSat) diff(`${at}: lost ${a.lostSat} sat, but the wallet lost ${p.lostSat} sat of payment ${a.paymentId}`);
        for (const f of p.facts) if (!a.flags.includes(f)) diff(`${at}: the wallet says ${f}, the ledger does not`);
      }
      const sum = (f: (a: (typeof attempts)[number]) => number) => attempts.reduce((t, a) => t + f(a), 0);
      const totals: [string, number, number][] = [
        ['sent_sats', r.sentSat, sum((a) => a.sentSat)], ['change_sats', r.changeSat, sum((a) => a.changeSat)],
        ['fee_sats', r.feeSat, sum((a) => a.feeSat)], ['lost_sats', r.lostSat, sum((a) => a.lostSat)],
        ['charged_msat', r.chargedMsat, sum((a) => a.chargedMsat)], ['attempts', r.attempts, attempts.length],
      ];
      for (const [name, own, summed] of totals) if (own !== summed) diff(`request ${r.id}: ${name} ${own}, but its attempts add up to ${summed}`);
    }
  })();
  report.ok = report.differences.length === 0;
  return report;
}
