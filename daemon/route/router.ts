// The router: for one request, which providers to try, in which order, with what token.
//
// Candidates are filtered BEFORE any attempt, so failures never multiply traffic: the offer
// serves the model (id or alias) with a price (the market only offers priced models from
// reachable, non-excluded providers), the provider is not avoided for overcharging or bad
// change, the token the node will check fits the caller's max sats and remaining budget, we
// hold enough at one of its mints, and its breakers admit it. Each provider left out keeps its
// reason. The rest are ranked by expected real cost (estimate.ts) and at most 3 are planned;
// a half-open provider among them holds its breaker's one probe until its outcome is
// reported or the plan is released. If every candidate is open, one probe goes to the one
// that failed longest ago.
//
// A library: no I/O, no wallet calls. requests/lifecycle.ts pays and calls the planned
// attempts in order, reports each outcome (`report`), and releases the plan when done.
import { normalizeMintUrl } from '@cashu/cashu-ts';
import { normalizeProviderUrl } from '../../protocol/discovery.ts';
import { msatToSatCeil, reservationMsatFor, reserveInputOf, tokenCostMsat, type ModelPrice } from '../../protocol/pricing.ts';
import type { PromptEstimate, PromptTokenizer } from '../../protocol/tokens.ts';
import { displayName, type Offer } from '../market-index.ts';
import { AUTO_MODEL, qualifyingModels, type AutoConfig } from './auto.ts';
import type { BreakerOutcome, Breakers, Gate, Permit } from './breaker.ts';
import { NoProviderError, NoQualifyingModelError } from './errors.ts';
import { expectedUsage, listCostMsat, rankScore, type Policy } from './estimate.ts';
import type { Skip, SkipReason } from './skips.ts';
import type { ProviderStats } from './stats.ts';

export const MAX_ATTEMPTS = 3;

export interface RouteRequest {
  /** A model id, an alias, or "auto". */
  model: string;
  /** The OpenAI-shaped body, as it will be sent (the node's reservation reads messages and max_tokens). */
  body: Record<string, unknown>;
  /** e.g. '/v1/chat/completions'; embeddings expect no completion tokens. */
  endpoint?: string;
  /** Spendable sats per wallet mint, keyed by normalised mint URL (as the wallet stores them). */
  balances: ReadonlyMap<string, number>;
  /** The caller's cap for this request, sats (`x-satroute-max-sats`). */
  maxSats?: number;
  /** What remains of the caller's budget, sats. */
  budgetSats?: number;
  policy?: Policy;
  /** Pin one provider: its id, base URL or name (`x-satroute-provider`). */
  provider?: string;
  /** The input fee the wallet adds to a token at this mint, sats (default 0). */
  feeSat?: (mint: string) => number;
  /** A prompt estimate made earlier (at admission); else made here. */
  prompt?: PromptEstimate;
  /** At most this many attempts (default and ceiling 3). */
  maxAttempts?: number;
}

export interface PlannedAttempt {
  /** 1-based position in the plan. */
  n: number;
  offer: Offer;
  providerId: string;
  providerName: string;
  providerUrl: string;
  /** The provider's model id, to send as `model`. */
  model: string;
  /** Our wallet's mint (normalised URL): where the token's proofs come from. */
  mint: string;
  /** The provider's exact spelling of that mint: write this into the token. */
  tokenMint: string;
  /** The price it was routed at (reconcile against this snapshot). */
  price: ModelPrice;
  routedAt: number;
  /** msat the node will check the token against (its reservation formula). */
  reserveMsat: number;
  /** The token's face value in sats (the wallet adds the mint's input fee). */
  tokenSat: number;
  /** Expected usage and its list-price charge in msat (exact integer arithmetic). */
  expected: { promptTokens: number; completionTokens: number; costMsat: number };
  /** What it was ranked by: expected msat per successful request. */
  score: number;
  /** Its breaker permit (holds the probe when half-open). */
  permit: Permit;
}

