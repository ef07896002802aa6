// The small-denomination reserve: proofs of every power of two up to the usual token size - a
// few of each, more of those payments take often (demandTargets) - so that almost every token
// can be made offline with an exact sum (wallet/select.ts). It is
// refilled in the background by swapping a surplus proof into the missing denominations, and
// change received at the mint is split into the missing denominations first, which keeps most
// refills from ever being needed.
import type { WalletContext } from '../context.ts';
import type { StoredProof } from '../store.ts';
import { ProofStateError } from '../errors.ts';
import type { SwapOutcome, SwapService } from '../swap/service.ts';
import { fitDenominations } from '../swap/steps.ts';
import { TurnQueue } from '../turns.ts';

export interface ReserveConfig {
  /** Target count per denomination (powers of two): the floor, whatever the demand. */
  targets: ReadonlyMap<number, number>;
  /** Refill once any denomination has fewer than this many proofs (or half its demand target). */
  minCount: number;
  /**
   * Demand-sized targets: each denomination's target grows to the proofs of it that payments
   * take in this many seconds (measured, decaying), so that a refill - a swap at a mint that may
   * take a second under load - starts while half of that is still at hand and takes almost never
   * find the reserve empty. 0 or absent: fixed targets.
   */
  horizonS?: number;
  /** No denomination's target above this many proofs. */
  maxCount?: number;
  /** At most this many new proofs per refill swap (a mint limits a swap's outputs). */
  maxOutputs?: number;
}

/**
 * Every power of two up to `maxDenominationSat`, `perDenomination` of each; refilled once any
 * falls to half its target, so the refill runs while the rest still covers the requests.
 */
export function defaultReserve(maxDenominationSat = 256, perDenomination = 6, demand: Partial<Pick<ReserveConfig, 'horizonS' | 'maxCount' | 'maxOutputs'>> = {}): ReserveConfig {
  const targets = new Map<number, number>();
  for (let d = 1; d <= maxDenominationSat; d *= 2) targets.set(d, perDenomination);
  return { targets, minCount: Math.ceil(perDenomination / 2), horizonS: 4, maxCount: 400, maxOutputs: 40, ...demand };
}

/**
 * Proofs taken per denomination per second, an exponentially decaying average (time constant
 * `tauMs`): a burst raises it at once, a quiet spell lets it fall back. Clock injected.
 */
export class DemandMeter {
  private readonly level = new Map<number, { value: number; at: number }>();

  constructor(private readonly tauMs = 10_000) {}

  /** Proofs taken (weight 1), or proofs that came in without a refill - change, refunds (weight -1). */
  note(amounts: readonly number[], now: number, weight = 1): void {
    for (const a of amounts) this.level.set(a, { value: this.levelAt(a, now) + weight, at: now });
  }

  /** Proofs of `amount` taken per second lately, less those that came back by themselves (may be negative). */
  perSecond(amount: number, now: number): number {
    return (this.levelAt(amount, now) * 1000) / this.tauMs;
  }

  private levelAt(amount: number, now: number): number {
    const l = this.level.get(amount);
    return l ? l.value * Math.exp(-(now - l.at) / this.tauMs) : 0;
  }
}

/** The reserve's targets for the demand measured now: each the floor or `horizonS` of takes, capped. Pure. */
export function demandTargets(cfg: ReserveConfig, perSecond: (amount: number) => number): ReserveConfig {
  const horizonS = cfg.horizonS ?? 0;
  if (horizonS <= 0) return cfg;
  const targets = new Map<number, number>();
  for (const [d, floor] of cfg.targets) targets.set(d, Math.max(floor, Math.min(cfg.maxCount ?? Infinity, Math.ceil(perSecond(d) * horizonS))));
  return { ...cfg, targets };
}

type Counts = ReadonlyMap<number, number>;

export function countByAmount(proofs: readonly { amount: number }[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of proofs) m.set(p.amount, (m.get(p.amount) ?? 0) + 1);
  return m;
}

