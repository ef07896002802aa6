// The Routstr "lost change" call: POST <provider>/v1/balance/refund with the exact token we
// paid with in X-Cashu (ROUTSTR.md section 3). Pure I/O: fetch and the sleep are injected.
//
// Answers, by node version:
//   200 {"token","sats"|"msats"}  the change (repeat calls return the same token)
//   425                           the request still runs, or no refund was ever minted (forever)
//   404 "Refund not found"        the node never saw the token; nodes before v0.4.4 also say 404
//                                 while the request runs, so 404 is only final when told so
//   410                           swept after 180 days
// Nodes before v0.4.3 have no such route: FastAPI answers 404 {"detail":"Not Found"}; then the
// older alias /v1/wallet/refund is tried.
import { z } from 'zod';

export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; signal?: AbortSignal }) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export const REFUND_PATHS = ['/v1/balance/refund', '/v1/wallet/refund'] as const;

export type RefundAnswer =
  /** The provider handed back change; amounts are in `unit`. */
  | { kind: 'refunded'; token: string; amount: number; unit: 'sat' | 'msat' }
  /** 425 (or 404 from a node that predates 425): ask again later. */
  | { kind: 'pending' }
  | { kind: 'not_found' }
  | { kind: 'swept' };

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

/** One refund request (trying the older alias when the route does not exist). */
export async function requestRefund(providerUrl: string, token: string, opts: RefundOptions): Promise<RefundAnswer> {
  const base = providerUrl.replace(/\/+$/, '');
  let lastRouteMissing: RefundProtocolError | null = null;
  for (const path of REFUND_PATHS) {
    const res = await post(base + path, providerUrl, token, opts);
    const text = await res.text().catch(() => '');
    if (res.status === 200) {
      const body = parseJson(text);
      const parsed = RefundBody.safeParse(body);
      if (!parsed.success) throw new RefundProtocolError(providerUrl, 200, `malformed refund body (${parsed.error.issues[0]?.message ?? 'invalid'})`);
      return { kind: 'refunded', ...parsed.data };
    }
    if (res.status === 425) return { kind: 'pending' };
    if (res.status === 410) return { kind: 'swept' };
    if (res.status === 404) {
      const detail = detailOf(text);
      if (detail === 'Refund not found') return { kind: 'not_found' };
      lastRouteMissing = new RefundProtocolError(providerUrl, 404, `no refund route at ${path}`);
      continue; // route missing: older node, try the alias
    }
    if (res.status === 405) {
      lastRouteMissing = new RefundProtocolError(providerUrl, 405, `no refund route at ${path}`);
      continue;
    }
    if (res.status >= 500) throw new RefundUnavailableError(providerUrl, res.status);
    throw new RefundProtocolError(providerUrl, res.status, detailOf(text) ?? 'unexpected status');
  }
  throw lastRouteMissing ?? new RefundProtocolError(providerUrl, 404, 'no refund route');
}

export interface PollOptions extends RefundOptions {
  /** Attempts in all; a 425 (or pre-v0.4.4 404) after the last one gives up as 'pending'. */
  maxAttempts?: number;
  /** Wait between attempts (the node means Retry-After: 2 s but never sends it). */
  delayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Treat 404 as 'pending' too (a node before v0.4.4 answers 404 while the request runs). */
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

function detailOf(text: string): string | null {
  const parsed = DetailBody.safeParse(parseJson(text));
  if (!parsed.success) return null;
  const d = parsed.data.detail;
  return typeof d === 'string' ? d : JSON.stringify(d);
}
