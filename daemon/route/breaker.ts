// Circuit breakers, per provider and per provider+model (DESIGN.md "Circuit breaker").
// The state machine itself is breaker-state.ts.
//
// No timers: open turns half-open when a lookup finds its time over. Half-open admits exactly
// one probe: a permit taken synchronously, freed when its outcome is recorded, when it is
// released unused, or when it is older than the probe timeout. Open time is 30 s doubling per
// re-open up to 10 min, jittered down by up to 20 % (injected random). A 429 is a capacity
// cooldown honouring Retry-After, not a failure; the node's 402/413 and the caller's 400/422
// are no failures either (`neutral`). State is persisted after each change and announced on
// the 'change' event.
import { EventEmitter } from 'node:events';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import type { BreakerStore } from './breaker-store.ts';
import { close, halfOpen, reopen, trip, type BreakerRecord, type BreakerScope, type BreakerState } from './breaker-state.ts';

export type { BreakerRecord, BreakerScope, BreakerState } from './breaker-state.ts';

export interface BreakerOptions {
  /** Consecutive failures that open a closed breaker. */
  failureThreshold: number;
  /** First open time; doubled on each re-open, up to openMaxMs. */
  openBaseMs: number;
  openMaxMs: number;
  /** Open times are shortened by up to this share, at random, so breakers opened together do not probe together. */
  jitter: number;
  /** A probe with no outcome after this long frees its permit (another probe may go). */
  probeTimeoutMs: number;
  /** Cooldown after a 429 without a usable Retry-After. */
  defaultRetryAfterMs: number;
  /** The longest cooldown a Retry-After may ask for. */
  maxRetryAfterMs: number;
}

export const BREAKER_DEFAULTS: Readonly<BreakerOptions> = Object.freeze({
  failureThreshold: 3,
  openBaseMs: 30_000,
  openMaxMs: 600_000,
  jitter: 0.2,
  probeTimeoutMs: 120_000,
  defaultRetryAfterMs: 10_000,
  maxRetryAfterMs: 600_000,
});

// ---- outcomes, gates, permits -----------------------------------------------------------

/**
 * What one attempt tells the breakers. `failure`: connection errors, timeouts, 5xx, malformed
 * responses, invalid change, an upstream error after redemption; `scope: 'model'` for errors
 * only that model has (e.g. the upstream's 404 for it). `rate_limited`: a 429. `neutral`: the
 * node's 402/413 (we under-paid), the caller's 400/422, a cancel.
 */
export type BreakerOutcome =
  | { kind: 'success' }
  | { kind: 'failure'; scope: BreakerScope; error: string }
  | { kind: 'rate_limited'; retryAfterMs?: number; scope?: BreakerScope }
  | { kind: 'neutral' };

/** Whether a provider+model may be tried now. */
export type Gate =
  | { admit: true; probe: boolean }
  | { admit: false; reason: 'breaker_open' | 'probe_in_flight' | 'rate_limited'; scope: BreakerScope; until: number | null; lastFailureAt: number | null; failures: number };

const ADMIT: Gate = Object.freeze({ admit: true, probe: false });
const ADMIT_PROBE: Gate = Object.freeze({ admit: true, probe: true });

/** Taken for each attempt; carries the half-open probes it holds. Record its outcome, or release it. */
export interface Permit {
  readonly id: number;
  readonly providerId: string;
  readonly modelId: string;
  /** The half-open breakers whose one probe this attempt is. */
  readonly probes: readonly BreakerRecord[];
  done: boolean;
}

export interface BreakerChange {
  providerId: string;
  modelId: string | null;
  from: BreakerState;
  to: BreakerState;
  at: number;
  /** Why, in a few words ('3 consecutive failures', 'probe failed', ...). */
  reason: string;
  openUntil: number | null;
}

/** A breaker for people and the admin API. */
export interface BreakerView {
  provider_id: string;
  model_id: string | null;
  state: BreakerState;
  failures: number;
  reopens: number;
  open_until: string | null;
  last_failure_at: string | null;
  last_error: string | null;
  cooldown_until: string | null;
  probe_in_flight: boolean;
}

interface ProviderNode {
  self: BreakerRecord | undefined;
  models: Map<string, BreakerRecord> | undefined;
}

export interface BreakersOptions {
  store?: BreakerStore;
  clock?: () => number;
  random?: () => number;
  logger?: Logger;
  options?: Partial<BreakerOptions>;
}

export class Breakers extends EventEmitter<{ change: [BreakerChange] }> {
  readonly options: BreakerOptions;
  private readonly byProvider = new Map<string, ProviderNode>();
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly store: BreakerStore | undefined;
  private nextPermit = 1;

  constructor(o: BreakersOptions = {}) {
    super();
    this.options = { ...BREAKER_DEFAULTS, ...o.options };
    this.clock = o.clock ?? Date.now;
    this.random = o.random ?? Math.random;
    this.log = o.logger ?? nullLogger;
    this.store = o.store;
    for (const r of o.store?.load() ?? []) this.put(r);
  }

