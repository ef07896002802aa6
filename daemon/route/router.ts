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
// that failed longest ago. A provider never observed is one request's trial at a time: while
// one is planned there, concurrent requests rank it after every other candidate, so one
// overcharger (or dead node) teaches its lesson once instead of to every worker at once.
//
// A library: no I/O, no wallet calls. requests/lifecycle.ts pays and calls the planned
// attempts in order, reports each outcome (`report`), and releases the plan when done.
import { normalizeProviderUrl } from '../../protocol/discovery.ts';
import { msatToSatCeil, NMSAT_PER_MSAT, reservationMsatFor, reserveInputOf, tokenCostMsat, type ModelPrice } from '../../protocol/pricing.ts';
import type { PromptEstimate, PromptTokenizer } from '../../protocol/tokens.ts';
import { displayName, type Offer } from '../market-index.ts';
import { AUTO_MODEL, qualifyingModels, type AutoConfig } from './auto.ts';
import type { BreakerOutcome, Breakers, Gate, Permit } from './breaker.ts';
import { NoProviderError, NoQualifyingModelError } from './errors.ts';
import { DEFAULT_COMPLETION_TOKENS, expectedCompletionTokens, expectedPromptTokens, listCostMsat, rankScore, type Policy } from './estimate.ts';
import { MintChooser } from './mints.ts';
import { ahead, insertTop, listFloor, type Ranked } from './shortlist.ts';
import { gateDetail, mintSkip, skipOf, type Skip } from './skips.ts';
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
  /**
   * Look at every offer (`x-satroute-explain: 1`): every provider left out is listed with its
   * reason. Otherwise the scan stops once no remaining offer can beat the planned ones, and only
   * providers cheaper than that point are listed as skipped. The plan is the same either way.
   */
  explain?: boolean;
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
  /** Expected usage at this provider and its list-price charge in msat (exact integer arithmetic). */
  expected: { promptTokens: number; completionTokens: number; costMsat: number };
  /** Our prompt estimate before this provider's correction (what its reported usage is compared with). */
  estimatedPromptTokens: number;
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
  /** A failure whose token the node handed back in full (its refund token): it cost a retry, not money. */
  refunded?: boolean;
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

