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
import type { DB } from '../../db/sqlite.ts';
import { isFactFlag, reconcile, sortFlags, type FactFlag, type Flag } from './reconcile.ts';
import {
  attemptFromDb, decodePrice, encodeFlags, encodePrice, encodeSkipped, requestFromDb,
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
  /** The session paid from (session mode; sent/fee 0). */
  sessionId?: string | null;
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
  /** Session mode: what the session's balance lost for this attempt, msat. */
  sessionChargedMsat?: number | null;
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

/**
  * Everything that left the wallet for a request, msat: what the providers kept (tokens and
  * session balances alike; never below 0 per attempt - change worth more than was sent,
  * change_surplus, keeps nothing) plus the mint's input fees and change lost. For tokens alone this
  * is (sent - change + lost) x 1000 whenever no attempt's change exceeded what it sent.
  */
 export const requestCostMsat = (r: Pick<RequestRow, 'chargedMsat' | 'feeSat' | 'lostSat'>): number => r.chargedMsat + (r.feeSat + r.lostSat) * MSAT_PER_SAT;

export class LedgerError extends Error {
  override name = 'LedgerError';
}

const nonNegative = (v: number | undefined | null, what: string) => {
  if (v === undefined || v === null) return;
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer, got ${v}`);
};

export class RequestLedger {
  private readonly s;
  private readonly tx;

  constructor(db: DB, private readonly clock: () => number = Date.now) {
    migrateRequests(db);
    this.s = {
      insertRequest: db.prepare(`INSERT INTO requests (id, time, client, endpoint, model_requested, stream, payment, status, reserved_msat, price_snapshot, skipped, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)`),
      getRequest: db.prepare('SELECT * FROM requests WHERE id = ?'),
      status: db.prepare('SELECT status FROM requests WHERE id = ?').pluck(),
      setRoute: db.prepare('UPDATE requests SET skipped = ?, price_snapshot = COALESCE(?, price_snapshot), updated_at = ? WHERE id = ?'),
      finishRequest: db.prepare(`UPDATE requests SET status = ?, model_served = COALESCE(?, model_served), error_code = ?, error = ?, ended_at = ?, updated_at = ? WHERE id = ?`),
      // The request's totals from its attempts. expected: unknown (NULL) until an attempt has
      // finished, and while any finished one lacks it - never a sum that looks exact.
      rollUp: db.prepare(`UPDATE requests SET
        (attempts, sent_sat, change_sat, fee_sat, lost_sat, charged_msat, expected_msat, reported_msat) = (
          SELECT COUNT(*), COALESCE(SUM(sent_sat), 0), COALESCE(SUM(change_sat), 0), COALESCE(SUM(fee_sat), 0), COALESCE(SUM(lost_sat), 0),
            COALESCE(SUM(charged_msat), 0),
            CASE WHEN COALESCE(SUM(status <> 'pending'), 0) = 0 OR SUM(status <> 'pending' AND expected_msat IS NULL) > 0 THEN NULL
              ELSE COALESCE(SUM(expected_msat), 0) END,
            SUM(reported_msat)
          FROM attempts WHERE request_id = :id),
        (provider, provider_url, mint) = (SELECT provider_id, provider_url, mint FROM attempts WHERE request_id = :id ORDER BY n DESC LIMIT 1),
        (prompt_tokens, completion_tokens) = (
          SELECT prompt_tokens, completion_tokens FROM attempts WHERE request_id = :id ORDER BY status = 'succeeded' DESC, n DESC LIMIT 1),
        flags = :flags, updated_at = :now
        WHERE id = :id`),
      attemptFlags: db.prepare('SELECT DISTINCT f.value FROM attempts a, json_each(a.flags) f WHERE a.request_id = ?').pluck(),
      insertAttempt: db.prepare(`INSERT INTO attempts (request_id, n, provider_id, provider_url, model_id, mint, payment_id, session_id, price_snapshot, status, sent_sat, fee_sat, started_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`),
      attempt: db.prepare('SELECT * FROM attempts WHERE request_id = ? AND n = ?'),
      attemptByPayment: db.prepare('SELECT * FROM attempts WHERE payment_id = ?'),
      attemptsOf: db.prepare('SELECT * FROM attempts WHERE request_id = ? ORDER BY n'),
      topUp: db.prepare(`UPDATE attempts SET sent_sat = ?, fee_sat = ? WHERE request_id = ? AND n = ? AND status = 'pending'`),
      firstByte: db.prepare('UPDATE attempts SET first_byte_at = COALESCE(first_byte_at, ?) WHERE request_id = ? AND n = ?'),
      finishAttempt: db.prepare(`UPDATE attempts SET status = ?, http_status = ?, error_code = ?, error = ?, prompt_tokens = ?, completion_tokens = ?,
        cache_read_tokens = ?, cache_write_tokens = ?, reported_msat = ?, session_charged_msat = COALESCE(?, session_charged_msat), change_sat = COALESCE(?, change_sat), lost_sat = COALESCE(?, lost_sat), flags = ?,
        first_byte_at = COALESCE(?, first_byte_at), ended_at = ? WHERE request_id = ? AND n = ?`),
      late: db.prepare('UPDATE attempts SET change_sat = COALESCE(?, change_sat), lost_sat = COALESCE(?, lost_sat), flags = ? WHERE request_id = ? AND n = ?'),
      lateSession: db.prepare(`UPDATE attempts SET session_charged_msat = ? WHERE request_id = ? AND n = ? AND session_id IS NOT NULL AND status <> 'pending'`),
      money: db.prepare('UPDATE attempts SET charged_msat = ?, expected_msat = ?, flags = ? WHERE request_id = ? AND n = ?'),
    };
    // Each write is one transaction (a savepoint inside the caller's), prepared once.
    this.tx = {
      startAttempt: db.transaction((a: NewAttempt) => {
        const status = this.s.status.get(a.requestId) as RequestStatus | undefined;
        if (status === undefined) throw new LedgerError(`no request ${a.requestId}`);
        if (status !== 'pending') throw new LedgerError(`request ${a.requestId} is ${status}; no more attempts`);
        const price = encodePrice(a.price);
        const startedAt = a.startedAt ?? this.clock();
        this.s.insertAttempt.run(a.requestId, a.n, a.providerId, a.providerUrl, a.modelId, a.mint, a.paymentId, a.sessionId ?? null, price, a.sentSat, a.feeSat, startedAt);
        // The row as inserted (the table's defaults for the rest), reconciled without being read back.
        return this.reconcileAttempt(a.requestId, a.n, {
          requestId: a.requestId, n: a.n, providerId: a.providerId, providerUrl: a.providerUrl, modelId: a.modelId, mint: a.mint, paymentId: a.paymentId,
          price: decodePrice(price), status: 'pending', httpStatus: null, errorCode: null, error: null, sentSat: a.sentSat, feeSat: a.feeSat, changeSat: 0,
          lostSat: 0, chargedMsat: 0, expectedMsat: null, reportedMsat: null, promptTokens: null, completionTokens: null, cacheReadTokens: null,
          cacheWriteTokens: null, sessionId: a.sessionId ?? null, sessionChargedMsat: null, flags: [], startedAt, firstByteAt: null, endedAt: null,
        });
      }),
      topUp: db.transaction((requestId: string, n: number, sentSat: number, feeSat: number) => {
        if (this.s.topUp.run(sentSat, feeSat, requestId, n).changes !== 1) throw new LedgerError(`attempt ${requestId}#${n} is not pending`);
        return this.reconcileAttempt(requestId, n);
      }),
      finishAttempt: db.transaction((requestId: string, n: number, end: AttemptEnd) => {
        const a = this.requireAttempt(requestId, n);
        const u = end.usage ?? null;
        // The row as this update leaves it (the COALESCEs below keep what the row had), so that it
        // is reconciled without being read back.
        const stored: AttemptRow = {
          ...a, status: end.status, httpStatus: end.httpStatus ?? null, errorCode: end.errorCode ?? null, error: end.error ?? null,
          promptTokens: u?.promptTokens ?? null, completionTokens: u?.completionTokens ?? null,
          cacheReadTokens: u?.cacheReadTokens ?? null, cacheWriteTokens: u?.cacheWriteTokens ?? null, reportedMsat: end.reportedMsat ?? null,
          sessionChargedMsat: end.sessionChargedMsat ?? a.sessionChargedMsat, changeSat: end.changeSat ?? a.changeSat, lostSat: end.lostSat ?? a.lostSat,
          flags: sortFlags([...a.flags.filter(isFactFlag), ...(end.facts ?? [])]), firstByteAt: end.firstByteAt ?? a.firstByteAt, endedAt: end.endedAt ?? this.clock(),
        };
        this.s.finishAttempt.run(stored.status, stored.httpStatus, stored.errorCode, stored.error, stored.promptTokens, stored.completionTokens,
          stored.cacheReadTokens, stored.cacheWriteTokens, stored.reportedMsat, end.sessionChargedMsat ?? null, end.changeSat ?? null, end.lostSat ?? null,
          encodeFlags(stored.flags), end.firstByteAt ?? null, stored.endedAt, requestId, n);
        return this.reconcileAttempt(requestId, n, stored);
      }),
      applyLate: db.transaction((paymentId: string, late: LateOutcome): RequestRow | undefined => {
        const r = this.s.attemptByPayment.get(paymentId) as AttemptDbRow | undefined;
        if (!r) return undefined;
        const a = attemptFromDb(r);
        const flags = sortFlags([...a.flags.filter(isFactFlag), ...(late.facts ?? [])]);
        this.s.late.run(late.changeSat ?? null, late.lostSat ?? null, encodeFlags(flags), a.requestId, a.n);
        this.reconcileAttempt(a.requestId, a.n);
        return this.require(a.requestId);
      }),
      lateSessionCharge: db.transaction((requestId: string, n: number, msat: number): RequestRow => {
        if (this.s.lateSession.run(msat, requestId, n).changes !== 1) throw new LedgerError(`attempt ${requestId}#${n} is not a finished session attempt`);
        this.reconcileAttempt(requestId, n);
        return this.require(requestId);
      }),
      finishRequest: db.transaction((requestId: string, end: RequestEnd): RequestRow => {
        const now = this.clock();
        if (this.s.finishRequest.run(end.status, end.modelServed ?? null, end.errorCode ?? null, end.error ?? null, end.endedAt ?? now, now, requestId).changes !== 1) {
          throw new LedgerError(`no request ${requestId}`);
        }
        return this.require(requestId);
      }),
    };
  }

  /** The request row, status pending. Call inside the budget reservation's transaction. */
  open(r: NewRequest): void {
    nonNegative(r.reservedMsat, 'reservedMsat');
    const now = this.clock();
    try {
      this.s.insertRequest.run(r.id, r.time ?? now, r.client, r.endpoint, r.modelRequested, r.stream ? 1 : 0, r.payment, r.reservedMsat ?? 0,
        r.priceSnapshot ? encodePrice(r.priceSnapshot) : null, encodeSkipped(r.skipped ?? []), now);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new LedgerError(`request ${r.id} already exists`);
      throw err;
    }
  }

  /** The router's result: the candidates it left out (with reasons) and the first choice's price. */
  setRoute(requestId: string, skipped: readonly SkippedCandidate[], priceSnapshot?: ModelPrice | null): void {
    if (this.s.setRoute.run(encodeSkipped(skipped), priceSnapshot ? encodePrice(priceSnapshot) : null, this.clock(), requestId).changes !== 1) {
      throw new LedgerError(`no request ${requestId}`);
    }
  }

  /** One provider tried, its token out. Call inside takeToken's transaction (inTransaction). */
  startAttempt(a: NewAttempt): AttemptRow {
    nonNegative(a.sentSat, 'sentSat');
    nonNegative(a.feeSat, 'feeSat');
    if (!Number.isSafeInteger(a.n) || a.n < 1) throw new RangeError(`attempt number must be 1 or more, got ${a.n}`);
    return this.tx.startAttempt(a);
  }

  /** The node asked for more before redeeming (minimum_balance_required): the token was replaced. */
  topUp(requestId: string, n: number, token: { sentSat: number; feeSat: number }): AttemptRow {
    nonNegative(token.sentSat, 'sentSat');
    nonNegative(token.feeSat, 'feeSat');
    return this.tx.topUp(requestId, n, token.sentSat, token.feeSat);
  }

  /** The first byte of the answer arrived (failover is over for this request). */
  firstByte(requestId: string, n: number, at = this.clock()): void {
    this.s.firstByte.run(at, requestId, n);
  }

  /** The attempt's outcome: reconciled and rolled up into the request. */
  finishAttempt(requestId: string, n: number, end: AttemptEnd): AttemptRow {
    nonNegative(end.changeSat, 'changeSat');
    nonNegative(end.lostSat, 'lostSat');
    nonNegative(end.sessionChargedMsat, 'sessionChargedMsat');
    return this.tx.finishAttempt(requestId, n, end);
  }

  /**
   * A late outcome for the attempt paid with `paymentId` (change refused after the swap, a
   * refund, a loss). Reconciles again; returns the request row, undefined for an unknown id.
   */
  applyLate(paymentId: string, late: LateOutcome): RequestRow | undefined {
    nonNegative(late.changeSat, 'changeSat');
    nonNegative(late.lostSat, 'lostSat');
    return this.tx.applyLate(paymentId, late);
  }

  /**
   * A finished session attempt learns what the balance lost for it (one a restart finished
   * `interrupted`, charged by the node all the same). Reconciles again; returns the request row.
   */
  lateSessionCharge(requestId: string, n: number, msat: number): RequestRow {
    nonNegative(msat, 'msat');
    return this.tx.lateSessionCharge(requestId, n, msat);
  }

  /** The request is over (its attempts may still learn late outcomes). */
  finishRequest(requestId: string, end: RequestEnd): RequestRow {
    return this.tx.finishRequest(requestId, end);
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

  /**
   * Reconcile one attempt from its stored facts (`stored`: the row as the caller's write just left
   * it, else read), then roll its request up. Returns the attempt as stored.
   */
  private reconcileAttempt(requestId: string, n: number, stored?: AttemptRow): AttemptRow {
    const a = stored ?? this.requireAttempt(requestId, n);
    const usage: TokenUsage | null = a.promptTokens === null && a.completionTokens === null ? null : {
      promptTokens: a.promptTokens ?? 0, completionTokens: a.completionTokens ?? 0,
      cacheReadTokens: a.cacheReadTokens ?? undefined, cacheWriteTokens: a.cacheWriteTokens ?? undefined,
    };
    const r = reconcile({
      state: a.status, price: a.price, usage, sentSat: a.sentSat, feeSat: a.feeSat, changeSat: a.changeSat,
      reportedMsat: a.reportedMsat, sessionChargedMsat: a.sessionChargedMsat, facts: a.flags.filter(isFactFlag),
    });
    this.s.money.run(r.chargedMsat, r.expectedMsat, encodeFlags(r.flags), requestId, n);
    this.s.rollUp.run({ id: requestId, flags: encodeFlags(this.s.attemptFlags.all(requestId) as Flag[]), now: this.clock() });
    return { ...a, chargedMsat: r.chargedMsat, expectedMsat: r.expectedMsat, flags: r.flags };
  }
}
