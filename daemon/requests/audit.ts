// The audit: requests (or every attempt) in a time window, filtered by client, provider or
// flags, with totals per provider and per client, as JSON-ready records and as CSV with
// DESIGN.md's columns. Read-only; safe beside a running daemon (SQLite WAL).
import type { DB } from '../../db/sqlite.ts';
import { keptBy } from './reconcile.ts';
import { migrateRequests } from './schema.ts';
import { attemptFromDb, requestFromDb, type AttemptDbRow, type AttemptRow, type RequestDbRow, type RequestRow } from './rows.ts';

export interface AuditFilter {
  /** Inclusive, ms since the epoch (request admission time). */
  since?: number;
  /** Exclusive. */
  until?: number;
  client?: string;
  /** A provider id or base URL: requests with an attempt there; attempts there. */
  provider?: string;
  /** Only requests (attempts) with at least one flag. */
  flagged?: boolean;
}

/** DESIGN.md's audit CSV columns, in order. */
export const REQUEST_COLUMNS = [
  'time', 'request_id', 'client', 'endpoint', 'model', 'provider', 'mint', 'status', 'prompt_tokens', 'completion_tokens',
  'sent_sats', 'change_sats', 'charged_msat', 'expected_msat', 'reported_msat', 'flags', 'payment', 'attempts',
] as const;

/** `audit --attempts`: one line per provider tried. */
export const ATTEMPT_COLUMNS = [
  'time', 'request_id', 'attempt', 'client', 'provider', 'provider_url', 'model', 'mint', 'payment_id', 'status', 'http_status', 'error',
  'prompt_tokens', 'completion_tokens', 'sent_sats', 'change_sats', 'fee_sats', 'lost_sats', 'charged_msat', 'expected_msat',
  'reported_msat', 'flags', 'ttfb_ms', 'duration_ms',
] as const;

type Cell = string | number | null;
export type RequestRecord = Record<(typeof REQUEST_COLUMNS)[number], Cell | string[]> & Record<string, unknown>;
export type AttemptRecord = Record<(typeof ATTEMPT_COLUMNS)[number], Cell | string[]> & Record<string, unknown>;

export interface Totals {
  requests: number;
  succeeded: number;
  flagged: number;
  sent_sats: number;
  change_sats: number;
  fee_sats: number;
  lost_sats: number;
  charged_msat: number;
  /** Sum over rows whose expected cost is known. */
  expected_msat: number;
  reported_msat: number;
}