export class Router {
  private readonly mints = new MintChooser();
  // providers never observed -> planned attempts there not yet reported or released
  private readonly trials = new Map<string, number>();
  private readonly onTrial = new WeakSet<PlannedAttempt>();

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
    // the spending limits, in msat: a token of ceil(reserve / 1000) sats fits X sats iff reserve <= 1000 X
    const maxMsat = req.maxSats === undefined ? Infinity : req.maxSats * 1000;
    const budgetMsat = req.budgetSats === undefined ? Infinity : req.budgetSats * 1000;
    // Early exit: offers come cheapest list price L = prompt + completion per token first. With
    // every provider's expected tokens at least pT and cT, and the list's prompt and completion
    // prices at least a and b, an offer's list charge is at least the smaller of
    // pT(L - b) + cT b and pT a + cT(L - a), which grows with L; times the lowest charge ratio
    // seen it bounds every later score. Once it reaches the worst planned score, stop.
    // (Expected tokens are rounded, and rounding is monotone: the rounded floors are floors.
    // The bound is computed in the score's own order of operations, so a neutral provider at the
    // cheapest corner scores exactly its bound and ties stop the scan.)
    const floor = stats.lowerBounds();
    const pT = expectedPromptTokens(prompt.tokens, floor.promptFactor);
    const cap = Math.min(maxTokens ?? Infinity, DEFAULT_COMPLETION_TOKENS);
    const minRatio = req.explain ? 0 : Math.min(1, floor.chargeRatio);
    const keys = this.modelKeys(req.model);
    // "auto": a model listed under its id and an alias is one offer
    const seen = keys.length > 1 ? new Set<Offer>() : undefined;
    // Hot loop (every offer of the model, 1,000 in a big market): nothing is allocated for an
    // offer unless it is skipped or enters the top `limit`.
    for (const key of keys) {
      const offers = this.o.market.providersFor(key);
      const { a, b, models } = listFloor(offers);
      let cT = 0;
      if (completes) {
        let c = cap;
        for (const m of models) c = Math.min(c, stats.completionFloor(m));
        cT = Math.max(0, Math.round(c));
      }
      for (const offer of offers) {
        if (top.length === limit) {
          const L = offer.listNmsat;
          if (!top[limit - 1].busy && (Math.min(pT * (L - b) + cT * b, pT * a + cT * (L - a)) / NMSAT_PER_MSAT) * minRatio >= top[limit - 1].score) break;
        }
        if (pin && !pin(offer)) continue;
        if (seen) {
          if (seen.has(offer)) continue;
          seen.add(offer);
        }
        offered++;
        const pid = offer.provider.id;
        const mid = offer.model.id;
        const rank = stats.rank(pid, now);
        if (rank.avoid) {
          skipped.push(skipOf(offer, rank.avoid.reason, rank.avoid.detail));
          continue;
        }
        const reserveMsat = reservationMsatFor(offer.model.reserve, reserveInput, offer.price.maxCostMsat);
        const spelling = this.mints.pick(offer, reserveMsat, req.balances, req.feeSat);
        if (typeof spelling !== 'string') {
          skipped.push(mintSkip(offer, spelling, reserveMsat));
          continue;
        }
        const feeMsat = req.feeSat ? req.feeSat(this.mints.key(spelling)!) * 1000 : 0;
        if (reserveMsat + feeMsat > maxMsat) {
          skipped.push(skipOf(offer, 'over_max_sats', `the node checks a ${msatToSatCeil(reserveMsat)} sat token; max ${req.maxSats} sat`));
          continue;
        }
        if (reserveMsat + feeMsat > budgetMsat) {
          skipped.push(skipOf(offer, 'over_budget', `the node checks a ${msatToSatCeil(reserveMsat)} sat token; ${req.budgetSats} sat of budget left`));
          continue;
        }
        const promptTokens = expectedPromptTokens(prompt.tokens, stats.promptFactor(pid, mid));
        const completionTokens = expectedCompletionTokens(stats.completionTokens(pid, mid), maxTokens, completes);
        const score = rankScore(listCostMsat(promptTokens, completionTokens, offer.price), rank, policy);
        const gate = breakers.peek(pid, mid, now);
        if (!gate.admit) {
          skipped.push(skipOf(offer, gate.reason, gateDetail(gate)));
          if (gate.reason === 'breaker_open') open.push({ r: { offer, tokenMint: spelling, reserveMsat, promptTokens, completionTokens, score, probe: false, busy: false }, gate });
          if (gate.reason === 'probe_in_flight') probeOut = true;
          continue;
        }
        const busy = (this.trials.get(pid) ?? 0) > 0 && !stats.observed(pid);
        if (top.length === limit && !ahead(busy, score, top[limit - 1])) continue;
        insertTop(top, { offer, tokenMint: spelling, reserveMsat, promptTokens, completionTokens, score, probe: gate.probe, busy }, limit);
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
      if (permit) attempts.push(this.attempt(attempts.length + 1, r, permit, now, prompt.tokens));
      else skipped.push(skipOf(r.offer, 'probe_in_flight', 'half-open: its one probe went to another model of this plan')); // "auto", one provider twice
    }
    if (attempts.length === 0 && top.length === 0 && open.length > 0 && !probeOut) {
      // every candidate is open: one probe to the one that failed longest ago
      open.sort((a, b) => (a.gate.lastFailureAt ?? 0) - (b.gate.lastFailureAt ?? 0) || a.r.score - b.r.score);
      const { r } = open[0];
      const permit = breakers.forceProbe(r.offer.provider.id, r.offer.model.id, now);
      if (permit) {
        attempts.push(this.attempt(1, r, permit, now, prompt.tokens));
        forcedProbe = true;
        const i = skipped.findIndex((s) => s.providerId === r.offer.provider.id && s.model === r.offer.model.id);
        if (i >= 0) skipped.splice(i, 1);
      }
    }
    if (attempts.length === 0) throw new NoProviderError(req.model, skipped);
    for (const a of attempts) {
      if (stats.observed(a.providerId)) continue;
      this.trials.set(a.providerId, (this.trials.get(a.providerId) ?? 0) + 1);
      this.onTrial.add(a);
    }
    return { model: req.model, attempts, skipped, prompt, forcedProbe };
  }

  /** An attempt ended (or was settled): tell the breakers and the statistics. */
  report(attempt: PlannedAttempt, r: AttemptReport): void {
    const now = this.o.breakers.now();
    this.endTrial(attempt);
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
        refunded: r.refunded,
        usage: r.usage && { estimatedPromptTokens: attempt.estimatedPromptTokens, promptTokens: r.usage.promptTokens, completionTokens: r.usage.completionTokens },
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
    for (const a of plan.attempts) {
      this.o.breakers.release(a.permit);
      this.endTrial(a);
    }
  }

  private endTrial(a: PlannedAttempt): void {
    if (!this.onTrial.delete(a)) return;
    const n = (this.trials.get(a.providerId) ?? 1) - 1;
    if (n > 0) this.trials.set(a.providerId, n);
    else this.trials.delete(a.providerId);
  }

  // ---- internals -----------------------------------------------------------------------

  private modelKeys(model: string): string[] {
    if (model !== AUTO_MODEL) return [model];
    const auto = this.o.auto;
    const keys = auto ? qualifyingModels(auto) : [];
    if (!auto || keys.length === 0) throw new NoQualifyingModelError(auto?.minQuality ?? Infinity);
    return keys;
  }

  private attempt(n: number, r: Ranked, permit: Permit, now: number, estimatedPromptTokens: number): PlannedAttempt {
    const p = r.offer.provider;
    const usage = { promptTokens: r.promptTokens, completionTokens: r.completionTokens };
    return {
      n,
      offer: r.offer,
      providerId: p.id,
      providerName: displayName(p),
      providerUrl: p.url ?? p.urls[0] ?? '',
      model: r.offer.model.id,
      mint: this.mints.key(r.tokenMint)!,
      tokenMint: r.tokenMint,
      price: r.offer.price,
      routedAt: now,
      reserveMsat: r.reserveMsat,
      tokenSat: msatToSatCeil(r.reserveMsat),
      expected: { ...usage, costMsat: tokenCostMsat(usage, r.offer.price) },
      estimatedPromptTokens,
      score: r.score,
      permit,
    };
  }
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
