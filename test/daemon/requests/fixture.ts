// A small request ledger for the audit tests (library and CLI): four requests by two clients
// over two days, one failover, two overcharges.
import { normalizePrice } from '../../../protocol/pricing.ts';
import type { DB } from '../../../db/sqlite.ts';
import { RequestLedger } from '../../../daemon/requests/ledger.ts';

export const T0 = Date.UTC(2026, 10, 30, 9, 0, 0);
export const HOUR = 3_600_000;
const PRICE = normalizePrice({ sats_pricing: { prompt: 0.01, completion: 0.05, max_cost: 60 } })!;
const USAGE = { promptTokens: 1000, completionTokens: 200 };

/** A ledger with four requests: honest, overcharged (after a failover), another client's, and one the next day. */
export function fillLedger(db: DB): RequestLedger {
  let now = T0;
  const ledger = new RequestLedger(db, () => now);
  const served = (id: string, client: string, at: number, tries: { provider: string; ok: boolean; changeSat: number; reportedMsat?: number }[], model = 'tiny') => {
    now = at;
    ledger.open({ id, client, endpoint: '/v1/chat/completions', modelRequested: model, stream: false, payment: 'xcashu', priceSnapshot: PRICE });
    tries.forEach((tr, i) => {
      ledger.startAttempt({ requestId: id, n: i + 1, providerId: tr.provider, providerUrl: `http://${tr.provider}.test`, modelId: model, mint: 'http://mint.test', paymentId: `${id}.${i + 1}`, price: PRICE, sentSat: 40, feeSat: 1 });
      ledger.finishAttempt(id, i + 1, tr.ok
        ? { status: 'succeeded', httpStatus: 200, usage: USAGE, reportedMsat: tr.reportedMsat ?? 20_000, changeSat: tr.changeSat }
        : { status: 'failed', httpStatus: 502, errorCode: 'upstream_error', changeSat: tr.changeSat, facts: ['refunded'] });
    });
    ledger.finishRequest(id, { status: 'succeeded', modelServed: model });
  };
  served('a', 'laptop', T0, [{ provider: 'honest', ok: true, changeSat: 19 }]);
  served('b', 'laptop', T0 + HOUR, [{ provider: 'flaky', ok: false, changeSat: 39 }, { provider: 'greedy', ok: true, changeSat: 9, reportedMsat: 30_000 }], 'model, "quoted"');
  served('c', 'phone', T0 + 2 * HOUR, [{ provider: 'honest', ok: true, changeSat: 19 }]);
  served('d', 'phone', T0 + 25 * HOUR, [{ provider: 'greedy', ok: true, changeSat: 9, reportedMsat: 30_000 }]);
  return ledger;
}

