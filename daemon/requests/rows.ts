// The request ledger's rows as the code sees them, and the one place that knows the stored
// form of its JSON columns: flags, price snapshots and skipped candidates are written with
// the encode* functions and read back, validated, with the decode* ones.
import { z } from 'zod';
import type { ModelPrice } from '../../protocol/pricing.ts';
import { FLAGS, sortFlags, type AttemptState, type Flag } from './reconcile.ts';

export type PaymentMode = 'xcashu' | 'session';
export type RequestStatus = 'pending' | 'succeeded' | 'failed' | 'canceled';

/** A provider the router left out, and why (shown by x-satroute-explain and the audit). */
export interface SkippedCandidate {
  provider: string;
  reason: string;
}

export interface RequestRow {
  id: string;
  time: number;
  client: string;
  endpoint: string;
  modelRequested: string;
  modelServed: string | null;
  stream: boolean;
  payment: PaymentMode;
  status: RequestStatus;
  reservedMsat: number;
  promptTokens: number | null;
  completionTokens: number | null;
  sentSat: number;
  changeSat: number;
  feeSat: number;
  lostSat: number;
  chargedMsat: number;
  expectedMsat: number | null;
  reportedMsat: number | null;
  flags: Flag[];
  provider: string | null;
  providerUrl: string | null;
  mint: string | null;
  attempts: number;
  priceSnapshot: ModelPrice | null;
  skipped: SkippedCandidate[];
  errorCode: string | null;
  error: string | null;
  endedAt: number | null;
}

export interface AttemptRow {
  requestId: string;
  n: number;
  providerId: string;
  providerUrl: string;
  modelId: string;
  mint: string | null;
  paymentId: string | null;
  price: ModelPrice;
  status: AttemptState;
  httpStatus: number | null;
  errorCode: string | null;
  error: string | null;
  sentSat: number;
  feeSat: number;
  changeSat: number;
  lostSat: number;
  chargedMsat: number;
  expectedMsat: number | null;
  reportedMsat: number | null;
  promptTokens: number | null;
  completionTokens: number | null;
  cacheReadTokens: number | null;
  cacheWriteTokens: number | null;
  /** Session mode: the session paid from, and what its balance lost for this attempt (msat). */
  sessionId: string | null;
  sessionChargedMsat: number | null;
  flags: Flag[];
  startedAt: number;
  firstByteAt: number | null;
  endedAt: number | null;
}

// ---- JSON columns ------------------------------------------------------------------------

const Int = z.number().int().nonnegative();
const PriceJson = z.object({
  promptNmsat: Int, completionNmsat: Int, cacheReadNmsat: Int, cacheWriteNmsat: Int, requestMsat: Int,
  maxCostMsat: Int, maxPromptCostMsat: Int, maxCompletionCostMsat: Int, source: z.enum(['sats_pricing', 'usd_pricing']),
});
const FlagsJson = z.array(z.enum(FLAGS));
const SkippedJson = z.array(z.object({ provider: z.string(), reason: z.string() }));

export const encodePrice = (p: ModelPrice): string => JSON.stringify(PriceJson.parse(p));

// Requests are routed at a handful of distinct prices: each stored form is validated once.
const priceCache = new Map<string, ModelPrice>();
const PRICE_CACHE_SIZE = 512;

export function decodePrice(text: string): ModelPrice {
  let p = priceCache.get(text);
  if (!p) {
    p = Object.freeze(PriceJson.parse(JSON.parse(text)));
    if (priceCache.size >= PRICE_CACHE_SIZE) priceCache.clear();
    priceCache.set(text, p);
  }
  return p;
}

export const encodeFlags = (flags: Iterable<Flag>): string => JSON.stringify(sortFlags(flags));
export const decodeFlags = (text: string): Flag[] => (text === '[]' ? [] : sortFlags(FlagsJson.parse(JSON.parse(text))));
export const encodeSkipped = (s: readonly SkippedCandidate[]): string => JSON.stringify(SkippedJson.parse(s));
export const decodeSkipped = (text: string): SkippedCandidate[] => SkippedJson.parse(JSON.parse(text));

// ---- database rows -----------------------------------------------------------------------

export interface RequestDbRow {
  id: string; time: number; client: string; endpoint: string; model_requested: string; model_served: string | null; stream: number;
  payment: PaymentMode; status: RequestStatus; reserved_msat: number; prompt_tokens: number | null; completion_tokens: number | null;
  sent_sat: number; change_sat: number; fee_sat: number; lost_sat: number; charged_msat: number; expected_msat: number | null;
  reported_msat: number | null; flags: string; provider: string | null; provider_url: string | null; mint: string | null; attempts: number;
  price_snapshot: string | null; skipped: string; error_code: string | null; error: string | null; ended_at: number | null;
}

export interface AttemptDbRow {
  request_id: string; n: number; provider_id: string; provider_url: string; model_id: string; mint: string | null; payment_id: string | null;
  price_snapshot: string; status: AttemptState; http_status: number | null; error_code: string | null; error: string | null;
  sent_sat: number; fee_sat: number; change_sat: number; lost_sat: number; charged_msat: number; expected_msat: number | null;
  reported_msat: number | null; prompt_tokens: number | null; completion_tokens: number | null; cache_read_tokens: number | null;
  cache_write_tokens: number | null; session_id: string | null; session_charged_msat: number | null; flags: string; started_at: number; first_byte_at: number | null; ended_at: number | null;
}

export function requestFromDb(r: RequestDbRow): RequestRow {
  return {
    id: r.id, time: r.time, client: r.client, endpoint: r.endpoint, modelRequested: r.model_requested, modelServed: r.model_served,
    stream: r.stream === 1, payment: r.payment, status: r.status, reservedMsat: r.reserved_msat, promptTokens: r.prompt_tokens,
    completionTokens: r.completion_tokens, sentSat: r.sent_sat, changeSat: r.change_sat, feeSat: r.fee_sat, lostSat: r.lost_sat,
    chargedMsat: r.charged_msat, expectedMsat: r.expected_msat, reportedMsat: r.reported_msat, flags: decodeFlags(r.flags),
    provider: r.provider, providerUrl: r.provider_url, mint: r.mint, attempts: r.attempts,
    priceSnapshot: r.price_snapshot === null ? null : decodePrice(r.price_snapshot), skipped: decodeSkipped(r.skipped),
    errorCode: r.error_code, error: r.error, endedAt: r.ended_at,
  };
}

export function attemptFromDb(r: AttemptDbRow): AttemptRow {
  return {
    requestId: r.request_id, n: r.n, providerId: r.provider_id, providerUrl: r.provider_url, modelId: r.model_id, mint: r.mint,
    paymentId: r.payment_id, price: decodePrice(r.price_snapshot), status: r.status, httpStatus: r.http_status, errorCode: r.error_code,
    error: r.error, sentSat: r.sent_sat, feeSat: r.fee_sat, changeSat: r.change_sat, lostSat: r.lost_sat, chargedMsat: r.charged_msat,
    expectedMsat: r.expected_msat, reportedMsat: r.reported_msat, promptTokens: r.prompt_tokens, completionTokens: r.completion_tokens,
    cacheReadTokens: r.cache_read_tokens, cacheWriteTokens: r.cache_write_tokens, sessionId: r.session_id ?? null, sessionChargedMsat: r.session_charged_msat ?? null, flags: decodeFlags(r.flags), startedAt: r.started_at,
    firstByteAt: r.first_byte_at, endedAt: r.ended_at,
  };
}