/**
 * The denominations missing to reach the targets (with repeats, smallest first), at most
 * `maxOutputs` of them: each next proof goes to the denomination whose count is the smallest
 * share of its target, so a capped refill tops up the emptiest first.
 */
export function reserveDeficit(counts: Counts, cfg: ReserveConfig): number[] {
  const level = [...cfg.targets].filter(([, target]) => target > 0).map(([d, target]) => ({ d, target, have: counts.get(d) ?? 0 }));
  const out: number[] = [];
  for (const cap = cfg.maxOutputs ?? Infinity; out.length < cap; ) {
    let next: (typeof level)[number] | undefined;
    for (const l of level) if (l.have < l.target && (!next || l.have / l.target < next.have / next.target)) next = l;
    if (!next) break;
    next.have++;
    out.push(next.d);
  }
  return out.sort((a, b) => a - b);
}

/** Refill threshold of a denomination: `minCount`, or half its target once demand has raised it. */
const refillBelow = (target: number, cfg: ReserveConfig) => Math.max(cfg.minCount, Math.ceil(target / 2));

export function needsRefill(counts: Counts, cfg: ReserveConfig): boolean {
  for (const [d, target] of cfg.targets) if ((counts.get(d) ?? 0) < refillBelow(target, cfg)) return true;
  return false;
}

/**
 * Output denominations for `amountSat` of new proofs: the missing reserve denominations that fit,
 * smallest first (the rest is split the default way by the swap). Pure.
 */
export function fillDenominations(amountSat: number, deficit: readonly number[]): number[] {
  return fitDenominations([...deficit].sort((a, b) => a - b), amountSat);
}

/** What planning a refill needs of a proof: its value and keyset (for the input fee). */
export type RefillCoin = Pick<StoredProof, 'amount' | 'keysetId'>;

export interface RefillPlan<P extends RefillCoin = StoredProof> {
  inputs: P[];
  denominations: number[];
}

/**
 * Which surplus proofs to swap into `required` denominations (a token that could not be made
 * offline) plus the missing reserve denominations. Surplus = proofs above the reserve's
 * denominations or beyond a denomination's target. Prefers the smallest single proof that covers
 * everything; else the largest surplus proofs until covered (a partial refill if they run out).
 * Returns null when there is nothing to do, or the surplus cannot even cover `required`. Pure.
 */
export function planRefill<P extends RefillCoin>(
  proofs: readonly P[],
  cfg: ReserveConfig,
  feePpk: (keysetId: string) => number | undefined,
  required: readonly number[] = [],
): RefillPlan<P> | null {
  const deficit = reserveDeficit(countByAmount(proofs), cfg);
  if (deficit.length === 0 && required.length === 0) return null;
  const kept = new Map<number, number>();
  const surplus: P[] = [];
  for (const p of [...proofs].sort((a, b) => a.amount - b.amount)) {
    if (feePpk(p.keysetId) === undefined) continue;
    const have = kept.get(p.amount) ?? 0;
    if (have < (cfg.targets.get(p.amount) ?? 0)) kept.set(p.amount, have + 1);
    else surplus.push(p);
  }
  const fee = (ps: readonly RefillCoin[]) => Math.ceil(ps.reduce((a, p) => a + (feePpk(p.keysetId) ?? 0), 0) / 1000);
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
  const requiredSat = sum(required);
  const wanted = requiredSat + sum(deficit);
  let inputs: P[] = [];
  const single = surplus.find((p) => p.amount >= wanted + fee([p]));
  if (single) inputs = [single];
  else {
    let total = 0;
    for (const p of [...surplus].reverse()) {
      inputs.push(p);
      total += p.amount;
      if (total >= wanted + fee(inputs)) break;
    }
  }
  const available = sum(inputs.map((p) => p.amount)) - fee(inputs);
  if (inputs.length > 0 && available >= Math.max(requiredSat, 1)) {
    return { inputs, denominations: [...required, ...fillDenominations(available - requiredSat, deficit)] };
  }
  if (required.length > 0) return null;
  // A wallet smaller than the reserve has no surplus: break its largest proof into the missing
  // smaller denominations (big tokens can still be made of those; the reverse is impossible).
  const largest = [...proofs].filter((p) => feePpk(p.keysetId) !== undefined).sort((a, b) => b.amount - a.amount)[0];
  if (!largest || largest.amount <= deficit[0]) return null;
  const left = largest.amount - fee([largest]);
  const denominations = fillDenominations(left, deficit.filter((d) => d < largest.amount));
  return denominations.length > 0 ? { inputs: [largest], denominations } : null;
}

