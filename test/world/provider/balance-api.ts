// The balance (API-key) API under /v1/balance/* and its older alias /v1/wallet/*, as
// routstr-core routstr/balance.py serves it (v0.4.5, with the older versions' differences
// where the `version` option asks for them): create, info, topup, refund. Amounts in msat.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getTokenMetadata } from '@cashu/cashu-ts';
import {
  atLeast,
  available,
  BalanceHttpError,
  creditBalance,
  errorDetail,
  lookupNoCreate,
  unreachable,
  validateBearer,
  type BalanceContext,
} from './balance-auth.ts';
import type { KeyRow } from './balance-book.ts';
import { RedeemError } from './purse.ts';
import { detailBody, readBody, sendJson } from './http.ts';

const PREFIXES = ['/v1/balance', '/v1/wallet'];
/** settings.refund_cache_ttl_seconds default (3600 s). */
const REFUND_CACHE_TTL_MS = 3_600_000;

/** Whether a path belongs to the balance API (either prefix). */
export function isBalanceApiPath(path: string): boolean {
  return PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));
}

/** Answer one request under /v1/balance or /v1/wallet; returns the status sent. */
export async function handleBalanceApi(ctx: BalanceContext, req: IncomingMessage, res: ServerResponse, path: string, requestId: string, base: Record<string, string>): Promise<number> {
  const sub = path.replace(/^\/v1\/(balance|wallet)/, '') || '/';
  const method = req.method ?? 'GET';
  const query = new URL(req.url ?? '/', 'http://node').searchParams;
  try {
    let body: unknown;
    if ((method === 'GET' && (sub === '/' || sub === '/info')) || (method === 'GET' && sub === '/create')) {
      body = sub === '/create' ? await create(ctx, query.get('initial_balance_token'), 'query') : await info(ctx, req);
    } else if (method === 'POST' && sub === '/create' && atLeast(ctx.version, '0.4.5')) {
      body = await create(ctx, stringField(await jsonBody(req), 'initial_balance_token'), 'body');
    } else if (method === 'POST' && sub === '/topup') {
      body = await topup(ctx, req, query.get('cashu_token'));
    } else if (method === 'POST' && sub === '/refund') {
      body = await refund(ctx, req);
    } else {
      // balance.py wallet_catch_all
      throw new BalanceHttpError(404, 'Not found check /docs for available endpoints');
    }
    sendJson(res, 200, body, base);
    return 200;
  } catch (err) {
    if (!(err instanceof BalanceHttpError)) throw err;
    sendJson(res, err.status, detailBody(err.detail, requestId), { ...base, ...err.headers });
    return err.status;
  }
}

