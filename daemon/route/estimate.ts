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

export interface ExpectedUsage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * Expected tokens at one provider: our prompt estimate x its observed prompt factor; its
 * observed mean completion (else the model's across providers, else a default) capped by
 * max_tokens. Embeddings have no completion.
 */
export function expectedUsage(promptTokens: number, maxTokens: number | undefined, calibration: { promptFactor: number; completionTokens: number | undefined }, completes: boolean): ExpectedUsage {
  const cap = maxTokens !== undefined && maxTokens >= 0 ? maxTokens : Infinity;
  const completion = completes ? Math.min(calibration.completionTokens ?? Math.min(cap, DEFAULT_COMPLETION_TOKENS), cap) : 0;
  return { promptTokens: Math.max(0, Math.round(promptTokens * calibration.promptFactor)), completionTokens: Math.max(0, Math.round(completion)) };
}

/** Expected list-price charge in msat (a float, for ranking). */
export function listCostMsat(u: ExpectedUsage, price: ModelPrice): number {
  return (u.promptTokens * price.promptNmsat + u.completionTokens * price.completionNmsat) / NMSAT_PER_MSAT;
}

/**
 * The ranking score: msat this offer is expected to really cost per successful request.
 * A provider that charges 1.5x its list price scores 1.5x; one that succeeds half the time
 * scores 2x (every failure is a retry's delay, a refund swap and its mint fees).
 */
export function rankScore(listMsat: number, rank: ProviderRank, policy: Policy): number {
  const perSuccess = (listMsat * rank.chargeRatio + rank.lossPerAttemptMsat) / rank.successRate;
  if (policy === 'balanced' && rank.latencyMs !== undefined) return perSuccess * (1 + rank.latencyMs / BALANCED_LATENCY_MS);
  return perSuccess;
}
