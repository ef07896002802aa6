// What the books add to one request, measured on a real SQLite file with synchronous=FULL as
// the daemon runs (and NORMAL, to see the work apart from the fsyncs): authenticate the client key; reserve the budget and write the request row
// (one transaction); write the attempt row; then settle - attempt outcome, request end and the
// budget's real cost in one transaction. (The lead's lifecycle puts the attempt row inside the
// wallet's takeToken transaction and the settlement inside the wallet's settle; here they
// commit on their own, so these figures are an upper bound: three commits, each an fsync.)
// Measured on a day that already holds 20,000 requests of the same client, where a SUM over
// the day would show.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Figure } from './_figure.ts';
import { openDatabase } from '../db/sqlite.ts';
import { normalizePrice } from '../protocol/pricing.ts';
import { ClientKeys } from '../daemon/api/auth.ts';
import { Budgets } from '../daemon/requests/budgets.ts';
import { RequestLedger, requestCostMsat } from '../daemon/requests/ledger.ts';

const PRICE = normalizePrice({ sats_pricing: { prompt: 0.01, completion: 0.05, max_cost: 60 } })!;
const PRIOR_REQUESTS = 20_000;
const MEASURED = 1_000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Per-request times (ms, sorted) and budget reservation times on a busy day, at this sync level. */
function measure(synchronous: 'FULL' | 'NORMAL'): { request: number[]; reserve: number[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-bench-books-'));
  const db = openDatabase(path.join(dir, 'satroute.sqlite'), { synchronous });
  try {
    const now = Date.UTC(2026, 10, 30, 12);
    const keys = new ClientKeys(db, () => now);
    const budgets = new Budgets(db, () => now);
    const ledger = new RequestLedger(db, () => now);
    const { key } = keys.create({ name: 'bench', dailySats: 1_000_000_000, maxSatsPerRequest: 1_000 });
    const header = `Bearer ${key}`;

    const request = (id: string) => {
      const client = keys.authenticate(header);
      db.transaction(() => {
        budgets.reserve(id, client, 40_000);
        ledger.open({ id, client: client.name, endpoint: '/v1/chat/completions', modelRequested: 'tiny', stream: false, payment: 'xcashu', reservedMsat: 40_000, priceSnapshot: PRICE });
      }).immediate();
      ledger.startAttempt({ requestId: id, n: 1, providerId: 'p', providerUrl: 'http://p.test', modelId: 'tiny', mint: 'http://mint.test', paymentId: `${id}.1`, price: PRICE, sentSat: 40, feeSat: 1 });
      db.transaction(() => {
        ledger.finishAttempt(id, 1, { status: 'succeeded', httpStatus: 200, usage: { promptTokens: 1000, completionTokens: 200 }, reportedMsat: 20_000, changeSat: 19 });
        budgets.settle(id, requestCostMsat(ledger.finishRequest(id, { status: 'succeeded', modelServed: 'tiny' })));
      }).immediate();
    };

    // A busy day first, in one transaction (not measured).
    db.transaction(() => { for (let i = 0; i < PRIOR_REQUESTS; i++) request(`prior-${i}`); })();

    const timed = (f: (i: number) => void) => {
      const times: number[] = [];
      for (let i = 0; i < MEASURED; i++) {
        const t0 = performance.now();
        f(i);
        times.push(performance.now() - t0);
      }
      return times.sort((a, b) => a - b);
    };
    return {
      request: timed((i) => request(`m-${i}`)),
      reserve: timed((i) => budgets.reserve(`r-${i}`, { name: 'bench', dailySats: 1_000_000_000, maxSatsPerRequest: null }, 40_000)),
    };
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Figure[]> {
  const full = measure('FULL');
  const normal = measure('NORMAL');
  return [
    { name: 'books_per_request_p50_ms', value: percentile(full.request, 0.5), unit: 'ms' },
    { name: 'books_per_request_p99_ms', value: percentile(full.request, 0.99), unit: 'ms' },
    { name: 'books_per_request_normal_p50_ms', value: percentile(normal.request, 0.5), unit: 'ms' },
    { name: 'budget_reserve_normal_p99_ms', value: percentile(normal.reserve, 0.99), unit: 'ms' },
  ];
}
