// Prices, the reserve check and the charge, following routstr-core v0.4.5
// (payment/helpers.py calculate_discounted_max_cost, payment/cost_calculation.py,
// payment/models.py _update_model_sats_pricing).
import { pyRepr } from './http.ts';
import type { ModelSpec } from './types.ts';

const TOLERANCE = 0.99; // routstr's default tolerance_percentage = 1
const MIN_REQUEST_MSAT = 1;
/** settings.min_request_msat in sats: the floor of a listed `request` and `max_cost`. */
const MIN_REQUEST_SATS = MIN_REQUEST_MSAT / 1000;
/** BaseUpstreamProvider's default provider_fee: listed USD prices are the upstream's x 1.01. */
export const PROVIDER_FEE = 1.01;

export interface SatsPricing {
  prompt: number;
  completion: number;
  request: number;
  image: number;
  web_search: number;
  internal_reasoning: number;
  input_cache_read: number;
  input_cache_write: number;
  max_prompt_cost: number;
  max_completion_cost: number;
  max_cost: number;
}

export function contextLength(m: ModelSpec): number {
  return m.contextLength ?? 8192;
}

export function maxCompletionTokens(m: ModelSpec): number {
  return Math.min(m.maxCompletionTokens ?? 1024, contextLength(m));
}

/** `sats_pricing` of a model, max costs derived from its limits as routstr does. */
export function satsPricing(m: ModelSpec): SatsPricing {
  const cl = contextLength(m);
  const mct = maxCompletionTokens(m);
  const p = m.promptSatsPerToken;
  const c = m.completionSatsPerToken;
  const derivedMax = cl <= mct ? cl * Math.max(p, c) : (cl - mct) * p + mct * c;
  const maxCost = m.maxCostSats ?? derivedMax;
  return {
    prompt: p,
    completion: c,
    // _update_model_sats_pricing lists a request price of at least min_request_msat, though
    // cost_calculation never bills it (base_msats is always 0).
    request: (m.requestSats ?? 0) > 0 ? m.requestSats! : MIN_REQUEST_SATS,
    image: 0,
    web_search: 0,
    internal_reasoning: 0,
    input_cache_read: 0,
    input_cache_write: 0,
    max_prompt_cost: cl * p,
    max_completion_cost: cl <= mct ? cl * c : mct * c,
    max_cost: maxCost < MIN_REQUEST_SATS ? MIN_REQUEST_SATS : maxCost,
  };
}

/** The `/v1/models` entry for a model. */
export function modelListing(m: ModelSpec, usdPerSat: number, createdSec: number): Record<string, unknown> {
  const sats = satsPricing(m);
  // `pricing` is the source (USD, fee included); the request floor exists only in sats.
  const usd = Object.fromEntries(Object.entries({ ...sats, request: m.requestSats ?? 0 }).map(([k, v]) => [k, v * usdPerSat]));
  const embedding = m.kind === 'embedding';
  return {
    id: m.id,
    name: m.name ?? m.id,
    created: createdSec,
    description: `Simulated ${embedding ? 'embedding' : 'chat'} model ${m.id}`,
    context_length: contextLength(m),
    architecture: {
      modality: embedding ? 'text->embeddings' : 'text->text',
      input_modalities: ['text'],
      output_modalities: [embedding ? 'embeddings' : 'text'],
      tokenizer: 'Other',
      instruct_type: null,
    },
    pricing: usd,
    sats_pricing: sats,
    per_request_limits: null,
    top_provider: {
      context_length: contextLength(m),
      max_completion_tokens: maxCompletionTokens(m),
      is_moderated: false,
    },
    enabled: true,
    upstream_provider_id: 1,
    canonical_slug: m.id,
    alias_ids: m.aliasIds ?? [],
    forwarded_model_id: m.id,
  };
}

/** Characters of text in chat messages (image parts excluded), as routstr's estimate_tokens counts. */
export function messageChars(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  let total = 0;
  for (const msg of messages) {
    const content = (msg as { content?: unknown } | null)?.content;
    if (typeof content === 'string') total += content.length;
    else if (Array.isArray(content)) {
      for (const part of content) {
        const p = part as { type?: unknown; text?: unknown } | null;
        if (p?.type === 'text' && typeof p.text === 'string') total += p.text.length;
      }
    }
  }
  return total;
}

/**
 * msat the node requires the token to be worth before redeeming it: max_cost x 1000 x 0.99,
 * less the unused prompt budget (prompt estimated at chars / 3) and the unused completion
 * budget (`max_tokens` x completion price).
 */
export function requiredMsat(m: ModelSpec, body: Record<string, unknown>): number {
  const sats = satsPricing(m);
  const maxCostMsat = Math.max(MIN_REQUEST_MSAT, Math.trunc(sats.max_cost * 1000 * TOLERANCE));
  // top_provider carries both limits, so routstr caps the prompt budget at (context - completion).
  const promptTokenLimit = Math.max(0, contextLength(m) - maxCompletionTokens(m));
  const maxPromptAllowedSats = promptTokenLimit * sats.prompt * TOLERANCE;
  const maxCompletionAllowedSats = sats.max_completion_cost * TOLERANCE;
  let adjusted = maxCostMsat;
  const messages = body.messages;
  if (Array.isArray(messages) && messages.length > 0) {
    const promptTokens = Math.floor(messageChars(messages) / 3);
    const delta = maxPromptAllowedSats - promptTokens * sats.prompt;
    if (delta > 0) adjusted -= Math.floor(delta * 1000);
  }
  const maxTokens = body.max_tokens;
  if (maxTokens !== undefined && maxTokens !== null && Number.isFinite(Number(maxTokens))) {
    const delta = maxCompletionAllowedSats - Math.trunc(Number(maxTokens)) * sats.completion;
    if (delta > 0) adjusted -= Math.floor(delta * 1000);
  }
  return Math.max(MIN_REQUEST_MSAT, adjusted);
}

