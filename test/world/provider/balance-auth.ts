// The balance (API-key) mode's context, errors and bearer authentication, after routstr-core
// v0.4.5 routstr/auth.py (validate_bearer_key, _model_balance_error) and routstr/wallet.py
// (credit_balance, classify_redemption_error).
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { getTokenMetadata, NetworkError } from '@cashu/cashu-ts';
import { available, type BalanceBook, type KeyRow } from './balance-book.ts';
import { RedeemError, type Purse } from './purse.ts';
import type { UpstreamFaults } from './faults.ts';
import type { ModelSpec, ProviderKnobs } from './types.ts';

/** What the balance mode needs from the provider that runs it. */
export interface BalanceContext {
  name: string;
  /** Node version (the `version` option); older versions lack some answers. */
  version: string;
  knobs: ProviderKnobs;
  /** The node's listed mints; the first is its primary mint (routstr's default PRIMARY_MINT_URL). */
  mints: string[];
  balances: BalanceBook;
  purse: Purse;
  clock: () => number;
  /** The fake upstream's waits (ttfb, chunk delays) and the refund's read-to-debit gap. */
  delay: (ms: number) => Promise<void>;
  random: () => number;
  usdPerSat: number;
  findModel(id: string): ModelSpec | undefined;
  /** The upstream's faults, shared with the X-Cashu path. */
  faults: UpstreamFaults;
  /** Keep a response open for ever (the timeout knob); destroyed on stop. */
  hang(res: ServerResponse): void;
  /** A token was swapped at the mint into the node's pool. */
  onRedeemed(): void;
  /** msat charged from a balance, msat refunded from balances. */
  book(chargedMsat: number, refundedMsat: number): void;
  report(err: unknown): void;
  /** routstr's in-process refund cache (lost on restart, unlike the balances). */
  refundCache: Map<string, { expiresAtMs: number; body: Record<string, string> }>;
}

/** An HTTP answer the balance mode gives instead of going on (FastAPI's HTTPException). */
export class BalanceHttpError extends Error {
  constructor(
    readonly status: number,
    /** The HTTPException detail: a string or an object, sent as {"detail": ...}. */
    readonly detail: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof detail === 'string' ? detail : JSON.stringify(detail));
    this.name = 'BalanceHttpError';
  }
}

/** routstr's `{"error": {message, type, code}}` detail. */
export const errorDetail = (message: string, type: string, code: string) => ({ error: { message, type, code } });