export interface RoutePlan {
  model: string;
  attempts: PlannedAttempt[];
  skipped: Skip[];
  prompt: PromptEstimate;
  /** Every candidate was open; this plan is the one probe sent to the oldest failure. */
  forcedProbe: boolean;
}

/** One attempt's outcome, for the breakers and the statistics. */
export interface AttemptReport {
  breaker: BreakerOutcome;
  latencyMs?: number;
  /** Final charge, when settled: expected (usage x snapshot) and what the provider kept. */
  expectedMsat?: number;
  chargedMsat?: number;
  changeInvalid?: boolean;
  lostMsat?: number;
  usage?: { promptTokens: number; completionTokens: number };
}

/** An outcome known only after the attempt (invalid change after the swap, a settled charge). */
export interface LateReport {
  providerId: string;
  modelId: string;
  expectedMsat?: number;
  chargedMsat?: number;
  changeInvalid?: boolean;
  lostMsat?: number;
}

export interface RouterOptions {
  market: { providersFor(modelOrAlias: string): readonly Offer[] };
  breakers: Breakers;
  stats: ProviderStats;
  tokenizer: PromptTokenizer;
  auto?: AutoConfig;
}

interface Ranked {
  offer: Offer;
  mint: string;
  tokenMint: string;
  reserveMsat: number;
  tokenSat: number;
  usage: { promptTokens: number; completionTokens: number };
  score: number;
  /** Half-open: this attempt would be its breaker's one probe. */
  probe: boolean;
}

export class Router {
  private readonly mintKeys = new Map<string, string | null>();

  constructor(private readonly o: RouterOptions) {}

  /** Plan a request's attempts; throws NoProviderError / NoQualifyingModelError when none is possible. */
  plan(req: RouteRequest): RoutePlan {
    const { breakers, stats } = this.o;
    const now = breakers.now();
    const prompt = req.prompt ?? this.o.tokenizer.estimate(req.body);
    const reserveInput = reserveInputOf(req.body);
    const maxTokens = maxTokensOf(req.body);
    const completes = !req.endpoint?.includes('embeddings');
    const policy = req.policy ?? 'cheapest';
    const limit = Math.max(1, Math.min(req.maxAttempts ?? MAX_ATTEMPTS, MAX_ATTEMPTS));
    const pin = req.provider ? pinMatcher(req.provider) : undefined;

    const top: Ranked[] = [];
    const skipped: Skip[] = [];
    const open: { r: Ranked; gate: Gate & { admit: false } }[] = [];
    let probeOut = false;
    let offered = 0;
    const keys = this.modelKeys(req.model);
    // "auto": a model listed under its id and an alias is one offer
    const seen = keys.length > 1 ? new Set<Offer>() : undefined;
    for (const key of keys) {
      for (const offer of this.o.market.providersFor(key)) {
        if (pin && !pin(offer)) continue;
        if (seen) {
          if (seen.has(offer)) continue;
          seen.add(offer);
        }
        offered++;
        const p = offer.provider;
        const skip = (reason: SkipReason, detail: string) => skipped.push(skipOf(offer, reason, detail));
        const rank = stats.rank(p.id, now);
        if (rank.avoid) {
          skip(rank.avoid.reason, rank.avoid.detail);
          continue;
        }
        const reserveMsat = reservationMsatFor(offer.model.reserve, reserveInput, offer.price.maxCostMsat);
        const tokenSat = msatToSatCeil(reserveMsat);
        const mint = this.pickMint(offer, tokenSat, req);
        if (typeof mint === 'string') {
          skip(mint === 'no_common_mint' ? 'no_common_mint' : 'insufficient_balance', mint === 'no_common_mint' ? `accepts ${offer.mints.join(', ') || 'no mint'}; we hold none of them` : `needs ${tokenSat} sat + fee at ${offer.mints.join(', ')}`);
          continue;
        }
        const spend = tokenSat + mint.feeSat;
        if (req.maxSats !== undefined && spend > req.maxSats) {
          skip('over_max_sats', `the node checks a ${tokenSat} sat token; max ${req.maxSats} sat`);
          continue;
        }
        if (req.budgetSats !== undefined && spend > req.budgetSats) {
          skip('over_budget', `the node checks a ${tokenSat} sat token; ${req.budgetSats} sat of budget left`);
          continue;
        }
        const usage = expectedUsage(prompt.tokens, maxTokens, stats.calibration(p.id, offer.model.id), completes);
        const gate = breakers.peek(p.id, offer.model.id, now);
        const r: Ranked = { offer, mint: mint.mint, tokenMint: mint.spelling, reserveMsat, tokenSat, usage, score: rankScore(listCostMsat(usage, offer.price), rank, policy), probe: gate.admit && gate.probe };
        if (!gate.admit) {
          skip(gate.reason, gateDetail(gate));
          if (gate.reason === 'breaker_open') open.push({ r, gate });
          if (gate.reason === 'probe_in_flight') probeOut = true;
          continue;
        }
        insertTop(top, r, limit);
      }
    }
    if (req.model === AUTO_MODEL && offered === 0) throw new NoQualifyingModelError(this.o.auto?.minQuality ?? Infinity);

    const attempts: PlannedAttempt[] = [];
    let forcedProbe = false;
    // A half-open provider worth planning goes first: its probe is what closes its breaker
    // (if it fails, the next attempt follows before any byte reached the caller).
    top.sort((a, b) => Number(b.probe) - Number(a.probe));
    for (const r of top) {
      const permit = breakers.acquire(r.offer.provider.id, r.offer.model.id, now);
      if (permit) attempts.push(this.attempt(attempts.length + 1, r, permit, now));
    }
    if (attempts.length === 0 && top.length === 0 && open.length > 0 && !probeOut) {
      // every candidate is open: one probe to the one that failed longest ago
      open.sort((a, b) => (a.gate.lastFailureAt ?? 0) - (b.gate.lastFailureAt ?? 0) || a.r.score - b.r.score);
      const { r } = open[0];
      const permit = breakers.forceProbe(r.offer.provider.id, r.offer.model.id, now);
      if (permit) {
        attempts.push(this.attempt(1, r, permit, now));
        forcedProbe = true;
        const i = skipped.findIndex((s) => s.providerId === r.offer.provider.id && s.model === r.offer.model.id);
        if (i >= 0) skipped.splice(i, 1);
      }
    }
    if (attempts.length === 0) throw new NoProviderError(req.model, skipped);
    return { model: req.model, attempts, skipped, prompt, forcedProbe };
  }

