// The Routstr "lost change" call: POST <provider>/v1/balance/refund with the exact token we
// paid with in X-Cashu (ROUTSTR.md section 3). Pure I/O: fetch and the sleep are injected.
//
// Answers, by node version (routstr-core balance.py refund_wallet_endpoint, X-Cashu branch):
//   200 {"token","sats"|"msats"}  the change (repeat calls return the same token)
//   425                           v0.4.4 on: the request still runs, or no refund was ever minted (forever)
//   404 "Refund not found"        the node has no record of the token - yet: v0.4.5 records it a
//                                 moment after redeeming it, and nodes before v0.4.4 say 404 while
//                                 the request runs (and forever when nothing was minted); so 404 is
//                                 final only when the caller decides the window is over
//   410                           swept after 180 days
//   422 (FastAPI: header authorization missing)  before v0.4.3 the route takes only
//                                 `Authorization: Bearer`: this node cannot refund by token at all
// The route has the same handler under /v1/wallet/refund on every version, so one path is asked.
import { z } from 'zod';

export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; signal?: AbortSignal }) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export const REFUND_PATH = '/v1/balance/refund';

export type RefundAnswer =
  /** The provider handed back change; amounts are in `unit`. */
  | { kind: 'refunded'; token: string; amount: number; unit: 'sat' | 'msat' }
  /** 425: ask again later. */
  | { kind: 'pending' }
  | { kind: 'not_found' }
  | { kind: 'swept' }
  /** The node has no refund by token (before v0.4.3): final, nothing will change. */
  | { kind: 'unsupported'; status: number };

export class RefundError extends Error {
  override name = 'RefundError';
}
/** The provider could not be reached, or answered 5xx. */
export class RefundUnavailableError extends RefundError {
  override name = 'RefundUnavailableError';
  constructor(readonly providerUrl: string, readonly status: number | null, cause?: unknown) {
    super(`refund endpoint of ${providerUrl} unavailable${status ? ` (HTTP ${status})` : ''}${cause instanceof Error ? `: ${cause.message}` : ''}`, { cause });
  }
}
/** The provider answered something this protocol does not allow (bad body, unexpected status). */
export class RefundProtocolError extends RefundError {
  override name = 'RefundProtocolError';
  constructor(readonly providerUrl: string, readonly status: number, detail: string) {
    super(`refund endpoint of ${providerUrl} answered HTTP ${status}: ${detail}`);
  }
}

const IntString = z.union([z.string().regex(/^\d+$/), z.number().int().nonnegative()]).transform(Number).pipe(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER));
const RefundBody = z.union([
  z.object({ token: z.string().startsWith('cashu'), sats: IntString }).transform((b) => ({ token: b.token, amount: b.sats, unit: 'sat' as const })),
  z.object({ token: z.string().startsWith('cashu'), msats: IntString }).transform((b) => ({ token: b.token, amount: b.msats, unit: 'msat' as const })),
]);
const DetailBody = z.object({ detail: z.unknown() });

export interface RefundOptions {
  fetch: FetchLike;
  timeoutMs?: number;
}

/** One refund request. */
export async function requestRefund(providerUrl: string, token: string, opts: RefundOptions): Promise<RefundAnswer> {
  const res = await post(providerUrl.replace(/\/+$/, '') + REFUND_PATH, providerUrl, token, opts);
  const text = await res.text().catch(() => '');
  if (res.status === 200) {
    const parsed = RefundBody.safeParse(parseJson(text));
    if (!parsed.success) throw new RefundProtocolError(providerUrl, 200, `malformed refund body (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    return { kind: 'refunded', ...parsed.data };
  }
  if (res.status === 425) return { kind: 'pending' };
  if (res.status === 410) return { kind: 'swept' };
  if (res.status === 404 && detailOf(text) === 'Refund not found') return { kind: 'not_found' };
  if (res.status === 422 && wantsAuthorization(text)) return { kind: 'unsupported', status: 422 };
  if (res.status >= 500) throw new RefundUnavailableError(providerUrl, res.status);
  throw new RefundProtocolError(providerUrl, res.status, detailOf(text) ?? 'unexpected status');
}

/**
 * How long after sending a token a 404 still means "not recorded yet" rather than "never": a node
 * from v0.4.4 on says 404 only in the moment between redeeming the token and recording it (then
 * 425 while the request runs); an older one (or one whose version we do not know) says 404 for as
 * long as the request runs.
 */
export const NOT_FOUND_PENDING_MS = { recording: 2 * 60_000, running: 15 * 60_000 } as const;

export function notFoundPendingMs(nodeVersion: string | null | undefined): number {
  const m = nodeVersion ? /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(nodeVersion.trim()) : null;
  if (!m) return NOT_FOUND_PENDING_MS.running;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  const atLeast044 = major > 0 || minor > 4 || (minor === 4 && patch >= 4);
  return atLeast044 ? NOT_FOUND_PENDING_MS.recording : NOT_FOUND_PENDING_MS.running;
}

export interface PollOptions extends RefundOptions {
  /** Attempts in all; a 425 (or pre-v0.4.4 404) after the last one gives up as 'pending'. */
  maxAttempts?: number;
  /** Wait between attempts (the node means Retry-After: 2 s but never sends it). */
  delayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Treat 404 as 'pending' too: the token was sent so recently that the node may not have recorded it yet. */
  notFoundMeansPending?: boolean;
}

/** Ask until the answer is final or the bound is reached. Network errors are thrown, not retried. */
export async function pollRefund(providerUrl: string, token: string, opts: PollOptions): Promise<RefundAnswer> {
  const maxAttempts = opts.maxAttempts ?? 5;
  const delayMs = opts.delayMs ?? 2_000;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let answer: RefundAnswer = { kind: 'pending' };
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    answer = await requestRefund(providerUrl, token, opts);
    const retry = answer.kind === 'pending' || (answer.kind === 'not_found' && opts.notFoundMeansPending);
    if (!retry) return answer;
    if (attempt < maxAttempts) await sleep(delayMs);
  }
  return answer;
}

async function post(url: string, providerUrl: string, token: string, opts: RefundOptions) {
  const signal = AbortSignal.timeout(opts.timeoutMs ?? 15_000);
  try {
    return await opts.fetch(url, { method: 'POST', headers: { 'X-Cashu': token, accept: 'application/json' }, signal });
  } catch (err) {
    throw new RefundUnavailableError(providerUrl, null, err);
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const FastApiMissing = z.object({ detail: z.array(z.object({ type: z.string(), loc: z.array(z.union([z.string(), z.number()])) })) });

/** FastAPI's 422 for a required `authorization` header: the pre-0.4.3 route, which refunds API keys only. */
function wantsAuthorization(text: string): boolean {
  const parsed = FastApiMissing.safeParse(parseJson(text));
  return parsed.success && parsed.data.detail.some((d) => d.type === 'missing' && d.loc[0] === 'header' && d.loc[1] === 'authorization');
}

function detailOf(text: string): string | null {
  const parsed = DetailBody.safeParse(parseJson(text));
  if (!parsed.success) return null;
  const d = parsed.data.detail;
  return typeof d === 'string' ? d : JSON.stringify(d);
}