const IDLE: Promise<void> = Promise.resolve();

/** Keeps each mint's reserve topped up; one swap at a time per mint, off the request path. */
export class Reserve {
  private readonly running = new Map<string, Promise<SwapOutcome | null>>();
  private readonly locks = new Map<string, Promise<void>>();
  /** Payments released together resume one per turn (wallet/turns.ts). */
  private readonly turns = new TurnQueue();
  private readonly demand = new Map<string, DemandMeter>();
  refills = 0;

  constructor(
    private readonly ctx: WalletContext,
    private readonly swaps: SwapService,
    readonly config: ReserveConfig = defaultReserve(),
    private readonly unit = 'sat',
  ) {
    swaps.on('split', {
      done: (row, r) => {
        ctx.ledger.record({ kind: 'mint_fee', mint: row.mint, unit: row.unit, amount: -r.fee, ref: row.id, evidence: { purpose: 'split', inputs: r.ownAmount } });
      },
      rejected: (row, failure, own) => {
        // Nothing happened at the mint: the proofs are ours as before. (If the mint says they are
        // spent, the invariant check with NUT-07 names them; a token made of them would be refused.)
        if (own.length) ctx.store.releaseSecrets(own);
        ctx.logger.warn('reserve split refused by the mint', { mint: row.mint, error: failure.message });
      },
      lost: () => {},
    });
  }

  counts(mint: string): Map<number, number> {
    return new Map(this.ctx.store.denominations(mint, this.unit).map((r) => [r.amount, r.count]));
  }

  /** A payment took proofs of these amounts at `mint` (the demand the targets follow). */
  noteTaken(mint: string, amounts: readonly number[]): void {
    let meter = this.demand.get(mint);
    if (!meter) this.demand.set(mint, (meter = new DemandMeter()));
    meter.note(amounts, this.ctx.clock());
  }

  /**
   * Proofs of these amounts came in by themselves (change, refunds): a denomination that comes
   * back as fast as it goes needs no refill to keep up.
   */
  noteReceived(mint: string, amounts: readonly number[]): void {
    this.demand.get(mint)?.note(amounts, this.ctx.clock(), -1);
  }

  /** The targets in force at `mint` now: the configured floors, raised to the measured demand. */
  configFor(mint: string): ReserveConfig {
    const meter = this.demand.get(mint);
    if (!meter) return this.config;
    const now = this.ctx.clock();
    return demandTargets(this.config, (d) => meter.perSecond(d, now));
  }

  /** Denominations to ask for when `amountSat` of new proofs arrive (change, refunds). */
  denominationsFor(mint: string, amountSat: number): number[] {
    return fillDenominations(amountSat, reserveDeficit(this.counts(mint), this.configFor(mint)));
  }

  /** Start a refill in the background if the reserve runs low; null if none is needed or one is running. */
  maybeRefill(mint: string): Promise<SwapOutcome | null> | null {
    if (this.running.has(mint)) return null;
    if (!needsRefill(this.counts(mint), this.configFor(mint))) return null;
    return this.refill(mint);
  }

