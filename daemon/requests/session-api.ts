// The node's balance (API-key) API, as routstr-core v0.4.5 routstr/balance.py serves it
// (ROUTSTR.md section 3, "The balance mode"); amounts in msat. Each answer is parsed with zod at
// this edge into a typed result; a refusal is a SessionApiError with the node's status and a
// stable `code`, so the session manager branches on codes, never on message text.
//   create  POST /v1/balance/create {"initial_balance_token"} -> {api_key, balance}
//   topup   POST /v1/balance/topup {"cashu_token"} (Bearer sk-)  -> {msats}
//   info    GET  /v1/balance/info (Bearer sk-)                  -> {balance (spendable), reserved, ...}
//   refund  POST /v1/balance/refund (Bearer sk-)                -> {token, sats|msats}; the API-key
//           branch answers a plain JSON body (no X-Cashu header, unlike the X-Cashu branch)
// The API key is a bearer secret: it goes in a header, never into an error or a log line.
import { createHash } from 'node:crypto';
import { z } from 'zod';

export type SessionApiCode =
  | 'unreachable' // no answer at all (connection refused, reset, timeout)
  | 'ongoing_requests' // 400 "Cannot refund key. There are ongoing requests for this api key."
  | 'no_balance' // 400 "No balance to refund" / "Balance too small to refund"
  | 'concurrent_change' // 409 "Balance changed concurrently"
  | 'key_not_found' // 401
  | 'swept' // 410 "Refund has been swept"
  | 'insufficient' // 402 insufficient_quota
  | 'refused'; // anything else

export class SessionApiError extends Error {
  override name = 'SessionApiError';
  constructor(readonly code: SessionApiCode, readonly status: number | null, message: string) {
    super(message);
  }
}

export type Fetch = (url: string, init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<{ status: number; text(): Promise<string> }>;

const Created = z.object({ api_key: z.string().regex(/^sk-[0-9a-f]{64}$/), balance: z.number().int().nonnegative() });
const Info = z.object({ balance: z.number().int(), reserved: z.number().int().nonnegative().optional().default(0) });
const Refund = z.object({ token: z.string().min(10), sats: z.string().regex(/^\d+$/).optional(), msats: z.string().regex(/^\d+$/).optional() });
const Topup = z.object({ msats: z.number().int().nonnegative() });

/** The key a node makes for a token: "sk-" + sha256 of the token text (routstr auth.py), known before sending it. */
export function apiKeyOf(token: string): string {
  return `sk-${createHash('sha256').update(token).digest('hex')}`;
}

export class SessionApi {
  constructor(private readonly fetchFn: Fetch = fetch as unknown as Fetch, private readonly timeoutMs = 15_000) {}

  /** Redeem a token into a new balance. */
  async create(providerUrl: string, token: string): Promise<{ apiKey: string; balanceMsat: number }> {
    const body = await this.call(providerUrl, '/v1/balance/create', 'POST', undefined, { initial_balance_token: token });
    const c = parse(Created, body, 'create');
    return { apiKey: c.api_key, balanceMsat: c.balance };
  }

  async topup(providerUrl: string, apiKey: string, token: string): Promise<{ creditedMsat: number }> {
    const body = await this.call(providerUrl, '/v1/balance/topup', 'POST', apiKey, { cashu_token: token });
    return { creditedMsat: parse(Topup, body, 'topup').msats };
  }

  /** `balanceMsat`: what the key may still spend (the node's balance less its reservations). */
  async info(providerUrl: string, apiKey: string): Promise<{ balanceMsat: number; reservedMsat: number }> {
    const i = parse(Info, await this.call(providerUrl, '/v1/balance/info', 'GET', apiKey), 'info');
    return { balanceMsat: i.balance, reservedMsat: i.reserved };
  }

  /** The whole spendable balance back as one token (a repeat returns the same token). */
  async refund(providerUrl: string, apiKey: string): Promise<{ token: string; amountMsat: number }> {
    const r = parse(Refund, await this.call(providerUrl, '/v1/balance/refund', 'POST', apiKey), 'refund');
    const amountMsat = r.msats !== undefined ? Number(r.msats) : Number(r.sats ?? 0) * 1000;
    return { token: r.token, amountMsat };
  }

  private async call(providerUrl: string, path: string, method: string, apiKey: string | undefined, json?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    if (json !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let text: string;
    try {
      const res = await this.fetchFn(providerUrl.replace(/\/+$/, '') + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), signal: AbortSignal.timeout(this.timeoutMs) });
      status = res.status;
      text = await res.text();
    } catch (err) {
      throw new SessionApiError('unreachable', null, `${path}: no answer (${(err as Error)?.name ?? 'error'}: ${String((err as Error)?.message ?? err).slice(0, 120)})`);
    }
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (status === 200) return body;
    throw refusal(path, status, body);
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new SessionApiError('refused', 200, `${what}: the node's answer is not a balance answer (${r.error.issues[0]?.path.join('.') ?? '?'})`);
  return r.data;
}

/** The node's refusal, by status and the detail it carries. */
function refusal(path: string, status: number, body: unknown): SessionApiError {
  const detail = (body as { detail?: unknown } | undefined)?.detail;
  const text = typeof detail === 'string' ? detail : JSON.stringify(detail ?? body ?? null).slice(0, 200);
  const code: SessionApiCode =
    status === 409 ? 'concurrent_change'
    : status === 410 ? 'swept'
    : status === 401 ? 'key_not_found'
    : status === 402 ? 'insufficient'
    : status === 400 && /ongoing requests/i.test(text) ? 'ongoing_requests'
    : status === 400 && /no balance|too small/i.test(text) ? 'no_balance'
    : 'refused';
  return new SessionApiError(code, status, `${path}: ${status} ${text}`);
}

/** The node's `remaining_balance_msats` in a usage chunk or answer (usage, metadata.routstr or the top-level cost), or null. */
export function remainingBalanceMsat(json: unknown): number | null {
  if (!json || typeof json !== 'object') return null;
  const o = json as { usage?: { remaining_balance_msats?: unknown }; metadata?: { routstr?: { remaining_balance_msats?: unknown } }; cost?: { remaining_balance_msats?: unknown } };
  for (const v of [o.usage?.remaining_balance_msats, o.metadata?.routstr?.remaining_balance_msats, o.cost?.remaining_balance_msats]) {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  }
  return null;
}

/** version >= at, comparing major.minor.patch; an unparsable version is not trusted. */
export function versionAtLeast(version: string, at: string): boolean {
  const p = (v: string) => /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(v.trim());
  const a = p(version);
  const b = p(at);
  if (!a || !b) return false;
  for (let i = 1; i <= 3; i++) {
    const x = Number(a[i] ?? 0);
    const y = Number(b[i] ?? 0);
    if (x !== y) return x > y;
  }
  return true;
}
