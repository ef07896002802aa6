// Provider prices as integers, and the cost arithmetic a Routstr node bills with.
//
// Unit choice: a provider lists sats per token as a float (often ~0.00001 sat/token), so
// "integer msat per token" would be 0 for most models. Per-token prices are therefore kept
// as integer **nmsat** (nano-msat, 1e-9 msat = 1e-12 sat) per token:
// - exact enough: rounding a float price to 1 nmsat moves a 1M-token bill by at most
//   0.0005 msat, below the node's own 0.001 msat rounding step, so our integer bill
//   equals the node's float bill;
// - big enough: a safe integer holds up to ~9,000 sat/token.
// Per-request fees and ceilings (`request`, `max_cost`) are whole msat, rounded up, since a
// request can never be paid in less than 1 msat. Products with token counts use BigInt.
import { z } from 'zod';

/** nmsat per msat. */
export const NMSAT_PER_MSAT = 1_000_000_000;
const NMSAT_PER_SAT = 1_000_000_000_000;

/** A model's price at one provider, normalized to integers. */
export interface ModelPrice {
  /** Per-token prices in nmsat (1e-9 msat). */
  promptNmsat: number;
  completionNmsat: number;
  /** Cached-input read/write prices; the node bills these at the prompt price when 0. */
  cacheReadNmsat: number;
  cacheWriteNmsat: number;
  /** Fixed fee per request, msat (rounded up). */
  requestMsat: number;
  /** The node's ceiling for one request (`max_cost`, listed in sats), msat; 0 = none listed. */
  maxCostMsat: number;
  maxPromptCostMsat: number;
  maxCompletionCostMsat: number;
  /** Where the price came from: the provider's `sats_pricing`, or `pricing` (USD) at our configured rate. */
  source: 'sats_pricing' | 'usd_pricing';
}

// Prices arrive as JSON numbers, sometimes as numeric strings; anything else is "absent".
const PriceNumber = z.union([z.number(), z.string().regex(/^\s*[0-9.eE+-]+\s*$/).transform(Number)]).pipe(z.number().finite().nonnegative());
const optionalPrice = PriceNumber.optional().catch(undefined);

export const PricingSchema = z.object({
  prompt: PriceNumber,
  completion: PriceNumber,
  request: optionalPrice,
  input_cache_read: optionalPrice,
  input_cache_write: optionalPrice,
  max_prompt_cost: optionalPrice,
  max_completion_cost: optionalPrice,
  max_cost: optionalPrice,
});
export type Pricing = z.infer<typeof PricingSchema>;

export class PricingError extends Error {
  override name = 'PricingError';
}

// ---- rounding: one function per direction --------------------------------------------

/** Integer division rounding up (towards +infinity), for amounts we must pay or reserve. */
export function divCeil(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new PricingError('divCeil needs a positive denominator');
  const q = numerator / denominator;
  return numerator % denominator > 0n ? q + 1n : q;
}

/** Integer division rounding down (towards -infinity), for amounts credited to us. */
export function divFloor(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new PricingError('divFloor needs a positive denominator');
  const q = numerator / denominator;
  return numerator % denominator < 0n ? q - 1n : q;
}

/** Integer division rounding to nearest, halves up: Python's round(x, 3) on the node's float. */
export function divRound(numerator: bigint, denominator: bigint): bigint {
  return divFloor(2n * numerator + denominator, 2n * denominator);
}

/** A float amount of sats (a parsed provider price) as whole msat, rounded up. */
export function satsToMsatCeil(sats: number): number {
  const msat = Number(divCeil(decimalToScaled(sats, 12), BigInt(NMSAT_PER_MSAT)));
  if (!Number.isSafeInteger(msat)) throw new PricingError(`${sats} sat is out of range`);
  return msat;
}

// msat -> sat conversions live with the other unit conversions (units.ts); re-exported for callers of this module.
export { msatToSatCeil, msatToSatFloor } from './units.ts';

/** A float sats-per-token price as integer nmsat per token (nearest). */
export function satsPerTokenToNmsat(sats: number): number {
  const v = Number(decimalToScaled(sats, 12));
  if (!Number.isSafeInteger(v)) throw new PricingError(`price ${sats} sat/token is out of range`);
  return v;
}

// A non-negative float as an exact integer multiple of 10^-scale, read from its shortest
// decimal form so that 0.1 is 1e(scale-1), not the binary neighbour.
function decimalToScaled(value: number, scale: number): bigint {
  if (!Number.isFinite(value) || value < 0) throw new PricingError(`invalid price ${value}`);
  const [mantissa, expPart] = value.toExponential().split('e');
  const exp = Number(expPart);
  const [intDigits, fracDigits = ''] = mantissa.split('.');
  const digits = BigInt(intDigits + fracDigits);
  const shift = exp - fracDigits.length + scale;
  if (shift >= 0) return digits * 10n ** BigInt(shift);
  return divRound(digits, 10n ** BigInt(-shift));
}

// ---- normalisation -----------------------------------------------------------------------

export interface NormalizeOptions {
  /** USD per sat; only used when a model lists no `sats_pricing`. */
  usdPerSat?: number;
}