/** Whether `version` (e.g. "0.4.5", "v0.4.3-beta") is at least `min`. */
export function atLeast(version: string, min: string): boolean {
  const parts = (v: string) => (v.replace(/^v/, '').match(/\d+/g) ?? []).slice(0, 3).map(Number);
  const a = parts(version);
  const b = parts(min);
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** The key of a cashu token used as a bearer: sha256 of its exact text (auth.py). */
export const keyHashOf = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const toMsat = (amount: number, unit: string) => (unit === 'msat' ? amount : amount * 1000);

// auth.py _format_msat_amount.
const formatMsat = (msat: number) => `${(msat / 1000).toFixed(3).replace(/0+$/, '').replace(/\.$/, '')} sats (${msat} msats)`;

/** auth.py _model_balance_error: an existing key holds less than the model's reservation. */
export function modelBalanceError(requiredMsat: number, availableMsat: number): BalanceHttpError {
  const message = `Insufficient balance: ${formatMsat(requiredMsat)} required for this model; ${formatMsat(availableMsat)} available.`;
  return new BalanceHttpError(402, errorDetail(message, 'insufficient_quota', 'insufficient_balance'));
}

const invalidApiKey = () =>
  new BalanceHttpError(401, errorDetail("Invalid API key format. Expected an 'sk-...' API key or a 'cashu...' token.", 'invalid_request_error', 'invalid_api_key'));

/** Mint URLs compared as exact strings, as routstr does (`token.mint in settings.cashu_mints`). */
const primaryMint = (ctx: BalanceContext): string => ctx.knobs.acceptedMints[0] ?? ctx.mints[0] ?? '';

function unreachable(err: unknown): boolean {
  if (err instanceof NetworkError) return true;
  return /ECONNREFUSED|fetch failed|socket hang up|ECONNRESET/i.test(String((err as Error)?.message ?? ''));
}

/** credit_balance errors as redemption_error_to_http_exception maps them. */
function redemptionError(err: unknown): BalanceHttpError {
  if (err instanceof BalanceHttpError) return err;
  if (err instanceof RedeemError) return new BalanceHttpError(err.status, errorDetail(err.message, err.type, err.code));
  if (unreachable(err)) return new BalanceHttpError(503, errorDetail('Cashu mint is unreachable', 'mint_unreachable', 'cashu_mint_unreachable'));
  return new BalanceHttpError(500, errorDetail('Internal error during token redemption', 'api_error', 'internal_error'));
}

/**
 * credit_balance: redeem `token` into `key`'s balance and return the msat credited (after
 * the mint's input fees). A token from another mint or unit than the key's refund mint
 * would be swapped over Lightning; this world's swap always fails (422), token untouched.
 */
export async function creditBalance(ctx: BalanceContext, token: string, key: KeyRow): Promise<number> {
  let meta: ReturnType<typeof getTokenMetadata>;
  try {
    meta = getTokenMetadata(token);
  } catch {
    throw new BalanceHttpError(400, errorDetail('Invalid Cashu token', 'invalid_token', 'invalid_cashu_token'));
  }
  if (meta.mint !== key.refundMint || (meta.unit ?? 'sat') !== key.refundCurrency) {
    throw new BalanceHttpError(422, errorDetail('Failed to swap token from foreign mint', 'mint_error', 'cashu_foreign_mint_swap_failed'));
  }
  let msat: number;
  try {
    const paid = await ctx.purse.redeem(token, meta.mint, meta.unit ?? 'sat');
    msat = toMsat(paid.amount, paid.unit);
  } catch (err) {
    throw redemptionError(err);
  }
  ctx.onRedeemed();
  ctx.balances.credit(key.hash, msat);
  return msat;
}

/**
 * validate_bearer_key: an `sk-` key that exists, or a cashu token (an existing key, or a new
 * one it is redeemed into). `minCostMsat` > 0 checks an existing key's spendable balance
 * (402 insufficient_balance); a new key is checked later, by the reservation.
 */
export async function validateBearer(ctx: BalanceContext, bearer: string, minCostMsat = 0): Promise<KeyRow> {
  if (!bearer) {
    throw new BalanceHttpError(401, errorDetail('API key or Cashu token required', 'invalid_request_error', 'missing_api_key'));
  }
  const checked = (k: KeyRow): KeyRow => {
    if (minCostMsat > 0 && available(k) < minCostMsat) throw modelBalanceError(minCostMsat, available(k));
    return k;
  };
  if (bearer.startsWith('sk-')) {
    const existing = ctx.balances.get(bearer.slice(3));
    if (existing) return checked(existing);
  }
  if (!bearer.startsWith('cashu')) throw invalidApiKey();

  const hash = keyHashOf(bearer);
  let meta: ReturnType<typeof getTokenMetadata>;
  try {
    meta = getTokenMetadata(bearer);
  } catch {
    throw new BalanceHttpError(400, errorDetail('Invalid Cashu token', 'invalid_token', 'invalid_cashu_token'));
  }
  const existing = ctx.balances.get(hash);
  if (existing) return checked(existing);

  const unit = meta.unit === 'msat' ? 'msat' : 'sat';
  const primary = primaryMint(ctx);
  let refundCurrency: 'sat' | 'msat' = unit;
  let refundMint = meta.mint;
  if (meta.mint === primary) {
    // PRIMARY_MINT_UNIT defaults to sat: an msat token at the primary mint is refused.
    if (unit !== 'sat') throw new BalanceHttpError(400, errorDetail('Failed to redeem Cashu token', 'cashu_error', 'cashu_token_redemption_failed'));
  } else if (!ctx.knobs.acceptedMints.includes(meta.mint)) {
    // A foreign token is swapped into the primary mint (and fails below, in this world).
    refundCurrency = 'sat';
    refundMint = primary;
  }
  // The row exists (balance 0) while its token is redeemed: a concurrent request with the
  // same token finds it, as routstr's IntegrityError branch does.
  const key = ctx.balances.create(hash, refundCurrency, refundMint);
  try {
    await creditBalance(ctx, bearer, key);
  } catch (err) {
    ctx.balances.drop(hash);
    throw err;
  }
  return key;
}

/** balance.py _lookup_key_no_create (v0.4.4+): the refund endpoint never redeems. */
export function lookupNoCreate(ctx: BalanceContext, bearer: string): KeyRow | undefined {
  if (bearer.startsWith('sk-')) return ctx.balances.get(bearer.slice(3));
  if (bearer.startsWith('cashu')) return ctx.balances.get(keyHashOf(bearer));
  return undefined;
}

export { available, unreachable };
