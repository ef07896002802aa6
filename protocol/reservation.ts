// The node's reservation: routstr-core v0.4.5 checks an X-Cashu token's face value against
// `calculate_discounted_max_cost(get_max_cost_for_model(...), body)` (payment/helpers.py)
// before redeeming it; too little is a 402 `minimum_balance_required`. Sizing each token to
// exactly that figure makes a 402 rare and keeps no more liquidity out than needed.
// Checked against the node's own Python on many models and bodies (test/protocol/fixtures).
import { z } from 'zod';

/** routstr's `tolerance_percentage` default: it reserves 99 % of its listed ceilings. */
export const NODE_TOLERANCE_PERCENT = 1;
/** routstr's `min_request_msat` default: the smallest reservation. */
export const NODE_MIN_REQUEST_MSAT = 1;
/** The fewest prompt tokens routstr adds for one image (`_calculate_image_tokens`: 85 base). */
const NODE_MIN_IMAGE_TOKENS = 85;

/**
 * The figures a node's reservation check reads, exactly as it lists them. Floats on purpose:
 * the node computes its reservation in binary floating point from these very values, and
 * mirroring it to the msat needs the same inputs. Only {@link reservationMsat} reads them,
 * and its result is an integer; no other money arithmetic may use them.
 */
export interface ReserveTerms {
  /** `sats_pricing.prompt` / `.completion`: sats per token. */
  promptSats: number;
  completionSats: number;
  /** `sats_pricing.max_cost` / `.max_prompt_cost` / `.max_completion_cost`: sats (0 when absent, as pydantic defaults them). */
  maxCostSats: number;
  maxPromptCostSats: number;
  maxCompletionCostSats: number;
  /** `top_provider.context_length` and `top_provider.max_completion_tokens`. */
  topContextLength?: number;
  topMaxCompletionTokens?: number;
  /** The model's own `context_length` (read only when top_provider gives neither limit). */
  contextLength?: number;
}

const TermNumber = z.union([z.number(), z.string().regex(/^\s*[0-9.eE+-]+\s*$/).transform(Number)]).pipe(z.number().finite());
const Limit = z.number().int().nonnegative().safe().optional().catch(undefined);
const ReserveListingSchema = z.object({
  context_length: Limit,
  top_provider: z.object({ context_length: Limit.nullable(), max_completion_tokens: Limit.nullable() }).nullable().optional().catch(undefined),
  sats_pricing: z.object({
    prompt: TermNumber,
    completion: TermNumber,
    max_cost: TermNumber.optional().catch(undefined),
    max_prompt_cost: TermNumber.optional().catch(undefined),
    max_completion_cost: TermNumber.optional().catch(undefined),
  }),
});

/** A `/v1/models` entry's reservation figures; null without a usable `sats_pricing`. */
export function reserveTermsFrom(model: unknown): ReserveTerms | null {
  const r = ReserveListingSchema.safeParse(model);
  if (!r.success) return null;
  const { sats_pricing: s, top_provider: top, context_length } = r.data;
  return {
    promptSats: s.prompt,
    completionSats: s.completion,
    maxCostSats: s.max_cost ?? 0,
    maxPromptCostSats: s.max_prompt_cost ?? 0,
    maxCompletionCostSats: s.max_completion_cost ?? 0,
    topContextLength: top?.context_length ?? undefined,
    topMaxCompletionTokens: top?.max_completion_tokens ?? undefined,
    contextLength: context_length,
  };
}

/** The request body fields the node's reservation reads. */
export interface ReserveBody {
  messages?: unknown;
  max_tokens?: unknown;
}

/** What the node's reservation reads from a body, computed once per request (not per provider). */
export interface ReserveInput {
  /** The node's prompt token estimate; undefined when `messages` is falsy (no prompt discount). */
  promptTokens: number | undefined;
  /** int(max_tokens), undefined when absent or not an int (no completion discount). */
  maxTokens: number | undefined;
}

export function reserveInputOf(body: ReserveBody): ReserveInput {
  return {
    promptTokens: pyTruthy(body.messages) ? nodePromptTokens(body.messages) : undefined,
    maxTokens: body.max_tokens === undefined || body.max_tokens === null ? undefined : pyInt(body.max_tokens),
  };
}

