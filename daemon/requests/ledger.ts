// The request ledger: one `requests` row per request, one `attempts` row per provider tried.
// Every write is a SYNCHRONOUS function, so the request path can call it inside the wallet's
// takeToken transaction (the attempt row goes in with the proofs going pending) and inside
// the budget transaction (the request row goes in with its reservation). Each attempt write
// reconciles that attempt (reconcile.ts) and rolls the request's totals up from its attempts
// in the same transaction, so a request row is always the sum of its attempt rows.
//
// Life of the rows: open (pending) -> startAttempt (pending, token out) -> [topUp] ->
// finishAttempt (succeeded | failed) ... -> finishRequest. Late outcomes - change found
// invalid after the swap, a refund arriving, a loss recorded by recovery - come by payment id
// through applyLate, any time after, and reconcile again.
import type { TokenUsage, ModelPrice } from '../../protocol/pricing.ts';
import type { DB } from '../../wallet/sqlite.ts';
import { isFactFlag, reconcile, sortFlags, type FactFlag, type Flag } from './reconcile.ts';
import {
  attemptFromDb, encodeFlags, encodePrice, encodeSkipped, requestFromDb,
  type AttemptDbRow, type AttemptRow, type PaymentMode, type RequestDbRow, type RequestRow, type RequestStatus, type SkippedCandidate,
} from './rows.ts';
import { migrateRequests } from './schema.ts';

export type { AttemptRow, RequestRow, SkippedCandidate, PaymentMode, RequestStatus } from './rows.ts';

const MSAT_PER_SAT = 1000;

export interface NewRequest {
  id: string;
  client: string;
  endpoint: string;
  modelRequested: string;
  stream: boolean;
  payment: PaymentMode;
  /** The worst case reserved against the client's budget. */
  reservedMsat?: number;
  /** Price of the first choice at routing time. */
  priceSnapshot?: ModelPrice | null;
  skipped?: readonly SkippedCandidate[];
  /** Admission time; default the clock. */
  time?: number;
}

export interface NewAttempt {
  requestId: string;
  /** 1, 2, 3 in the order tried. */
  n: number;
  providerId: string;
  providerUrl: string;
  /** The model id sent to this provider. */
  modelId: string;
  /** The mint URL exactly as written into the token. */
  mint: string | null;
  /** The wallet's payment id (`<requestId>.<n>`); null when paid from a session balance. */
  paymentId: string | null;
  price: ModelPrice;
  /** Face value of the token and the mint's input fee on it. */
  sentSat: number;
  feeSat: number;
  startedAt?: number;
}

export interface AttemptEnd {
  status: 'succeeded' | 'failed';
  httpStatus?: number | null;
  /** A stable code of what went wrong (e.g. upstream_error, timeout). */
  errorCode?: string | null;
  error?: string | null;
  usage?: TokenUsage | null;
  reportedMsat?: number | null;
  /** Change and refunds handed back so far, invalid ones excluded. */
  changeSat?: number;
  /** Valid change we could not bring in. */
  lostSat?: number;
  facts?: readonly FactFlag[];
  firstByteAt?: number | null;
  endedAt?: number;
}

/** What became known about an attempt's money after it ended. Amounts replace; facts add. */
export interface LateOutcome {
  changeSat?: number;
  lostSat?: number;
  facts?: readonly FactFlag[];
}

export interface RequestEnd {
  status: 'succeeded' | 'failed' | 'canceled';
  modelServed?: string | null;
  errorCode?: string | null;
  error?: string | null;
  endedAt?: number;
}

/** Everything that left the wallet for a request, msat: sent - change handed back + change lost. */
export const requestCostMsat = (r: Pick<RequestRow, 'sentSat' | 'changeSat' | 'lostSat'>): number => (r.sentSat - r.changeSat + r.lostSat) * MSAT_PER_SAT;

export class LedgerError extends Error {
  override name = 'LedgerError';
}