export interface Cost {
  baseMsat: number;
  inputMsat: number;
  outputMsat: number;
  totalMsat: number;
  totalUsd: number;
}

// Python's round(x, 3) for the magnitudes seen here.
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * _calculate_from_tokens: ceil(sum(round(tokens / 1000 x rate, 3))) msat with rate = sats per
 * token x 1e6 msat per 1k tokens; output shown as int(calc_output), the rest as input. The
 * `request` price is never billed (base_msats is 0). `factor` scales every rate (an
 * overcharging provider); `usdPerSatNow` is the node's rate at settlement (for total_usd).
 */
export function chargeMsat(m: ModelSpec, promptTokens: number, completionTokens: number, usdPerSatNow: number, factor = 1): Cost {
  const inRate = m.promptSatsPerToken * 1e6 * factor;
  const outRate = m.completionSatsPerToken * 1e6 * factor;
  const calcIn = round3((promptTokens / 1000) * inRate);
  const calcOut = round3((completionTokens / 1000) * outRate);
  const totalMsat = Math.ceil(calcIn + calcOut);
  const outputMsat = Math.trunc(calcOut);
  return { baseMsat: 0, inputMsat: totalMsat - outputMsat, outputMsat, totalMsat, totalUsd: (totalMsat / 1000) * usdPerSatNow };
}

/** What an upstream that reports a USD cost (OpenRouter's usage.cost, cost_details) says a request cost, before the node's fee. */
export interface UpstreamUsd {
  costUsd: number;
  promptUsd: number;
  completionUsd: number;
}

/** The upstream's USD cost for these tokens at the listed prices (listed USD = upstream USD x fee); `factor` inflates it. */
export function upstreamUsd(m: ModelSpec, promptTokens: number, completionTokens: number, usdPerSatListed: number, factor = 1): UpstreamUsd {
  const promptUsd = (promptTokens * m.promptSatsPerToken * usdPerSatListed * factor) / PROVIDER_FEE;
  const completionUsd = (completionTokens * m.completionSatsPerToken * usdPerSatListed * factor) / PROVIDER_FEE;
  return { costUsd: promptUsd + completionUsd, promptUsd, completionUsd };
}

/**
 * _calculate_from_usd_cost: ceil(usd x fee / usd_per_sat x 1000) msat at the node's current
 * rate, split by the upstream's prompt/completion USD (output rounded down), in the node's
 * order of float operations so the rounding matches.
 */
export function usdChargeMsat(usd: UpstreamUsd, usdPerSatNow: number): Cost {
  const usdCost = usd.costUsd * PROVIDER_FEE;
  const inputUsd = usd.promptUsd * PROVIDER_FEE;
  const outputUsd = usd.completionUsd * PROVIDER_FEE;
  const satsPerUsd = 1.0 / usdPerSatNow;
  const costInSats = usdCost * satsPerUsd;
  const totalMsat = Math.ceil(costInSats * 1000);
  const outputMsat = inputUsd > 0 || outputUsd > 0 ? Math.floor((totalMsat * outputUsd) / (inputUsd + outputUsd)) : 0;
  return { baseMsat: 0, inputMsat: totalMsat - outputMsat, outputMsat, totalMsat, totalUsd: usdCost };
}

/**
 * routstr bills the reserve outright when a model lacks a prompt or a completion price - only
 * when it prices the tokens itself (cost_calculation.py `if not (input_rate and output_rate)`,
 * reached when the upstream reports no USD cost; a USD cost is billed first, whatever the rates).
 */
export function hasTokenPrices(m: ModelSpec): boolean {
  return m.promptSatsPerToken > 0 && m.completionSatsPerToken > 0;
}

export const ZERO_COST: Cost = { baseMsat: 0, inputMsat: 0, outputMsat: 0, totalMsat: 0, totalUsd: 0 };

/** Change owed for a token worth `amount` of `unit` after a charge of `totalMsat`. */
export function changeFor(amount: number, unit: string, totalMsat: number): number {
  return unit === 'msat' ? amount - totalMsat : amount - Math.ceil(totalMsat / 1000);
}

/** routstr's usage.cost object. */
export function costObject(c: Cost): Record<string, number> {
  const obj: Record<string, number> = {
    base_msats: c.baseMsat,
    input_msats: c.inputMsat,
    output_msats: c.outputMsat,
    total_msats: c.totalMsat,
    cache_read_input_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_msats: 0,
    cache_creation_msats: 0,
  };
  if (c.totalUsd) obj.total_usd = c.totalUsd;
  return obj;
}

/** X-Routstr-* cost headers. */
export function costHeaders(c: Cost): Record<string, string> {
  const h: Record<string, string> = {
    'X-Routstr-Cost-Msats': String(c.totalMsat),
    'X-Routstr-Input-Cost-Msats': String(c.inputMsat),
    'X-Routstr-Output-Cost-Msats': String(c.outputMsat),
  };
  if (c.totalUsd) h['X-Routstr-Cost-Usd'] = pyRepr(c.totalUsd); // str(float)
  return h;
}
