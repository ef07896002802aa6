// Every answer a Routstr node can give to a paid request, classified by its BODY (never by its
// status alone) into a union the request lifecycle switches on. Pure: no I/O.
//
// The shapes, from routstr-core v0.4.5 (older versions noted):
//   402 {"detail":{"reason":"Insufficient balance","amount_required_msat":N,"model":..,
//        "type":"minimum_balance_required"},"request_id":..}      payment/helpers.py check_token_balance,
//        before redemption; 413 with the same body before v0.4.2 (v0.3.0 helpers.py)
//   402 {"detail":{"error":{"type":"insufficient_quota","code":"insufficient_balance"|
//        "balance_limit_exceeded",..}},"error":{..same..},..}    auth.py, balance (API-key) mode;
//        core/exceptions.py http_exception_handler copies detail.error to the top level
//   any {"error":{"message":"Error forwarding request to upstream","type":"upstream_error",
//        "code":<status>,"refund_token":"cashu.."}} + X-Cashu    upstream/base.py forward_x_cashu_request:
//        the upstream failed after redemption (429, 404, 402, 5xx, ...), refunded in full
//   502 {"error":{"type":"upstream_error","code":"upstream_request_failed",..}}  handle_x_cashu: an
//        exception after redemption, no refund
//   200 {"error":{"type":"upstream_error","code":200,..}}        handle_x_cashu_non_streaming_response
//        when no cost could be computed: redeemed, no refund
//   500 {"error":{"type":"internal_error",..}}                   forward_x_cashu_request's except
//        (refund minting failed, upstream unreachable): redeemed, no refund - money lost
//   500 {"error":{"type":"token_consumed","code":"cashu_token_consumed",..}}  wallet.py
//        classify_redemption_error: redeemed but not credited
//   500 {"error":{"type":"api_error","code":"internal_error",..}}  handle_x_cashu: unclassified
//        redemption failure - redeemed or not, unknown
//   400/422/503 + X-Cashu: <our token>  a redemption failure that left the token spendable
//        (cashu_foreign_mint_swap_failed, cashu_mint_unreachable, invalid_cashu_token,
//        cashu_token_redemption_failed, ...): echoed back unless in SPENT_TOKEN_CODES
//   400 {"error":{"code":"cashu_token_already_spent"|"cashu_token_zero_value"}}  no echo
//   400 {"error":{"type":"invalid_model"}} / {"detail":{"error":"max_tokens must be an integer"}}
//        / invalid_json, 401 Unauthorized / invalid token format / invalid_api_key, 422 validation
//        - before redemption: the caller's request (or credentials) are at fault

import { redact } from './logger.ts';

export type PaidWith = 'xcashu' | 'bearer';

/**
 * What became of the X-Cashu token we sent.
 *   unspent   the node did not redeem it (still reclaim it by swapping: it saw the secrets)
 *   refunded  redeemed, and a refund token came back (bank it)
 *   spent     redeemed, nothing came back (lost, or change on an ok answer)
 *   unknown   cannot tell from the answer (ask the mint, NUT-07, and the refund endpoint)
 *   none      paid from a balance at the node (bearer), no token involved
 */
export type TokenFate = 'unspent' | 'refunded' | 'spent' | 'unknown' | 'none';

/** What every classified answer carries. */
export interface AnswerMeta {
  status: number;
  /** `x-routstr-request-id`. */
  requestId?: string;
  /** Retry-After (header, or the node's error.details.retry_after_seconds), in ms. */
  retryAfterMs?: number;
  /** The node's error fields, clipped and redacted, for logs and the audit. */
  errorType?: string;
  errorCode?: string | number;
  message?: string;
}

export type Refusal = AnswerMeta &
  (
    | { kind: 'need_more'; token: 'unspent'; amountRequiredMsat: number | null; model?: string; changeToken?: string }
    | { kind: 'insufficient_quota'; token: TokenFate }
    | { kind: 'upstream_error'; token: TokenFate; upstreamStatus: number; rateLimited: boolean; refundToken?: string }
    | { kind: 'rate_limited'; token: TokenFate }
    | { kind: 'rejected_echo'; token: 'unspent'; echoedToken: string; echoMatches: boolean }
    | { kind: 'rejected'; token: TokenFate }
    | { kind: 'request_error'; token: TokenFate }
    | { kind: 'internal_error'; token: TokenFate; evidence: string }
  );

export type RefusalKind = Refusal['kind'];

export interface AnswerInput {
  status: number;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: unknown;
  /** The body as text (clipped by the caller), kept as evidence. */
  bodyText: string;
  /** The `X-Cashu` response header. */
  xCashu?: string;
  requestId?: string;
  retryAfterHeader?: string;
  paidWith: PaidWith;
  /** The token we sent (to recognise an echo). */
  sentToken?: string;
  nowMs?: number;
}

// wallet.py SPENT_TOKEN_CODES, less internal_error/cashu_token_consumed which are money lost.
const SPENT_CODES = new Set(['cashu_token_already_spent', 'cashu_token_zero_value']);
const RATE_LIMIT_CODE = 'UPSTREAM_RATE_LIMIT'; // upstream/rate_limit.py
const MAX_RETRY_AFTER_MS = 24 * 3600_000;
const EVIDENCE_CHARS = 2000;

