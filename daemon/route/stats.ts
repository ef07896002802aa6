// What each provider really did, decayed over time (injected clock): how often its attempts
// succeeded, what it charged against what its listed price said (charged / expected), how
// slow it was, how often its change was not valid ecash, what it kept without serving; and
// per provider+model how its reported token counts compare with our estimates. The router
// ranks by these, so a provider cheap on paper that overcharges or fails ranks by what it
// really costs, and one past a threshold is avoided (with the reason shown).
//
// Every sum decays with the same half-life, so a provider's past fades and a reformed one is
// tried again. A new provider starts neutral: prior pseudo-observations of full success at
// ratio 1, which real observations outweigh after a few requests.
import { EventEmitter } from 'node:events';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import type { ProviderSums, StatsStore, TokenSums } from './stats-store.ts';

export interface StatsOptions {
  /** Observations lose half their weight in this time. */
  halfLifeMs: number;
  /** Pseudo-observations a new provider starts with (all successful, charging its list price). */
  priorWeight: number;
  /**
   * Avoid a provider whose decayed charged/expected ratio exceeds this: far past the node's
   * BTC/USD drift, so plainly not billing its list price. Below it, ranking by real cost
   * already prefers whoever is really cheaper (a 20 % overcharger may still be).
   */
  avoidOverchargeRatio: number;
  /** ...or whose change was invalid this share of settled requests, at least twice lately... */
  avoidInvalidChangeShare: number;
  /** ...once this many (decayed) settled requests back the ratio. */
  avoidMinWeight: number;
  /** A single charged/expected ratio counts at most this much (one broken settlement cannot dominate). */
  maxRatio: number;
}

export const STATS_DEFAULTS: Readonly<StatsOptions> = Object.freeze({
  halfLifeMs: 6 * 3_600_000,
  priorWeight: 2,
  avoidOverchargeRatio: 1.5,
  avoidInvalidChangeShare: 0.2,
  avoidMinWeight: 3,
  maxRatio: 20,
});

/** One attempt's evidence; every part optional, so settlement and late outcomes can report separately. */
export interface Observation {
  providerId: string;
  modelId: string;
  /** The attempt ended: true a success, false a failure (as the breaker counts it). Omit for neutral outcomes. */
  ok?: boolean;
  latencyMs?: number;
  /** The final charge: expected = usage x the price routed at; charged = what the provider kept. */
  expectedMsat?: number;
  chargedMsat?: number;
  /** Its change was not valid ecash (known after the swap: a late outcome). */
  changeInvalid?: boolean;
  /** Kept without serving (e.g. a 500 with no refund). */
  lostMsat?: number;
  /** A failure (ok false) whose token the node handed back in full: it cost a retry, not money. */
  refunded?: boolean;
  /** Our prompt estimate and what the provider reported. */
  usage?: { estimatedPromptTokens: number; promptTokens: number; completionTokens: number };
}

/** What ranking reads for one provider. */
export interface ProviderRank {
  /** Observed charged / expected (1 = bills its list price). */
  chargeRatio: number;
  /** Share of attempts that succeeded. */
  successRate: number;
  /** Share of attempts that succeeded, leaving out failures the node refunded in full. */
  unrefundedSuccessRate: number;
  /** Refunded failures per success: the retries a request here is expected to need. */
  refundedPerSuccess: number;
  /** Mean latency of successful attempts; undefined until one is seen. */
  latencyMs: number | undefined;
  /** msat lost per attempt, on average. */
  lossPerAttemptMsat: number;
  avoid: Avoidance | null;
}

export interface Avoidance {
  reason: 'overcharging' | 'invalid_change';
  detail: string;
}

const NEUTRAL: Readonly<ProviderRank> = Object.freeze({ chargeRatio: 1, successRate: 1, unrefundedSuccessRate: 1, refundedPerSuccess: 0, latencyMs: undefined, lossPerAttemptMsat: 0, avoid: null });
// Ranks are cached per provider and recomputed after an observation or when this old.
const RANK_TTL_MS = 60_000;