/**
 * msat the node requires an X-Cashu token to be worth for this body: its
 * `calculate_discounted_max_cost(get_max_cost_for_model(model), body)`, float for float.
 * Never above the node's `max_cost` ceiling. Without `terms` (no sats pricing known) the
 * ceiling itself, from `maxCostMsat` (rounded up, so never below the node's figure).
 */
export function reservationMsat(terms: ReserveTerms | null, body: ReserveBody, maxCostMsat = 0): number {
  return reservationMsatFor(terms, reserveInputOf(body), maxCostMsat);
}

/** {@link reservationMsat} from a body's precomputed {@link ReserveInput}. */
export function reservationMsatFor(terms: ReserveTerms | null, input: ReserveInput, maxCostMsat = 0): number {
  const keep = 1 - NODE_TOLERANCE_PERCENT / 100;
  if (!terms) return Math.max(NODE_MIN_REQUEST_MSAT, Math.trunc(maxCostMsat * keep));
  // get_max_cost_for_model: int(max_cost * 1000 * (1 - tolerance / 100))
  const ceiling = Math.max(NODE_MIN_REQUEST_MSAT, Math.trunc(terms.maxCostSats * 1000 * keep));
  let maxPromptAllowedSats = terms.maxPromptCostSats * keep;
  const maxCompletionAllowedSats = terms.maxCompletionCostSats * keep;
  const limit = promptTokenLimit(terms);
  if (limit !== undefined) maxPromptAllowedSats = limit * terms.promptSats * keep;
  let adjusted = ceiling;
  if (input.promptTokens !== undefined) {
    const delta = maxPromptAllowedSats - input.promptTokens * terms.promptSats;
    if (delta > 0) adjusted -= Math.floor(delta * 1000);
  }
  if (input.maxTokens !== undefined) {
    const delta = maxCompletionAllowedSats - input.maxTokens * terms.completionSats;
    if (delta > 0) adjusted -= Math.floor(delta * 1000);
  }
  return Math.max(NODE_MIN_REQUEST_MSAT, adjusted);
}

// The prompt budget the node discounts against: context minus completion from top_provider
// (python truthiness: a 0 limit counts as absent), else the model's context_length.
function promptTokenLimit(t: ReserveTerms): number | undefined {
  const cl = t.topContextLength;
  const mct = t.topMaxCompletionTokens;
  if (cl || mct) {
    if (cl && mct) return Math.max(0, cl - mct);
    if (cl) return cl;
    return 0;
  }
  return t.contextLength || undefined;
}

/**
 * The node's prompt token estimate for a chat body: `estimate_tokens` (characters of text
 * parts // 3, counted in code points as Python's len does) plus its image tokens, taken at
 * their 85-token minimum: fewer estimated tokens mean a larger reservation, never a 402.
 */
export function nodePromptTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let chars = 0;
  let images = 0;
  for (const msg of messages) {
    if (!isPlainObject(msg)) continue;
    const content = msg.content;
    if (typeof content === 'string') chars += codePoints(content);
    else if (Array.isArray(content)) {
      for (const item of content) {
        if (!isPlainObject(item)) continue;
        if (item.type === 'text') chars += typeof item.text === 'string' ? codePoints(item.text) : 0;
        else if ((item.type === 'image_url' || item.type === 'input_image') && imageUrlOf(item.image_url)) images++;
      }
    }
  }
  return Math.floor(chars / 3) + images * NODE_MIN_IMAGE_TOKENS;
}

function imageUrlOf(v: unknown): string {
  if (typeof v === 'string') return v;
  if (isPlainObject(v) && typeof v.url === 'string') return v.url;
  return '';
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Python's len() of a str: code points, not UTF-16 units. */
function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** Python truthiness of a JSON value (`if messages := body.get("messages")`). */
function pyTruthy(v: unknown): boolean {
  if (Array.isArray(v) || typeof v === 'string') return v.length > 0;
  if (isPlainObject(v)) return Object.keys(v).length > 0;
  return !!v;
}

/** Python's int() of a JSON value, or undefined where it raises TypeError/ValueError (the node then ignores max_tokens). */
function pyInt(v: unknown): number | undefined {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v) : undefined;
  if (typeof v === 'string' && /^\s*[+-]?\d+(?:_\d+)*\s*$/.test(v)) return Number(v.replace(/_/g, ''));
  return undefined;
}