const nonNegative = (v: number | undefined | null, what: string) => {
  if (v === undefined || v === null) return;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer, got ${v}`);
};

export class RequestLedger {
  private readonly s;

  constructor(private readonly db: DB, private readonly clock: () => number = Date.now) {
    migrateRequests(db);
    this.s = {
      insertRequest: db.prepare(`INSERT INTO requests (id, time, client, endpoint, model_requested, stream, payment, status, reserved_msat, price_snapshot, skipped, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`),
      getRequest: db.prepare('SELECT * FROM requests WHERE id = ?'),
      setRoute: db.prepare('UPDATE requests SET skipped = ?, price_snapshot = COALESCE(?, price_snapshot), updated_at = ? WHERE id = ?'),
      finishRequest: db.prepare(`UPDATE requests SET status = ?, model_served = COALESCE(?, model_served), error_code = ?, error = ?, ended_at = ?, updated_at = ? WHERE id = ?`),
      rollUp: db.prepare(`UPDATE requests SET prompt_tokens = ?, completion_tokens = ?, sent_sat = ?, change_sat = ?, fee_sat = ?, lost_sat = ?,
        charged_msat = ?, expected_msat = ?, reported_msat = ?, flags = ?, provider = ?, provider_url = ?, mint = ?, attempts = ?, updated_at = ? WHERE id = ?`),
      insertAttempt: db.prepare(`INSERT INTO attempts (request_id, n, provider_id, provider_url, model_id, mint, payment_id, price_snapshot, status, sent_sat, fee_sat, started_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`),
      attempt: db.prepare('SELECT * FROM attempts WHERE request_id = ? AND n = ?'),
      attemptByPayment: db.prepare('SELECT * FROM attempts WHERE payment_id = ?'),
      attemptsOf: db.prepare('SELECT * FROM attempts WHERE request_id = ? ORDER BY n'),
      topUp: db.prepare(`UPDATE attempts SET sent_sat = ?, fee_sat = ? WHERE request_id = ? AND n = ? AND status = 'pending'`),
      firstByte: db.prepare('UPDATE attempts SET first_byte_at = COALESCE(first_byte_at, ?) WHERE request_id = ? AND n = ?'),
      finishAttempt: db.prepare(`UPDATE attempts SET status = ?, http_status = ?, error_code = ?, error = ?, prompt_tokens = ?, completion_tokens = ?,
        cache_read_tokens = ?, cache_write_tokens = ?, reported_msat = ?, change_sat = ?, lost_sat = ?, flags = ?,
        first_byte_at = COALESCE(?, first_byte_at), ended_at = ? WHERE request_id = ? AND n = ?`),
      late: db.prepare('UPDATE attempts SET change_sat = ?, lost_sat = ?, flags = ? WHERE request_id = ? AND n = ?'),
      money: db.prepare('UPDATE attempts SET charged_msat = ?, expected_msat = ?, flags = ? WHERE request_id = ? AND n = ?'),
    };
  }

  /** The request row, status pending. Call inside the budget reservation's transaction. */
  open(r: NewRequest): RequestRow {
    nonNegative(r.reservedMsat, 'reservedMsat');
    const now = this.clock();
    try {
      this.s.insertRequest.run(r.id, r.time ?? now, r.client, r.endpoint, r.modelRequested, r.stream ? 1 : 0, r.payment, r.reservedMsat ?? 0,
        r.priceSnapshot ? encodePrice(r.priceSnapshot) : null, encodeSkipped(r.skipped ?? []), now);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new LedgerError(`request ${r.id} already exists`);
      throw err;
    }
    return this.require(r.id);
  }

  /** The router's result: the candidates it left out (with reasons) and the first choice's price. */
  setRoute(requestId: string, skipped: readonly SkippedCandidate[], priceSnapshot?: ModelPrice | null): void {
    this.require(requestId);
    this.s.setRoute.run(encodeSkipped(skipped), priceSnapshot ? encodePrice(priceSnapshot) : null, this.clock(), requestId);
  }

  /** One provider tried, its token out. Call inside takeToken's transaction (inTransaction). */
  startAttempt(a: NewAttempt): AttemptRow {
    nonNegative(a.sentSat, 'sentSat');
    nonNegative(a.feeSat, 'feeSat');
    if (!Number.isSafeInteger(a.n) || a.n < 1) throw new RangeError(`attempt number must be 1 or more, got ${a.n}`);
    return this.db.transaction(() => {
      const req = this.require(a.requestId);
      if (req.status !== 'pending') throw new LedgerError(`request ${a.requestId} is ${req.status}; no more attempts`);
      this.s.insertAttempt.run(a.requestId, a.n, a.providerId, a.providerUrl, a.modelId, a.mint, a.paymentId, encodePrice(a.price), a.sentSat, a.feeSat, a.startedAt ?? this.clock());
      return this.reconcileAttempt(a.requestId, a.n);
    })();
  }

  /** The node asked for more before redeeming (minimum_balance_required): the token was replaced. */
  topUp(requestId: string, n: number, token: { sentSat: number; feeSat: number }): AttemptRow {
    nonNegative(token.sentSat, 'sentSat');
    nonNegative(token.feeSat, 'feeSat');
    return this.db.transaction(() => {
      if (this.s.topUp.run(token.sentSat, token.feeSat, requestId, n).changes !== 1) throw new LedgerError(`attempt ${requestId}#${n} is not pending`);
      return this.reconcileAttempt(requestId, n);
    })();
  }

  /** The first byte of the answer arrived (failover is over for this request). */
  firstByte(requestId: string, n: number, at = this.clock()): void {
    this.s.firstByte.run(at, requestId, n);
  }

  /** The attempt's outcome: reconciled and rolled up into the request. */
  finishAttempt(requestId: string, n: number, end: AttemptEnd): AttemptRow {
    nonNegative(end.changeSat, 'changeSat');
    nonNegative(end.lostSat, 'lostSat');
    return this.db.transaction(() => {
      const a = this.requireAttempt(requestId, n);
      const u = end.usage ?? null;
      const facts = sortFlags([...a.flags.filter(isFactFlag), ...(end.facts ?? [])]);
      this.s.finishAttempt.run(end.status, end.httpStatus ?? null, end.errorCode ?? null, end.error ?? null,
        u?.promptTokens ?? null, u?.completionTokens ?? null, u?.cacheReadTokens ?? null, u?.cacheWriteTokens ?? null,
        end.reportedMsat ?? null, end.changeSat ?? a.changeSat, end.lostSat ?? a.lostSat, encodeFlags(facts),
        end.firstByteAt ?? null, end.endedAt ?? this.clock(), requestId, n);
      return this.reconcileAttempt(requestId, n);
    })();
  }

  /**
   * A late outcome for the attempt paid with `paymentId` (change refused after the swap, a
   * refund, a loss). Reconciles again; returns the request row, undefined for an unknown id.
   */
  applyLate(paymentId: string, late: LateOutcome): RequestRow | undefined {
    nonNegative(late.changeSat, 'changeSat');
    nonNegative(late.lostSat, 'lostSat');
    return this.db.transaction(() => {
      const r = this.s.attemptByPayment.get(paymentId) as AttemptDbRow | undefined;
      if (!r) return undefined;
      const a = attemptFromDb(r);
      const flags = sortFlags([...a.flags.filter(isFactFlag), ...(late.facts ?? [])]);
      this.s.late.run(late.changeSat ?? a.changeSat, late.lostSat ?? a.lostSat, encodeFlags(flags), a.requestId, a.n);
      this.reconcileAttempt(a.requestId, a.n);
      return this.require(a.requestId);
    })();
  }

  /** The request is over (its attempts may still learn late outcomes). */
  finishRequest(requestId: string, end: RequestEnd): RequestRow {
    return this.db.transaction(() => {
      this.require(requestId);
      const now = this.clock();
      this.s.finishRequest.run(end.status, end.modelServed ?? null, end.errorCode ?? null, end.error ?? null, end.endedAt ?? now, now, requestId);
      return this.require(requestId);
    })();
  }

  get(requestId: string): RequestRow | undefined {
    const r = this.s.getRequest.get(requestId) as RequestDbRow | undefined;
    return r ? requestFromDb(r) : undefined;
  }

  attempts(requestId: string): AttemptRow[] {
    return (this.s.attemptsOf.all(requestId) as AttemptDbRow[]).map(attemptFromDb);
  }

  attemptByPayment(paymentId: string): AttemptRow | undefined {
    const r = this.s.attemptByPayment.get(paymentId) as AttemptDbRow | undefined;
    return r ? attemptFromDb(r) : undefined;
  }

  private require(requestId: string): RequestRow {
    const r = this.get(requestId);
    if (!r) throw new LedgerError(`no request ${requestId}`);
    return r;
  }

  private requireAttempt(requestId: string, n: number): AttemptRow {
    const r = this.s.attempt.get(requestId, n) as AttemptDbRow | undefined;
    if (!r) throw new LedgerError(`no attempt ${requestId}#${n}`);
    return attemptFromDb(r);
  }

  /** Reconcile one attempt from its stored facts, then roll its request up. */
  private reconcileAttempt(requestId: string, n: number): AttemptRow {
    const a = this.requireAttempt(requestId, n);
    const usage: TokenUsage | null = a.promptTokens === null && a.completionTokens === null ? null : {
      promptTokens: a.promptTokens ?? 0, completionTokens: a.completionTokens ?? 0,
      cacheReadTokens: a.cacheReadTokens ?? undefined, cacheWriteTokens: a.cacheWriteTokens ?? undefined,
    };
    const r = reconcile({
      state: a.status, price: a.price, usage, sentSat: a.sentSat, feeSat: a.feeSat, changeSat: a.changeSat,
      reportedMsat: a.reportedMsat, facts: a.flags.filter(isFactFlag),
    });
    this.s.money.run(r.chargedMsat, r.expectedMsat, encodeFlags(r.flags), requestId, n);
    this.rollUp(requestId);
    return this.requireAttempt(requestId, n);
  }

  /** The request's totals from its attempts: sums, the union of flags, the last attempt's provider. */
  private rollUp(requestId: string): void {
    const all = this.attempts(requestId);
    const sum = (f: (a: AttemptRow) => number) => all.reduce((t, a) => t + f(a), 0);
    const last = all.at(-1);
    const served = [...all].reverse().find((a) => a.status === 'succeeded') ?? last;
    const finished = all.filter((a) => a.status !== 'pending');
    // Unknown if any served attempt lacks usage (or nothing finished): never a sum that looks exact.
    const expected = finished.length === 0 || finished.some((a) => a.expectedMsat === null) ? null : sum((a) => a.expectedMsat ?? 0);
    const reported = all.some((a) => a.reportedMsat !== null) ? sum((a) => a.reportedMsat ?? 0) : null;
    const flags = new Set<Flag>(all.flatMap((a) => a.flags));
    this.s.rollUp.run(served?.promptTokens ?? null, served?.completionTokens ?? null, sum((a) => a.sentSat), sum((a) => a.changeSat),
      sum((a) => a.feeSat), sum((a) => a.lostSat), sum((a) => a.chargedMsat), expected, reported, encodeFlags(flags),
      last?.providerId ?? null, last?.providerUrl ?? null, last?.mint ?? null, all.length, this.clock(), requestId);
  }
}