export interface StatsViewRow {
  provider_id: string;
  success_rate: number;
  charge_ratio: number;
  latency_ms: number | null;
  attempts: number;
  avoid: Avoidance | null;
}

/** A provider started or stopped being avoided (for the WebSocket `providers` topic and metrics). */
export interface AvoidanceChange {
  providerId: string;
  avoid: Avoidance | null;
  at: number;
}

export class ProviderStats extends EventEmitter<{ avoidance: [AvoidanceChange] }> {
  readonly options: StatsOptions;
  private readonly providers = new Map<string, ProviderSums>();
  private readonly tokens = new Map<string, Map<string, TokenSums>>(); // providerId -> modelId -> sums
  private readonly models = new Map<string, TokenSums>(); // modelId -> sums across providers
  private readonly ranks = new Map<string, { rank: ProviderRank; at: number }>();
  // who is avoided now, to announce changes once
  private readonly avoided = new Map<string, Avoidance>();
  private readonly dirty = new Set<string>();
  // Lower bounds over every provider, for the router's early exit: running minima, only ever
  // lowered by observations (decay moves every ratio towards the neutral 1, so they stay bounds).
  private floor = { chargeRatio: 1, promptFactor: 1 };
  // per model, the lowest mean completion any provider showed (running minimum, same reasoning)
  private readonly completionFloors = new Map<string, number>();
  private readonly clock: () => number;
  private readonly log: Logger;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly o: { store?: StatsStore; clock?: () => number; logger?: Logger; options?: Partial<StatsOptions> } = {},
  ) {
    super();
    this.options = { ...STATS_DEFAULTS, ...o.options };
    this.clock = o.clock ?? Date.now;
    this.log = o.logger ?? nullLogger;
    const loaded = o.store?.load();
    for (const p of loaded?.providers ?? []) this.providers.set(p.providerId, p.sums);
    for (const t of loaded?.tokens ?? []) {
      if (t.providerId === '') this.models.set(t.modelId, t.sums);
      else this.tokensOf(t.providerId).set(t.modelId, t.sums);
    }
    const now = this.clock();
    for (const id of this.providers.keys()) this.lower('chargeRatio', this.rank(id, now).chargeRatio);
    for (const [pid, models] of this.tokens) for (const mid of models.keys()) this.lowerTokens(pid, mid);
  }

  /** Write observations to SQLite every `intervalMs` (they are statistics: a crash loses at most that much). */
  start(intervalMs = 5_000): void {
    if (this.timer || !this.o.store) return;
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  /** Record evidence about one attempt. Synchronous; written to SQLite on the next flush. */
  observe(ob: Observation, now = this.clock()): void {
    const o = this.options;
    const p = this.decayed(this.providers.get(ob.providerId) ?? emptyProvider(now), now);
    this.providers.set(ob.providerId, p);
    if (ob.ok !== undefined) {
      p.attempts += 1;
      if (ob.ok) p.successes += 1;
      else if (ob.refunded) p.refunded += 1;
    }
    if (ob.ok && ob.latencyMs !== undefined && Number.isFinite(ob.latencyMs) && ob.latencyMs >= 0) {
      p.latencyN += 1;
      p.latencySumMs += ob.latencyMs;
    }
    if (ob.chargedMsat !== undefined && ob.expectedMsat !== undefined && ob.expectedMsat > 0) {
      p.settled += 1;
      p.ratioSum += Math.min(Math.max(ob.chargedMsat / ob.expectedMsat, 0), o.maxRatio);
    }
    if (ob.changeInvalid) p.invalidChange += 1;
    if (ob.lostMsat && ob.lostMsat > 0) p.lostMsat += ob.lostMsat;
    this.dirty.add(`p\u0000${ob.providerId}`);
    if (ob.usage) this.observeTokens(ob, now);
    this.ranks.delete(ob.providerId);
    this.lower('chargeRatio', this.rank(ob.providerId, now).chargeRatio);
  }

  /** Ranking inputs for a provider (cached; cheap enough for every candidate of every request). */
  rank(providerId: string, now = this.clock()): ProviderRank {
    const cached = this.ranks.get(providerId);
    if (cached && now - cached.at < RANK_TTL_MS) return cached.rank;
    const sums = this.providers.get(providerId);
    const rank = sums ? this.compute(this.decayed({ ...sums }, now)) : NEUTRAL;
    this.ranks.set(providerId, { rank, at: now });
    const was = this.avoided.get(providerId) ?? null;
    if ((was?.reason ?? null) !== (rank.avoid?.reason ?? null)) {
      if (rank.avoid) this.avoided.set(providerId, rank.avoid);
      else this.avoided.delete(providerId);
      if (rank.avoid) this.log.warn('provider avoided', { provider: providerId, reason: rank.avoid.reason, detail: rank.avoid.detail });
      else this.log.info('provider no longer avoided', { provider: providerId });
      this.emit('avoidance', { providerId, avoid: rank.avoid, at: now });
    }
    return rank;
  }

  /** Whether anything was ever observed about this provider (else it ranks neutral, on its list price alone). */
  observed(providerId: string): boolean {
    return this.providers.has(providerId);
  }

  /** The factor this provider's reported prompt tokens bear to our estimates for this model (1 until observed). */
  promptFactor(providerId: string, modelId: string): number {
    const t = this.tokens.get(providerId)?.get(modelId);
    if (!t || t.promptN === 0) return 1;
    const prior = this.options.priorWeight;
    return (t.promptRatioSum + prior) / (t.promptN + prior);
  }

  /** Mean completion tokens of this provider for this model, else of the model across providers; undefined when never seen. */
  completionTokens(providerId: string, modelId: string): number | undefined {
    const t = this.tokens.get(providerId)?.get(modelId);
    if (t && t.completionN > 0) return t.completionSum / t.completionN;
    const m = this.models.get(modelId);
    return m && m.completionN > 0 ? m.completionSum / m.completionN : undefined;
  }

  /** Lower bounds, over every provider and model, of the charge ratio and the prompt factor. */
  lowerBounds(): Readonly<{ chargeRatio: number; promptFactor: number }> {
    return this.floor;
  }

  /** A lower bound of the completion tokens any provider is expected to produce for this model (Infinity: none observed). */
  completionFloor(modelId: string): number {
    const own = this.completionFloors.get(modelId);
    if (own === undefined) return Infinity;
    const m = this.models.get(modelId);
    return Math.min(own, m && m.completionN > 0 ? m.completionSum / m.completionN : Infinity);
  }

  /** Every provider with observations, for `satroute providers` and the admin API. */
  views(now = this.clock()): StatsViewRow[] {
    return [...this.providers.keys()].map((id) => {
      const r = this.rank(id, now);
      const s = this.providers.get(id)!;
      return { provider_id: id, success_rate: r.successRate, charge_ratio: r.chargeRatio, latency_ms: r.latencyMs ?? null, attempts: s.attempts, avoid: r.avoid };
    });
  }

  /** Write what changed since the last flush, in one transaction. */
  flush(): void {
    const store = this.o.store;
    if (!store || this.dirty.size === 0) return;
    const rows = [...this.dirty];
    this.dirty.clear();
    store.save(
      rows.filter((k) => k.startsWith('p\u0000')).map((k) => ({ providerId: k.slice(2), sums: this.providers.get(k.slice(2))! })),
      rows
        .filter((k) => k.startsWith('t\u0000'))
        .map((k) => {
          const [, providerId, modelId] = k.split('\u0000');
          return { providerId, modelId, sums: providerId === '' ? this.models.get(modelId)! : this.tokens.get(providerId)!.get(modelId)! };
        }),
    );
  }

  // ---- internals -----------------------------------------------------------------------

  private observeTokens(ob: Observation, now: number): void {
    const u = ob.usage!;
    const own = this.decayedTokens(this.tokensOf(ob.providerId).get(ob.modelId), now);
    this.tokensOf(ob.providerId).set(ob.modelId, own);
    const all = this.decayedTokens(this.models.get(ob.modelId), now);
    this.models.set(ob.modelId, all);
    if (u.estimatedPromptTokens > 0 && u.promptTokens >= 0) {
      own.promptN += 1;
      own.promptRatioSum += Math.min(u.promptTokens / u.estimatedPromptTokens, this.options.maxRatio);
    }
    if (u.completionTokens >= 0) {
      for (const t of [own, all]) {
        t.completionN += 1;
        t.completionSum += u.completionTokens;
      }
    }
    this.dirty.add(`t\u0000${ob.providerId}\u0000${ob.modelId}`);
    this.dirty.add(`t\u0000\u0000${ob.modelId}`);
    this.lowerTokens(ob.providerId, ob.modelId);
  }

  private lowerTokens(providerId: string, modelId: string): void {
    this.lower('promptFactor', this.promptFactor(providerId, modelId));
    const own = this.completionTokens(providerId, modelId);
    if (own !== undefined && own < (this.completionFloors.get(modelId) ?? Infinity)) this.completionFloors.set(modelId, own);
  }

  private lower(k: keyof ProviderStats['floor'], v: number): void {
    if (v < this.floor[k]) this.floor = { ...this.floor, [k]: v };
  }

  private compute(s: ProviderSums): ProviderRank {
    const o = this.options;
    const chargeRatio = (s.ratioSum + o.priorWeight) / (s.settled + o.priorWeight);
    const successRate = (s.successes + o.priorWeight) / (s.attempts + o.priorWeight);
    const unrefundedSuccessRate = (s.successes + o.priorWeight) / (Math.max(s.attempts - s.refunded, s.successes) + o.priorWeight);
    const refundedPerSuccess = s.refunded / (s.successes + o.priorWeight);
    let avoid: Avoidance | null = null;
    // decay leaves even a minute-old observation a hair under its whole weight
    const slack = 0.05;
    if (s.settled >= o.avoidMinWeight - slack && chargeRatio > o.avoidOverchargeRatio) {
      avoid = { reason: 'overcharging', detail: `charged ${chargeRatio.toFixed(2)}x its listed price on recent requests (limit ${o.avoidOverchargeRatio}x)` };
    } else if (s.invalidChange >= 2 - slack && s.invalidChange / Math.max(s.settled, 1) >= o.avoidInvalidChangeShare) {
      avoid = { reason: 'invalid_change', detail: `returned invalid change on ${Math.round((100 * s.invalidChange) / Math.max(s.settled, 1))} % of recent requests` };
    }
    return {
      chargeRatio,
      successRate,
      unrefundedSuccessRate,
      refundedPerSuccess,
      latencyMs: s.latencyN > 0 ? s.latencySumMs / s.latencyN : undefined,
      lossPerAttemptMsat: s.lostMsat / (s.attempts + o.priorWeight),
      avoid,
    };
  }

  private decayed(s: ProviderSums, now: number): ProviderSums {
    const f = this.factor(s.at, now);
    if (f === 1) return s;
    s.attempts *= f;
    s.successes *= f;
    s.settled *= f;
    s.ratioSum *= f;
    s.invalidChange *= f;
    s.latencyN *= f;
    s.latencySumMs *= f;
    s.lostMsat *= f;
    s.refunded *= f;
    s.at = now;
    return s;
  }

  private decayedTokens(t: TokenSums | undefined, now: number): TokenSums {
    if (!t) return { at: now, promptN: 0, promptRatioSum: 0, completionN: 0, completionSum: 0 };
    const f = this.factor(t.at, now);
    if (f === 1) return t;
    t.promptN *= f;
    t.promptRatioSum *= f;
    t.completionN *= f;
    t.completionSum *= f;
    t.at = now;
    return t;
  }

  private factor(at: number, now: number): number {
    return now <= at ? 1 : 2 ** (-(now - at) / this.options.halfLifeMs);
  }

  private tokensOf(providerId: string): Map<string, TokenSums> {
    let m = this.tokens.get(providerId);
    if (!m) this.tokens.set(providerId, (m = new Map()));
    return m;
  }
}

function emptyProvider(now: number): ProviderSums {
  return { at: now, attempts: 0, successes: 0, settled: 0, ratioSum: 0, invalidChange: 0, latencyN: 0, latencySumMs: 0, lostMsat: 0, refunded: 0 };
}