const obj = (v: unknown): Record<string, unknown> | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n)}...` : s);

/**
 * Classify a node's answer. Returns null for a 200 that is an answer (the caller reads it);
 * everything else - any status, 200 included when its body is an error - is a Refusal.
 */
export function classifyAnswer(a: AnswerInput): Refusal | null {
  const body = obj(a.body);
  const detail = body?.detail;
  const detailObj = obj(detail);
  const err = obj(body?.error) ?? obj(detailObj?.error);
  const base: AnswerMeta = { status: a.status };
  if (a.requestId) base.requestId = a.requestId;
  const retry = parseRetryAfter(a.retryAfterHeader, a.nowMs ?? Date.now()) ?? retryFromDetails(err);
  if (retry !== undefined) base.retryAfterMs = retry;
  const errorType = str(err?.type) ?? str(detailObj?.type);
  if (errorType) base.errorType = errorType;
  const code = err?.code;
  if (typeof code === 'string' || typeof code === 'number') base.errorCode = code;
  const message = str(err?.message) ?? str(detailObj?.reason) ?? str(detail) ?? str(detailObj?.error);
  if (message) base.message = clip(redact(message), 300);
  const xcashu = a.paidWith === 'xcashu';
  const echo = a.xCashu && xcashu ? a.xCashu : undefined;

  // The node's own "too little" (before redemption): its body, with the status it is sent with
  // (402; 413 before v0.4.2). The same body under another status is not the node's: no top-up.
  if (detailObj?.type === 'minimum_balance_required' && (a.status === 402 || a.status === 413)) {
    const amount = detailObj.amount_required_msat;
    const out: Refusal = {
      ...base,
      kind: 'need_more',
      token: 'unspent',
      amountRequiredMsat: typeof amount === 'number' && Number.isSafeInteger(amount) && amount > 0 ? amount : null,
    };
    const model = str(detailObj.model);
    if (model) out.model = model;
    if (echo && echo !== a.sentToken) out.changeToken = echo; // some clients have seen one: bank it
    return out;
  }
  if (errorType === 'insufficient_quota') return { ...base, kind: 'insufficient_quota', token: xcashu ? 'unspent' : 'none' };

  if (errorType === 'upstream_error') {
    // Balance mode sent no token, so nothing can come back as its refund.
    const refund = xcashu ? (str(err?.refund_token) ?? (echo && echo !== a.sentToken ? echo : undefined)) : undefined;
    const upstreamStatus = typeof code === 'number' && Number.isInteger(code) && code >= 100 && code <= 599 ? code : a.status;
    const out: Refusal = {
      ...base,
      kind: 'upstream_error',
      token: refund ? 'refunded' : xcashu ? 'spent' : 'none',
      upstreamStatus,
      rateLimited: a.status === 429 || upstreamStatus === 429 || code === RATE_LIMIT_CODE,
    };
    if (refund) out.refundToken = refund;
    return out;
  }

  if (a.status === 200 && !err) return null;

  // Balance mode: the node reserves, forwards, and passes the upstream's own error through
  // (upstream/base.py forward_upstream_error_response); only auth, the model lookup and body
  // parsing answer before that, and those bodies carry `detail` or type invalid_model.
  if (!xcashu && a.status !== 401 && a.status !== 403 && detail === undefined && errorType !== 'invalid_model') {
    return {
      ...base,
      kind: 'upstream_error',
      token: 'none',
      upstreamStatus: a.status,
      rateLimited: a.status === 429 || code === RATE_LIMIT_CODE,
    };
  }

  if (echo) return { ...base, kind: 'rejected_echo', token: 'unspent', echoedToken: echo, echoMatches: echo === a.sentToken };

  const evidence = () => clip(redact(a.bodyText), EVIDENCE_CHARS);
  if (typeof code === 'string' && SPENT_CODES.has(code)) return { ...base, kind: 'rejected', token: xcashu ? 'spent' : 'none' };
  if (code === 'cashu_token_consumed' || errorType === 'token_consumed' || errorType === 'internal_error') {
    return { ...base, kind: 'internal_error', token: xcashu ? 'spent' : 'none', evidence: evidence() };
  }
  // 401/403: credentials refused; a 402 in no shape routstr writes: our payment refused, unredeemed.
  if (a.status === 401 || a.status === 402 || a.status === 403) return { ...base, kind: 'rejected', token: xcashu ? 'unspent' : 'none' };
  // routstr has no rate limiter of its own: a bare 429 comes from something in front of it,
  // before the token reached the node.
  if (a.status === 429) return { ...base, kind: 'rate_limited', token: xcashu ? 'unspent' : 'none' };
  // Unrecognised server errors (a proxy's 502, FastAPI's generic 500, api_error/internal_error
  // from an unclassified redemption failure): the token may or may not have been redeemed.
  if (a.status >= 500 || a.status === 200) return { ...base, kind: 'internal_error', token: xcashu ? 'unknown' : 'none', evidence: evidence() };
  if (a.status >= 400) return { ...base, kind: 'request_error', token: xcashu ? 'unspent' : 'none' };
  // 1xx/3xx: nothing a node answers to a POST; treat like an unknown server error.
  return { ...base, kind: 'internal_error', token: xcashu ? 'unknown' : 'none', evidence: evidence() };
}

/** Retry-After as delta-seconds (routstr parses floats) or an HTTP date, in ms from now. */
export function parseRetryAfter(header: string | undefined, nowMs: number): number | undefined {
  if (header === undefined) return undefined;
  const s = header.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.min(Math.ceil(Number(s) * 1000), MAX_RETRY_AFTER_MS);
  const at = Date.parse(s);
  if (!Number.isFinite(at) || !/[a-z]/i.test(s)) return undefined;
  return Math.min(Math.max(0, at - nowMs), MAX_RETRY_AFTER_MS);
}

function retryFromDetails(err: Record<string, unknown> | undefined): number | undefined {
  const s = obj(err?.details)?.retry_after_seconds;
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) return undefined;
  return Math.min(Math.ceil(s * 1000), MAX_RETRY_AFTER_MS);
}