  /** An attempt ended (or was settled): tell the breakers and the statistics. */
  report(attempt: PlannedAttempt, r: AttemptReport): void {
    const now = this.o.breakers.now();
    this.o.breakers.record(attempt.permit, r.breaker, now);
    this.o.stats.observe(
      {
        providerId: attempt.providerId,
        modelId: attempt.model,
        ok: r.breaker.kind === 'success' ? true : r.breaker.kind === 'failure' ? false : undefined,
        latencyMs: r.latencyMs,
        expectedMsat: r.expectedMsat,
        chargedMsat: r.chargedMsat,
        changeInvalid: r.changeInvalid,
        lostMsat: r.lostMsat,
        usage: r.usage && { estimatedPromptTokens: attempt.expected.promptTokens, promptTokens: r.usage.promptTokens, completionTokens: r.usage.completionTokens },
      },
      now,
    );
  }

  /** A late outcome: the charge settled after the attempt, or its change proved invalid (a breaker failure). */
  late(r: LateReport): void {
    const now = this.o.breakers.now();
    if (r.changeInvalid) this.o.breakers.recordLate(r.providerId, r.modelId, { kind: 'failure', scope: 'provider', error: 'invalid change' }, now);
    this.o.stats.observe({ providerId: r.providerId, modelId: r.modelId, expectedMsat: r.expectedMsat, chargedMsat: r.chargedMsat, changeInvalid: r.changeInvalid, lostMsat: r.lostMsat }, now);
  }

  /** The request is over: free the permits of attempts never made. */
  release(plan: RoutePlan): void {
    for (const a of plan.attempts) this.o.breakers.release(a.permit);
  }