  /** Swap surplus proofs into the missing denominations now (single-flight per mint). */
  refill(mint: string): Promise<SwapOutcome | null> {
    const running = this.running.get(mint);
    if (running) return running;
    // The lock is let go once the refill's inputs are pending (its swap row written): a payment
    // short of denominations then makes its own split beside it (first on the swap thread)
    // instead of waiting out the refill's mint call; payments short of money wait for the refill
    // itself (splitsDone).
    const run = this.exclusive(mint, (release) => this.split(mint, [], release)).finally(() => {
      if (this.running.get(mint) === run) this.running.delete(mint);
    });
    this.running.set(mint, run);
    return run;
  }

  /** Wait for the splits of this mint's proofs running (or queued) now; false if there were none. */
  async splitsDone(mint: string): Promise<boolean> {
    const busy = this.locks.get(mint);
    const refilling = this.running.get(mint);
    if (!busy && !refilling) return false;
    await busy;
    await refilling?.catch(() => null);
    // Every payment waiting here wakes when the same split ends: one turn each.
    await this.turns.pass();
    return true;
  }

  /**
   * Run `fn` while no other split of this mint's proofs runs (splits planned together would pick
   * the same proofs). `fn` may let the next one in early (`release`), once its proofs are out of
   * selection.
   */
  async exclusive<T>(mint: string, fn: (release: () => void) => Promise<T>): Promise<T> {
    const previous = this.locks.get(mint) ?? IDLE;
    let release!: () => void;
    const mine = previous.then(() => new Promise<void>((r) => (release = r)));
    this.locks.set(mint, mine);
    await previous;
    if (previous !== IDLE) await this.turns.pass();
    try {
      return await fn(release);
    } finally {
      release();
      if (this.locks.get(mint) === mine) this.locks.delete(mint);
    }
  }

  /**
   * Swap so that proofs of exactly `required` denominations exist (on the request path, when a
   * token cannot be made offline), refilling the reserve with the rest. Spends surplus first,
   * reserve proofs only if the surplus is too small. Call inside exclusive(); `onPrepared` runs in
   * the transaction that moves the inputs to pending.
   */
  async split(mint: string, required: readonly number[], onPrepared?: () => void): Promise<SwapOutcome | null> {
    const wallet = await this.ctx.mints.wallet(mint, this.unit);
    const fees = new Map(wallet.keyChain.getKeysets().map((k) => [k.id, k.fee]));
    const feeOf = (id: string) => fees.get(id);
    for (let attempt = 0; ; attempt++) {
      // Planned from the coins offline selection uses (kept in memory across takes and swaps, see
      // ProofStore.unspentCoins); only the inputs chosen are read whole. Reading every unspent
      // proof whole on each refill held the event loop for milliseconds with a few thousand.
      const coins = this.ctx.store.unspentCoins(mint, this.unit, { fresh: attempt > 0 }).coins.map((c) => ({ secret: c.secret, keysetId: c.keysetId, amount: c.amountSat }));
      // A split a payment waits for stays small (its own denominations and a few for the
      // reserve); the background refills make the rest, 40 proofs at most at a time, so a payment
      // never queues behind more than ~0.5 s of the worker's curve arithmetic.
      const config = required.length ? { ...this.configFor(mint), maxOutputs: 8 } : this.configFor(mint);
      const plan = planRefill(coins, config, feeOf, required) ?? (required.length ? planRefill(coins, { ...config, targets: new Map(), minCount: 0 }, feeOf, required) : null);
      if (!plan) return null;
      try {
        this.refills++;
        const own = plan.inputs.map((c) => this.ctx.store.get(c.secret));
        if (!own.every((p): p is StoredProof => p?.state === 'unspent')) throw new ProofStateError('a planned proof is no longer unspent');
        return await this.swaps.start({ mint, unit: this.unit, purpose: 'split', ref: null, own, denominations: plan.denominations, urgent: required.length > 0, onPrepared });
      } catch (err) {
        // A request took a planned proof while the outputs were being blinded: plan again.
        if (!(err instanceof ProofStateError) || attempt >= 3) throw err;
      }
    }
  }
}