/**
 * A model's integer price from its `sats_pricing`, else from `pricing` (USD per token) when a
 * USD rate is configured; null when neither gives a usable price.
 */
export function normalizePrice(model: { sats_pricing?: unknown; pricing?: unknown }, options: NormalizeOptions = {}): ModelPrice | null {
  const sats = PricingSchema.safeParse(model.sats_pricing);
  if (sats.success) return fromSats(sats.data, 'sats_pricing');
  if (options.usdPerSat && options.usdPerSat > 0) {
    const usd = PricingSchema.safeParse(model.pricing);
    if (usd.success) {
      const rate = options.usdPerSat;
      const inSats: Pricing = {
        prompt: usd.data.prompt / rate,
        completion: usd.data.completion / rate,
        request: usd.data.request === undefined ? undefined : usd.data.request / rate,
        input_cache_read: usd.data.input_cache_read === undefined ? undefined : usd.data.input_cache_read / rate,
        input_cache_write: usd.data.input_cache_write === undefined ? undefined : usd.data.input_cache_write / rate,
        max_prompt_cost: usd.data.max_prompt_cost === undefined ? undefined : usd.data.max_prompt_cost / rate,
        max_completion_cost: usd.data.max_completion_cost === undefined ? undefined : usd.data.max_completion_cost / rate,
        max_cost: usd.data.max_cost === undefined ? undefined : usd.data.max_cost / rate,
      };
      return fromSats(inSats, 'usd_pricing');
    }
  }
  return null;
}

function fromSats(p: Pricing, source: ModelPrice['source']): ModelPrice {
  return {
    promptNmsat: satsPerTokenToNmsat(p.prompt),
    completionNmsat: satsPerTokenToNmsat(p.completion),
    cacheReadNmsat: satsPerTokenToNmsat(p.input_cache_read ?? 0),
    cacheWriteNmsat: satsPerTokenToNmsat(p.input_cache_write ?? 0),
    requestMsat: satsToMsatCeil(p.request ?? 0),
    maxCostMsat: satsToMsatCeil(p.max_cost ?? 0),
    maxPromptCostMsat: satsToMsatCeil(p.max_prompt_cost ?? 0),
    maxCompletionCostMsat: satsToMsatCeil(p.max_completion_cost ?? 0),
    source,
  };
}

/** Whether two prices bill identically (the source label aside). */
export function samePrice(a: ModelPrice | null, b: ModelPrice | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.promptNmsat === b.promptNmsat &&
    a.completionNmsat === b.completionNmsat &&
    a.cacheReadNmsat === b.cacheReadNmsat &&
    a.cacheWriteNmsat === b.cacheWriteNmsat &&
    a.requestMsat === b.requestMsat &&
    a.maxCostMsat === b.maxCostMsat &&
    a.maxPromptCostMsat === b.maxPromptCostMsat &&
    a.maxCompletionCostMsat === b.maxCompletionCostMsat
  );
}

// ---- cost --------------------------------------------------------------------------------

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  cacheReadTokens?: number;
  cacheWriteTokens?: number;
}

/**
 * What a Routstr node charges for this usage at this price, in msat:
 * `ceil(sum(round(tokens / 1000 x rate, 3)))` with rate in msat per 1k tokens, cache rates
 * falling back to the prompt rate when unlisted. The node adds no request fee here.
 */
export function tokenCostMsat(usage: TokenUsage, price: ModelPrice): number {
  const part = (tokens: number | undefined, nmsat: number) => {
    if (!tokens) return 0n;
    if (!Number.isSafeInteger(tokens) || tokens < 0) throw new PricingError(`invalid token count ${tokens}`);
    // round(tokens x nmsat / 1e9 msat, 3 decimals), kept in units of 0.001 msat.
    return divRound(BigInt(tokens) * BigInt(nmsat), 1_000_000n);
  };
  const milliMsat =
    part(usage.promptTokens, price.promptNmsat) +
    part(usage.completionTokens, price.completionNmsat) +
    part(usage.cacheReadTokens, price.cacheReadNmsat || price.promptNmsat) +
    part(usage.cacheWriteTokens, price.cacheWriteNmsat || price.promptNmsat);
  return Number(divCeil(milliMsat, 1000n));
}

/** The list price the Routstr SDK ranks by: prompt + completion per token, nmsat. */
export function listPriceNmsat(price: ModelPrice): number {
  return price.promptNmsat + price.completionNmsat;
}

/** A per-token nmsat price as sats per million tokens, for display. */
export function nmsatToSatsPerMillion(nmsat: number): number {
  return (nmsat * 1_000_000) / NMSAT_PER_SAT;
}

// The node's reservation check lives beside this file; re-exported so pricing is one import.
export {
  nodePromptTokens,
  reservationMsat,
  reservationMsatFor,
  reserveInputOf,
  reserveTermsFrom,
  NODE_MIN_REQUEST_MSAT,
  NODE_TOLERANCE_PERCENT,
  type ReserveBody,
  type ReserveInput,
  type ReserveTerms,
} from './reservation.ts';