async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // FastAPI answers an unparsable body with 422 json_invalid.
    throw new BalanceHttpError(422, [{ type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error', input: {} }]);
  }
}

function stringField(body: unknown, field: string): string | null {
  const v = body && typeof body === 'object' ? (body as Record<string, unknown>)[field] : undefined;
  return typeof v === 'string' ? v : null;
}

/** FastAPI's 422 for a required field that is missing. */
const missing = (where: 'query' | 'body' | 'header', field: string) =>
  new BalanceHttpError(422, [{ type: 'missing', loc: [where, field], msg: 'Field required', input: null }]);

/** get_key_from_header: `Authorization: Bearer <sk-... | cashu...>`, which may create a key. */
async function keyFromHeader(ctx: BalanceContext, req: IncomingMessage): Promise<KeyRow> {
  const auth = req.headers.authorization;
  if (auth === undefined) throw missing('header', 'authorization');
  if (!auth.startsWith('Bearer ')) throw new BalanceHttpError(401, "Invalid authorization. Use 'Bearer <cashu-token>' or 'Bearer <api-key>'");
  return validateBearer(ctx, auth.slice(7));
}

/** _create_balance: the token redeemed into a key (or the key it already made). */
async function create(ctx: BalanceContext, token: string | null, where: 'query' | 'body') {
  if (token === null) throw missing(where, 'initial_balance_token');
  const key = await validateBearer(ctx, token);
  return { api_key: `sk-${key.hash}`, balance: key.balanceMsat };
}

/** get_balance_info; `balance` is what the key may still spend (balance - reserved). */
async function info(ctx: BalanceContext, req: IncomingMessage) {
  const key = await keyFromHeader(ctx, req);
  return {
    api_key: `sk-${key.hash}`,
    balance: available(key),
    reserved: key.reservedMsat,
    is_child: false,
    total_requests: key.totalRequests,
    total_spent: key.totalSpentMsat,
    balance_limit: null,
    balance_limit_reset: null,
    validity_date: null,
  };
}

/** topup_wallet_endpoint: `cashu_token` as a query parameter or in a JSON body. */
async function topup(ctx: BalanceContext, req: IncomingMessage, queryToken: string | null) {
  const key = await keyFromHeader(ctx, req);
  let token = stringField(await jsonBody(req), 'cashu_token') ?? queryToken;
  if (token === null) throw new BalanceHttpError(400, 'A cashu_token is required.');
  token = token.replace(/[\n\r\t]/g, '');
  if (token.length < 10 || !token.includes('cashu')) throw new BalanceHttpError(400, 'Invalid token format');
  return { msats: await creditBalance(ctx, token, key) };
}

/** The refund sweeper (hourly in routstr): uncollected refunds past the sweep age go back to the node. */
async function sweep(ctx: BalanceContext): Promise<void> {
  for (const r of ctx.balances.sweepable(ctx.clock(), ctx.knobs.balanceRefundSweepMs)) {
    try {
      const meta = getTokenMetadata(r.token);
      await ctx.purse.redeem(r.token, meta.mint, meta.unit ?? 'sat');
      r.swept = true;
    } catch (err) {
      // Already spent by its owner: collected, not swept.
      if (err instanceof RedeemError && err.code === 'cashu_token_already_spent') r.collected = true;
    }
  }
}

/**
 * refund_wallet_endpoint, API-key branch: the whole spendable balance as one token. The
 * answer is a plain dict (no X-Cashu header on this branch, unlike the X-Cashu branch).
 */
async function refund(ctx: BalanceContext, req: IncomingMessage): Promise<Record<string, string>> {
  const v = ctx.version;
  const auth = req.headers.authorization;
  if (auth === undefined || !auth.startsWith('Bearer ')) {
    throw new BalanceHttpError(401, "Invalid authorization. Use 'Bearer <cashu-token>' or 'Bearer <api-key>'");
  }
  const bearer = auth.slice(7);
  let key: KeyRow | undefined;
  if (atLeast(v, '0.4.4')) {
    key = lookupNoCreate(ctx, bearer);
    if (!key) {
      const message = 'Key not found. Deposit first via /v1/wallet/create before requesting a refund.';
      throw new BalanceHttpError(401, atLeast(v, '0.4.5') ? errorDetail(message, 'invalid_request_error', 'key_not_found') : message);
    }
  } else {
    // Before v0.4.4 the refund validated the bearer like any request, redeeming a new token.
    key = await validateBearer(ctx, bearer);
  }

  if (available(key) <= 0) {
    const cached = ctx.refundCache.get(bearer);
    if (cached && cached.expiresAtMs > ctx.clock()) return cached.body;
    if (atLeast(v, '0.4.5')) {
      await sweep(ctx);
      const persisted = ctx.balances.lastRefund(key.hash);
      if (persisted) {
        if (persisted.swept) throw new BalanceHttpError(410, 'Refund has been swept');
        persisted.collected = true;
        return { token: persisted.token, ...amountField(persisted.unit, persisted.balanceMsat) };
      }
    }
  }

  if (atLeast(v, '0.4.3') && key.reservedMsat > 0) {
    if (atLeast(v, '0.4.4')) ctx.balances.releaseStale(key.hash, ctx.clock(), ctx.knobs.staleReservationMs);
    if (key.reservedMsat > 0) throw new BalanceHttpError(400, 'Cannot refund key. There are ongoing requests for this api key.');
  }

  const remainingMsat = available(key);
  const amount = key.refundCurrency === 'sat' ? Math.floor(remainingMsat / 1000) : remainingMsat;
  if (remainingMsat > 0 && amount <= 0) throw new BalanceHttpError(400, 'Balance too small to refund');
  if (amount <= 0) throw new BalanceHttpError(400, 'No balance to refund');

  const readBalance = key.balanceMsat;
  const readReserved = key.reservedMsat;
  // The node's read and its debit are two database statements; a change between them is a 409.
  await ctx.delay(ctx.knobs.refundDebitDelayMs);
  const debitFirst = atLeast(v, '0.4.3');
  if (debitFirst && !ctx.balances.debitAll(key.hash, readBalance, readReserved)) {
    throw new BalanceHttpError(409, 'Balance changed concurrently. Please retry the refund.');
  }
  const mint = ctx.knobs.acceptedMints.includes(key.refundMint) ? key.refundMint : (ctx.knobs.acceptedMints[0] ?? key.refundMint);
  let token: string;
  try {
    token = await ctx.purse.issue(mint, key.refundCurrency, amount);
  } catch (err) {
    if (debitFirst) ctx.balances.restore(key.hash, readBalance, readReserved);
    ctx.report(err);
    throw unreachable(err) ? new BalanceHttpError(503, 'Mint service unavailable') : new BalanceHttpError(500, 'Refund failed');
  }
  // Before v0.4.3 the balance was zeroed after minting, whatever happened meanwhile.
  if (!debitFirst) ctx.balances.debitAll(key.hash, key.balanceMsat, key.reservedMsat);
  const body = { token, ...amountField(key.refundCurrency, remainingMsat) };
  ctx.refundCache.set(bearer, { expiresAtMs: ctx.clock() + REFUND_CACHE_TTL_MS, body });
  ctx.balances.recordRefund(key.hash, { token, amount, unit: key.refundCurrency, balanceMsat: remainingMsat, createdAtMs: ctx.clock(), collected: false, swept: false });
  ctx.book(0, key.refundCurrency === 'sat' ? amount * 1000 : amount);
  return body;
}

/** `{"sats": "<n>"}` (whole balance, rounded down) or `{"msats": "<n>"}`, as strings. */
function amountField(unit: 'sat' | 'msat', balanceMsat: number): Record<string, string> {
  return unit === 'sat' ? { sats: String(Math.floor(balanceMsat / 1000)) } : { msats: String(balanceMsat) };
}