  now(): number {
    return this.clock();
  }

  /**
   * May this provider+model be tried at `now`? Both its breakers must admit. Lazily turns an
   * open breaker whose time is over into half-open, and frees a probe older than the timeout.
   */
  peek(providerId: string, modelId: string, now = this.clock()): Gate {
    const node = this.byProvider.get(providerId);
    if (!node) return ADMIT;
    const g = node.self ? this.gate(node.self, now) : ADMIT;
    if (!g.admit) return g;
    const m = node.models?.get(modelId);
    if (!m) return g;
    const gm = this.gate(m, now);
    if (!gm.admit) return gm;
    return g.probe || gm.probe ? ADMIT_PROBE : ADMIT;
  }

  /** Take the permit for an attempt the gates admit: it holds the probe of each half-open breaker. Null when not admitted (now). */
  acquire(providerId: string, modelId: string, now = this.clock()): Permit | null {
    if (!this.peek(providerId, modelId, now).admit) return null;
    const id = this.nextPermit++;
    const probes: BreakerRecord[] = [];
    for (const r of this.records(providerId, modelId)) {
      if (r.state !== 'half_open') continue;
      r.probe = { permitId: id, since: now };
      probes.push(r);
    }
    return { id, providerId, modelId, probes, done: false };
  }

  /**
   * Every candidate is open: send one probe to this one (the caller picks the one that failed
   * longest ago) by turning its open breakers half-open early. Null when a probe is already out.
   */
  forceProbe(providerId: string, modelId: string, now = this.clock()): Permit | null {
    for (const r of this.records(providerId, modelId)) {
      if (r.state === 'half_open' && r.probe && now - r.probe.since < this.options.probeTimeoutMs) return null;
      if (r.cooldownUntil !== null && now < r.cooldownUntil) return null;
    }
    for (const r of this.records(providerId, modelId)) {
      if (r.state === 'open') this.transition(r, now, 'every candidate open: probing the oldest failure', () => halfOpen(r));
    }
    return this.acquire(providerId, modelId, now);
  }

  /** Apply an attempt's outcome and free its permit. A permit is used once. */
  record(permit: Permit, outcome: BreakerOutcome, now = this.clock()): void {
    if (permit.done) return;
    permit.done = true;
    const { providerId, modelId } = permit;
    switch (outcome.kind) {
      case 'success':
        for (const r of this.records(providerId, modelId)) this.succeeded(r, permit, now);
        break;
      case 'failure': {
        const r = this.ensure(providerId, outcome.scope === 'model' ? modelId : null);
        this.failed(r, permit, now, outcome.error);
        break;
      }
      case 'rate_limited': {
        const r = this.ensure(providerId, (outcome.scope ?? 'model') === 'model' ? modelId : null);
        const o = this.options;
        const wait = Math.min(Math.max(0, outcome.retryAfterMs ?? o.defaultRetryAfterMs), o.maxRetryAfterMs);
        r.cooldownUntil = Math.max(r.cooldownUntil ?? 0, now + wait);
        this.store?.save(r);
        this.log.info('provider rate limited', { provider: providerId, model: r.modelId, retryAfterMs: wait });
        break;
      }
      case 'neutral':
        break;
    }
    this.free(permit);
  }

  /**
   * An outcome learned after the attempt's permit was used (e.g. its change proved invalid at
   * the swap). A late failure counts towards opening a closed breaker; it never decides a probe.
   */
  recordLate(providerId: string, modelId: string, outcome: BreakerOutcome, now = this.clock()): void {
    if (outcome.kind !== 'failure') return;
    const r = this.ensure(providerId, outcome.scope === 'model' ? modelId : null);
    r.lastFailureAt = now;
    r.lastError = outcome.error.slice(0, 200);
    if (r.state === 'closed' && ++r.failures >= this.options.failureThreshold) {
      this.transition(r, now, `${r.failures} consecutive failures`, () => trip(r, now, this.openMs(r.reopens)));
      return;
    }
    this.store?.save(r);
  }

  /** An attempt that was planned but not made: free its probes, change nothing else. */
  release(permit: Permit): void {
    if (permit.done) return;
    permit.done = true;
    this.free(permit);
  }

  /** The breaker records of a provider (and its models), for views and tests. */
  get(providerId: string, modelId: string | null = null): Readonly<BreakerRecord> | undefined {
    const node = this.byProvider.get(providerId);
    return modelId === null ? node?.self : node?.models?.get(modelId);
  }

  /** Every breaker that has recorded something, for `satroute providers` and `GET /admin/breakers`. */
  views(): BreakerView[] {
    const out: BreakerView[] = [];
    for (const node of this.byProvider.values()) {
      if (node.self) out.push(breakerView(node.self));
      for (const m of node.models?.values() ?? []) out.push(breakerView(m));
    }
    return out;
  }

