// What one offer is expected to cost for one request, for ranking: estimated prompt tokens
// (corrected by what this provider reported for this model before) x prompt price, plus
// expected completion tokens (what it produced before, bounded by max_tokens) x completion
// price; then adjusted by what the provider really did (stats.ts): its charged/expected ratio
// and success rate, and msat it kept without serving. Floats here are ranking scores, never
// amounts that move: the planned attempt's expected charge is recomputed exactly with
// protocol/pricing tokenCostMsat.
import { NMSAT_PER_MSAT, type ModelPrice } from '../../protocol/pricing.ts';
import type { ProviderRank } from './stats.ts';

/** Completion tokens expected when neither max_tokens nor any observation says more. */
export const DEFAULT_COMPLETION_TOKENS = 256;
/** Under the `balanced` policy, this much mean latency doubles an offer's score. */
export const BALANCED_LATENCY_MS = 5_000;

export type Policy = 'cheapest' | 'balanced';

/** Expected prompt tokens at one provider: our estimate x its observed prompt factor. */
export function expectedPromptTokens(estimate: number, promptFactor: number): number {
  return Math.max(0, Math.round(estimate * promptFactor));
}

/**
 * Expected completion tokens at one provider: its observed mean (else the model's across
 * providers, else a default), never above max_tokens. Embeddings complete nothing.
 */
export function expectedCompletionTokens(observed: number | undefined, maxTokens: number | undefined, completes: boolean): number {
  if (!completes) return 0;
  const cap = maxTokens !== undefined && maxTokens >= 0 ? maxTokens : Infinity;
  return Math.max(0, Math.round(Math.min(observed ?? Math.min(cap, DEFAULT_COMPLETION_TOKENS), cap)));
}

/** Expected list-price charge in msat (a float, for ranking). */
export function listCostMsat(promptTokens: number, completionTokens: number, price: ModelPrice): number {
  return (promptTokens * price.promptNmsat + completionTokens * price.completionNmsat) / NMSAT_PER_MSAT;
}

/**
 * What a failure the node refunded in full costs, as a share of a charge: no money, only the
 * retry's round trip and the refund's swap.
 */
export const REFUNDED_FAILURE_WEIGHT = 0.1;

/**
 * The ranking score: msat this offer is expected to really cost per successful request.
 * A provider that charges 1.5x its list price scores 1.5x; one that succeeds half the time
 * scores 2x (every failure is a retry's delay, a refund swap and its mint fees) - unless the
 * node refunded its failures in full: each such failure expected per success adds a tenth
 * (REFUNDED_FAILURE_WEIGHT), so one failing 30 % of the time, refunded, scores about 1.04x.
 * What it kept without serving counts in full, per attempt.
 */
export function rankScore(listMsat: number, rank: ProviderRank, policy: Policy): number {
  const charge = (listMsat * rank.chargeRatio * (1 + REFUNDED_FAILURE_WEIGHT * rank.refundedPerSuccess)) / rank.unrefundedSuccessRate;
  const perSuccess = charge + rank.lossPerAttemptMsat / rank.successRate;
  if (policy === 'balanced' && rank.latencyMs !== undefined) return perSuccess * (1 + rank.latencyMs / BALANCED_LATENCY_MS);
  return perSuccess;
}