  // ---- internals -----------------------------------------------------------------------

  private modelKeys(model: string): string[] {
    if (model !== AUTO_MODEL) return [model];
    const auto = this.o.auto;
    const keys = auto ? qualifyingModels(auto) : [];
    if (!auto || keys.length === 0) throw new NoQualifyingModelError(auto?.minQuality ?? Infinity);
    return keys;
  }

  private attempt(n: number, r: Ranked, permit: Permit, now: number): PlannedAttempt {
    const p = r.offer.provider;
    return {
      n,
      offer: r.offer,
      providerId: p.id,
      providerName: displayName(p),
      providerUrl: p.url ?? p.urls[0] ?? '',
      model: r.offer.model.id,
      mint: r.mint,
      tokenMint: r.tokenMint,
      price: r.offer.price,
      routedAt: now,
      reserveMsat: r.reserveMsat,
      tokenSat: r.tokenSat,
      expected: { ...r.usage, costMsat: tokenCostMsat(r.usage, r.offer.price) },
      score: r.score,
      permit,
    };
  }

  // The accepted mint we hold the most at (enough for the token and its fee), or why none fits.
  private pickMint(offer: Offer, tokenSat: number, req: RouteRequest): { mint: string; spelling: string; feeSat: number } | 'no_common_mint' | 'insufficient_balance' {
    let best: { mint: string; spelling: string; feeSat: number; balance: number } | undefined;
    let common = false;
    for (const spelling of offer.mints) {
      const mint = this.mintKey(spelling);
      if (mint === null) continue;
      const balance = req.balances.get(mint);
      if (balance === undefined) continue;
      common = true;
      const feeSat = req.feeSat?.(mint) ?? 0;
      if (balance >= tokenSat + feeSat && (!best || balance > best.balance)) best = { mint, spelling, feeSat, balance };
    }
    if (best) return best;
    return common ? 'insufficient_balance' : 'no_common_mint';
  }

  // Provider spellings of mint URLs, normalised as the wallet keys its balances (cached).
  private mintKey(spelling: string): string | null {
    let key = this.mintKeys.get(spelling);
    if (key === undefined) {
      try {
        key = normalizeMintUrl(spelling);
      } catch {
        key = null;
      }
      this.mintKeys.set(spelling, key);
    }
    return key;
  }
}

// Keep the `limit` lowest scores, in order; on equal scores the earlier offer (cheaper list price) stays first.
function insertTop(top: Ranked[], r: Ranked, limit: number): void {
  if (top.length === limit && r.score >= top[limit - 1].score) return;
  let i = top.length;
  while (i > 0 && top[i - 1].score > r.score) i--;
  top.splice(i, 0, r);
  if (top.length > limit) top.pop();
}

function skipOf(offer: Offer, reason: SkipReason, detail: string): Skip {
  const p = offer.provider;
  return { providerId: p.id, name: displayName(p), url: p.url ?? p.urls[0] ?? '', model: offer.model.id, reason, detail };
}

function pinMatcher(pin: string): (offer: Offer) => boolean {
  const url = normalizeProviderUrl(pin);
  const name = pin.trim().toLowerCase();
  return (offer) => {
    const p = offer.provider;
    return p.id === pin || (url !== undefined && p.urls.includes(url)) || displayName(p).toLowerCase() === name;
  };
}

function maxTokensOf(body: Record<string, unknown>): number | undefined {
  for (const k of ['max_tokens', 'max_completion_tokens', 'max_output_tokens']) {
    const v = body[k];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.trunc(v);
  }
  return undefined;
}

function gateDetail(g: Gate & { admit: false }): string {
  const at = (ms: number | null) => (ms === null ? '' : ` until ${new Date(ms).toISOString()}`);
  const scope = g.scope === 'model' ? ' for this model' : '';
  if (g.reason === 'rate_limited') return `rate limited${scope}${at(g.until)}`;
  if (g.reason === 'probe_in_flight') return `half-open${scope}: its one probe is out`;
  return `breaker open${scope}${at(g.until)} after ${g.failures} failures`;
}