  // ---- internals -----------------------------------------------------------------------

  private gate(r: BreakerRecord, now: number): Gate {
    const scope: BreakerScope = r.modelId === null ? 'provider' : 'model';
    if (r.cooldownUntil !== null && now < r.cooldownUntil) return this.deny(r, 'rate_limited', scope, r.cooldownUntil);
    if (r.state === 'closed') return ADMIT;
    if (r.state === 'open') {
      if (now < (r.openUntil ?? 0)) return this.deny(r, 'breaker_open', scope, r.openUntil);
      this.transition(r, now, 'open time over', () => halfOpen(r));
    }
    if (r.probe && now - r.probe.since >= this.options.probeTimeoutMs) {
      this.log.warn('breaker probe timed out; another may go', { provider: r.providerId, model: r.modelId });
      r.probe = null;
    }
    return r.probe ? this.deny(r, 'probe_in_flight', scope, null) : ADMIT_PROBE;
  }

  private deny(r: BreakerRecord, reason: 'breaker_open' | 'probe_in_flight' | 'rate_limited', scope: BreakerScope, until: number | null): Gate {
    return { admit: false, reason, scope, until, lastFailureAt: r.lastFailureAt, failures: r.failures };
  }

  // Whether this permit speaks for a half-open breaker: it holds the probe, or the probe slot
  // is free (its holder timed out), so a late answer still counts.
  private speaksFor(r: BreakerRecord, permit: Permit): boolean {
    return r.state === 'half_open' && (r.probe === null || r.probe.permitId === permit.id);
  }

  private succeeded(r: BreakerRecord, permit: Permit, now: number): void {
    if (r.state === 'closed') {
      if (r.failures > 0) {
        r.failures = 0;
        this.store?.save(r);
      }
    } else if (this.speaksFor(r, permit)) {
      this.transition(r, now, 'probe succeeded', () => close(r));
    }
    // open: a late success from before it opened changes nothing
  }

  private failed(r: BreakerRecord, permit: Permit, now: number, error: string): void {
    r.lastFailureAt = now;
    r.lastError = error.slice(0, 200);
    if (r.state === 'closed') {
      r.failures += 1;
      if (r.failures >= this.options.failureThreshold) {
        const n = r.failures;
        this.transition(r, now, `${n} consecutive failures`, () => trip(r, now, this.openMs(r.reopens)));
        return;
      }
    } else if (this.speaksFor(r, permit)) {
      this.transition(r, now, 'probe failed', () => reopen(r, now, this.openMs(r.reopens + 1)));
      return;
    }
    this.store?.save(r);
  }

  private transition(r: BreakerRecord, now: number, reason: string, step: () => void): void {
    const from = r.state;
    step();
    this.store?.save(r);
    const change: BreakerChange = { providerId: r.providerId, modelId: r.modelId, from, to: r.state, at: now, reason, openUntil: r.openUntil };
    this.log.info('breaker', { provider: r.providerId, model: r.modelId, from, to: r.state, reason });
    this.emit('change', change);
  }

  private openMs(reopens: number): number {
    const o = this.options;
    const full = Math.min(o.openBaseMs * 2 ** Math.min(reopens, 30), o.openMaxMs);
    return Math.round(full * (1 - o.jitter * this.random()));
  }

  private free(permit: Permit): void {
    for (const r of permit.probes) if (r.probe?.permitId === permit.id) r.probe = null;
  }

  private *records(providerId: string, modelId: string): Generator<BreakerRecord> {
    const node = this.byProvider.get(providerId);
    if (!node) return;
    if (node.self) yield node.self;
    const m = node.models?.get(modelId);
    if (m) yield m;
  }

  private ensure(providerId: string, modelId: string | null): BreakerRecord {
    const existing = this.get(providerId, modelId) as BreakerRecord | undefined;
    if (existing) return existing;
    const r: BreakerRecord = { providerId, modelId, state: 'closed', failures: 0, reopens: 0, openedAt: null, openUntil: null, lastFailureAt: null, lastError: null, cooldownUntil: null, probe: null };
    this.put(r);
    return r;
  }

  private put(r: BreakerRecord): void {
    let node = this.byProvider.get(r.providerId);
    if (!node) this.byProvider.set(r.providerId, (node = { self: undefined, models: undefined }));
    if (r.modelId === null) node.self = r;
    else (node.models ??= new Map()).set(r.modelId, r);
  }
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function breakerView(r: BreakerRecord): BreakerView {
  return {
    provider_id: r.providerId,
    model_id: r.modelId,
    state: r.state,
    failures: r.failures,
    reopens: r.reopens,
    open_until: r.state === 'closed' ? null : iso(r.openUntil),
    last_failure_at: iso(r.lastFailureAt),
    last_error: r.lastError,
    cooldown_until: iso(r.cooldownUntil),
    probe_in_flight: r.probe !== null,
  };
}