export interface AuditReport {
  filter: AuditFilter;
  /** Requests, or attempts with --attempts. */
  requests?: RequestRecord[];
  attempts?: AttemptRecord[];
  totals: {
    all: Totals;
    /** Per provider over its attempts (`requests` counts attempts there). */
    by_provider: (Totals & { provider: string; provider_url: string })[];
    by_client: (Totals & { client: string })[];
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

function where(f: AuditFilter, attemptLevel: boolean): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (f.since !== undefined) parts.push('r.time >= ?'), params.push(f.since);
  if (f.until !== undefined) parts.push('r.time < ?'), params.push(f.until);
  if (f.client !== undefined) parts.push('r.client = ?'), params.push(f.client);
  if (attemptLevel) {
    if (f.provider !== undefined) parts.push('(a.provider_id = ? OR a.provider_url = ?)'), params.push(f.provider, f.provider);
    if (f.flagged) parts.push("a.flags <> '[]'");
  } else {
    if (f.provider !== undefined) parts.push('EXISTS (SELECT 1 FROM attempts p WHERE p.request_id = r.id AND (p.provider_id = ? OR p.provider_url = ?))'), params.push(f.provider, f.provider);
    if (f.flagged) parts.push("r.flags <> '[]'");
  }
  return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

export function queryRequests(db: DB, f: AuditFilter = {}): RequestRow[] {
  migrateRequests(db);
  const w = where(f, false);
  return (db.prepare(`SELECT r.* FROM requests r ${w.sql} ORDER BY r.time, r.id`).all(...w.params) as RequestDbRow[]).map(requestFromDb);
}

/** Attempts with their request's time and client. */
export function queryAttempts(db: DB, f: AuditFilter = {}): (AttemptRow & { time: number; client: string })[] {
  migrateRequests(db);
  const w = where(f, true);
  const rows = db.prepare(`SELECT a.*, r.time AS r_time, r.client AS r_client FROM attempts a JOIN requests r ON r.id = a.request_id ${w.sql} ORDER BY r.time, a.request_id, a.n`)
    .all(...w.params) as (AttemptDbRow & { r_time: number; r_client: string })[];
  return rows.map((r) => ({ ...attemptFromDb(r), time: r.r_time, client: r.r_client }));
}

/**
 * What the attempts paid from session balances cost in the wallet's books, sat: per session, the
 * msat its attempts' balance lost, rounded up once (wallet/payments/sessions.ts books a session's
 * running total rounded up). Charges no attempt explains (a close's correction) are not in it.
 */
export function sessionChargesSat(db: DB): number {
  const perSession = db.prepare('SELECT SUM(session_charged_msat) AS msat FROM attempts WHERE session_id IS NOT NULL GROUP BY session_id').pluck().all() as (number | null)[];
  return perSession.reduce<number>((s, msat) => s + Math.ceil((msat ?? 0) / 1000), 0);
}

export function requestRecord(r: RequestRow): RequestRecord {
  return {
    time: iso(r.time), request_id: r.id, client: r.client, endpoint: r.endpoint, model: r.modelServed ?? r.modelRequested,
    provider: r.provider, mint: r.mint, status: r.status, prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens,
    sent_sats: r.sentSat, change_sats: r.changeSat, charged_msat: r.chargedMsat, expected_msat: r.expectedMsat, reported_msat: r.reportedMsat,
    flags: r.flags, payment: r.payment, attempts: r.attempts,
    model_requested: r.modelRequested, model_served: r.modelServed, stream: r.stream, fee_sats: r.feeSat, lost_sats: r.lostSat,
    reserved_msat: r.reservedMsat, provider_url: r.providerUrl, skipped: r.skipped, error_code: r.errorCode, error: r.error,
  };
}

export function attemptRecord(a: AttemptRow & { time: number; client: string }): AttemptRecord {
  return {
    time: iso(a.startedAt), request_id: a.requestId, attempt: a.n, client: a.client, provider: a.providerId, provider_url: a.providerUrl,
    model: a.modelId, mint: a.mint, payment_id: a.paymentId, status: a.status, http_status: a.httpStatus, error: a.errorCode,
    prompt_tokens: a.promptTokens, completion_tokens: a.completionTokens, sent_sats: a.sentSat, change_sats: a.changeSat,
    fee_sats: a.feeSat, lost_sats: a.lostSat, charged_msat: a.chargedMsat, expected_msat: a.expectedMsat, reported_msat: a.reportedMsat,
    flags: a.flags, ttfb_ms: a.firstByteAt === null ? null : a.firstByteAt - a.startedAt, duration_ms: a.endedAt === null ? null : a.endedAt - a.startedAt,
    request_time: iso(a.time), error_message: a.error, session_id: a.sessionId, session_charged_msat: a.sessionChargedMsat,
    // Change beyond the token less its fee (flag change_surplus): kept apart from the charge, which is never negative.
    surplus_sats: keptBy(a.sentSat, a.changeSat, a.feeSat).surplusSat,
  };
}

const zero = (): Totals => ({ requests: 0, succeeded: 0, flagged: 0, sent_sats: 0, change_sats: 0, fee_sats: 0, lost_sats: 0, charged_msat: 0, expected_msat: 0, reported_msat: 0 });

function add(t: Totals, r: { status: string; flags: readonly string[]; sentSat: number; changeSat: number; feeSat: number; lostSat: number; chargedMsat: number; expectedMsat: number | null; reportedMsat: number | null }): void {
  t.requests += 1;
  if (r.status === 'succeeded') t.succeeded += 1;
  if (r.flags.length) t.flagged += 1;
  t.sent_sats += r.sentSat;
  t.change_sats += r.changeSat;
  t.fee_sats += r.feeSat;
  t.lost_sats += r.lostSat;
  t.charged_msat += r.chargedMsat;
  t.expected_msat += r.expectedMsat ?? 0;
  t.reported_msat += r.reportedMsat ?? 0;
}

/** The audit for a filter: rows (requests, or attempts) and totals per provider and client. */
export function auditReport(db: DB, filter: AuditFilter = {}, opts: { attempts?: boolean } = {}): AuditReport {
  const { requests, attempts } = db.transaction(() => ({ requests: queryRequests(db, filter), attempts: queryAttempts(db, filter) }))();
  const all = zero();
  const byClient = new Map<string, Totals & { client: string }>();
  for (const r of requests) {
    add(all, r);
    let c = byClient.get(r.client);
    if (!c) byClient.set(r.client, (c = { client: r.client, ...zero() }));
    add(c, r);
  }
  const byProvider = new Map<string, Totals & { provider: string; provider_url: string }>();
  for (const a of attempts) {
    let p = byProvider.get(a.providerId);
    if (!p) byProvider.set(a.providerId, (p = { provider: a.providerId, provider_url: a.providerUrl, ...zero() }));
    add(p, a);
  }
  const totals = {
    all,
    by_provider: [...byProvider.values()].sort((a, b) => b.charged_msat - a.charged_msat || a.provider.localeCompare(b.provider)),
    by_client: [...byClient.values()].sort((a, b) => b.charged_msat - a.charged_msat || a.client.localeCompare(b.client)),
  };
  return opts.attempts ? { filter, attempts: attempts.map(attemptRecord), totals } : { filter, requests: requests.map(requestRecord), totals };
}

// ---- CSV (RFC 4180) ------------------------------------------------------------------------

/** One CSV field: empty for null, flags joined by ';', quoted when it holds a comma, quote or line break. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = Array.isArray(v) ? v.join(';') : String(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A header line and one line per record, CRLF-terminated as RFC 4180 says. */
export function toCsv(columns: readonly string[], records: readonly Record<string, unknown>[]): string {
  const line = (cells: unknown[]) => cells.map(csvField).join(',') + '\r\n';
  return line([...columns]) + records.map((r) => line(columns.map((c) => r[c]))).join('');
}
