// The router's view of the wallet: take a token for a request, settle it with the provider's
// change, or reclaim it when the request failed. DESIGN.md "The life of one request" steps 4-7.
//
// takeToken selects proofs offline (wallet/select.ts) and moves them unspent -> pending(request)
// in the same transaction that records the exact token string and the provider URL, before any
// byte goes out. A token pays the provider `amountSat` NET: the mint's input fee (NUT-02) that
// the provider pays when it redeems the token is added on top, because a Routstr node credits
// `token value - input fee`. Only when no offline selection fits does it swap at the mint (a
// "round trip"); the small-denomination reserve (wallet/reserve.ts) keeps that rare.
import { getEncodedToken } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { InsufficientFundsError } from './errors.ts';
import { ChangeQueue, type ChangeQueueOptions, type ChangeRow } from './change-queue.ts';
import { PaymentRows, PaymentStateError, type PaymentRow, type PaymentState } from './payment-rows.ts';
import { defaultReserve, Reserve, type ReserveConfig } from './reserve.ts';
import { defaultPolicy, inputFeeSat, selectOffline, splitAmount, type Coin, type Selection, type SelectPolicy } from './select.ts';
import { toCashuProof, type StoredProof } from './store.ts';
import { NUT_CODE } from './mints.ts';
import { unitToSatFloor } from '../protocol/units.ts';
import { WorkerSwapEngine, type SwapEngine } from './swap-engine.ts';
import { SwapService } from './swaps.ts';
import { migratePayments } from './payments-schema.ts';
import type { FetchLike } from '../protocol/refund.ts';
import { recoverPayments, resolveRequest, retryRefunds, type ResolveOptions, type ResolveResult } from './recovery.ts';

export { PaymentError, PaymentStateError, type PaymentState } from './payment-rows.ts';

export interface PaymentsOptions {
  /** Where swap crypto runs; default a worker thread. */
  engine?: SwapEngine;
  reserve?: ReserveConfig;
  /** Offline selection policy per amount; default exact first, else overpay by max(4, amount/8). */
  policy?: (amountSat: number) => SelectPolicy;
  /** Start a background reserve refill after each token when it runs low; default true. */
  autoRefill?: boolean;
  changeQueue?: Omit<ChangeQueueOptions, 'onSettled'>;
  /** For the provider refund endpoint (e.g. through the SOCKS proxy for .onion); default global fetch. */
  fetch?: FetchLike;
  refund?: ResolveOptions;
  unit?: string;
}

export interface TakeOptions {
  /** Base URL of the provider the token goes to (needed to ask for lost change later). */
  providerUrl?: string;
  policy?: SelectPolicy;
  /** Runs inside the transaction that moves the proofs to pending: write the request row here. */
  inTransaction?: (taken: TakenToken) => void;
}

export interface TakenToken {
  requestId: string;
  mint: string;
  unit: string;
  /** cashuB token to send in X-Cashu. */
  token: string;
  /** What the provider nets after paying the mint's input fee. */
  amountSat: number;
  /** Face value of the token: amountSat + feeSat + overpaySat. */
  sentSat: number;
  feeSat: number;
  overpaySat: number;
  proofCount: number;
  /** A swap at the mint was needed to make this token. */
  mintRoundTrip: boolean;
}

export interface ChangeSummary {
  kind: 'change' | 'refund';
  state: ChangeRow['state'];
  claimedSat: number;
  receivedSat: number | null;
  feeSat: number | null;
  error: string | null;
  evidence: unknown;
}

/** Everything the request ledger needs to reconcile one request's money. */
export interface PaymentOutcome {
  requestId: string;
  mint: string;
  unit: string;
  providerUrl: string | null;
  state: PaymentState;
  amountSat: number;
  sentSat: number;
  feeSat: number;
  overpaySat: number;
  mintRoundTrip: boolean;
  /** Change and refund tokens claimed by the provider, valid or not. */
  changeClaimedSat: number;
  /** Received so far (net of the mint's fee for receiving it). */
  changeReceivedSat: number;
  changeFeeSat: number;
  /** Some change or refund is still waiting to be swapped in. */
  changePending: boolean;
  changes: ChangeSummary[];
  flags: string[];
  evidence: unknown;
}

type Listener = (outcome: PaymentOutcome) => void;
/** Take a token offline now (null if the proofs do not fit); `roundtrip`: a swap was needed first. */
type Take = (roundtrip: boolean, policy?: SelectPolicy) => TakenToken | null;

export class Payments {
  readonly swaps: SwapService;
  readonly reserve: Reserve;
  readonly changeQueue: ChangeQueue;
  readonly rows: PaymentRows;
  readonly unit: string;
  private readonly listeners = new Set<Listener>();
  private readonly policy: (amountSat: number) => SelectPolicy;
  private readonly autoRefill: boolean;
  private refundTimer: NodeJS.Timeout | null = null;
  /** Requests of this process whose token is out: recovery leaves them to their caller. */
  private readonly live = new Set<string>();
  private readonly resolving = new Map<string, Promise<ResolveResult>>();

  constructor(readonly ctx: WalletContext, readonly opts: PaymentsOptions = {}) {
    migratePayments(ctx.db);
    this.unit = opts.unit ?? 'sat';
    this.rows = new PaymentRows(ctx.db, ctx.clock);
    this.swaps = new SwapService(ctx, opts.engine ?? new WorkerSwapEngine());
    this.reserve = new Reserve(ctx, this.swaps, opts.reserve ?? defaultReserve(), this.unit);
    this.changeQueue = new ChangeQueue(ctx, this.swaps, this.reserve, { ...opts.changeQueue, onSettled: (id) => this.emit(id) });
    this.policy = opts.policy ?? defaultPolicy;
    this.autoRefill = opts.autoRefill ?? true;
    this.swaps.on('reclaim', {
      done: (row, r) => {
        ctx.ledger.record({ kind: 'mint_fee', mint: row.mint, unit: row.unit, amount: -r.fee, ref: row.id, evidence: { purpose: 'reclaim', request: row.ref } });
        if (row.ref) this.rows.setState(row.ref, 'reclaimed', { swap: row.id, fee: r.fee, restored: r.restored });
      },
      rejected: (row, failure, own) => {
        // Nothing happened at the mint: the proofs go back to the request; resolving it again
        // (NUT-07 first) decides between another reclaim and the refund path.
        ctx.store.releaseSecrets(own);
        if (row.ref) ctx.store.movePending(own, 'request', row.ref);
        const payment = row.ref ? this.rows.get(row.ref) : undefined;
        // The provider's answer settled it while this swap was out, and the mint says it spent them.
        if (payment?.flags.includes('settled_during_reclaim') && failure.kind === 'rejected' && failure.mintCode === NUT_CODE.PROOFS_ALREADY_SPENT) {
          this.settleSpent(payment);
          return;
        }
        ctx.logger.warn('reclaim refused by the mint', { request: row.ref, error: failure.message });
      },
      lost: (row, evidence) => {
        if (row.ref) {
          this.rows.setState(row.ref, 'lost', evidence);
          this.rows.addFlag(row.ref, 'lost');
        }
      },
    });
  }

  /**
   * A cashuB token from `mint` worth exactly `amountSat` to the provider (plus the mint's input
   * fee it will pay), its proofs pending for `requestId` before this returns. No mint call when
   * the offline selection fits (the usual case); else one swap.
   */
  async takeToken(mint: string, amountSat: number, requestId: string, opts: TakeOptions = {}): Promise<TakenToken> {
    mint = this.ctx.mints.assertTrusted(mint);
    if (!Number.isSafeInteger(amountSat) || amountSat <= 0) throw new RangeError(`amount must be a positive integer of sats, got ${amountSat}`);
    const fees = await this.feeMap(mint);
    const take: Take = (roundtrip, policy) => this.takeOffline(mint, amountSat, requestId, fees, { ...opts, policy: policy ?? opts.policy }, false, roundtrip);
    const taken = take(false) ?? (await this.takeWithSwap(mint, amountSat, fees, take));
    this.afterTake(mint);
    return taken;
  }

  /**
   * A 402/413 said the token was too small and the node did not redeem it: replace it by one
   * worth `amountSat`, reusing its proofs where they fit. Returns the new token (same request).
   */
  async topUp(requestId: string, amountSat: number, opts: Omit<TakeOptions, 'providerUrl'> = {}): Promise<TakenToken> {
    const row = this.rows.require(requestId, 'pending');
    const fees = await this.feeMap(row.mint);
    const take: Take = (roundtrip, policy) => this.takeOffline(row.mint, amountSat, requestId, fees, { ...opts, policy: policy ?? opts.policy }, true, roundtrip);
    const taken = take(false) ?? (await this.takeWithSwap(row.mint, amountSat, fees, take));
    this.afterTake(row.mint);
    return taken;
  }

  /**
   * The provider took the token: its proofs are spent (ledger: payment_sent) and the change
   * token, if any, waits in the queue to be swapped in. Synchronous; may run inside the
   * caller's transaction.
   */
  settle(requestId: string, changeToken?: string | null): PaymentOutcome {
    const { ctx } = this;
    const row = this.rows.require(requestId);
    if (row.state === 'settled') throw new PaymentStateError(`payment ${requestId} is settled already`);
    ctx.db.transaction(() => {
      if (row.state === 'pending' || row.state === 'refund_wait') {
        if (!this.settleSpent(row)) this.rows.addFlag(requestId, 'settled_during_reclaim'); // the reclaim swap holds the proofs: it settles them
      } else if (changeToken) this.rows.addFlag(requestId, 'late_change');
      // The change is banked whatever state the payment is in: it is money either way.
      if (changeToken) this.changeQueue.enqueue(requestId, 'change', changeToken, row.mint, row.unit);
    })();
    this.live.delete(requestId);
    return this.outcome(requestId)!;
  }

  /** @internal The provider redeemed the token: its proofs pending for the request are spent (false when none are). */
  settleSpent(row: PaymentRow): boolean {
    const { ctx } = this;
    if (ctx.store.markSpentIfPending(row.requestId).count === 0) return false;
    ctx.ledger.record({ kind: 'payment_sent', mint: row.mint, unit: row.unit, amount: -row.sent, ref: row.requestId,
      evidence: { provider: row.providerUrl, amount: row.amount, input_fee: row.fee, overpay: row.overpay } });
    this.rows.setState(row.requestId, 'settled');
    return true;
  }

  /**
   * Bank a token a provider handed back outside settle (e.g. an X-Cashu header on a 402, or a
   * `refund_token` after the request was reclaimed). Queued like change; counted once swapped.
   */
  bankToken(requestId: string, token: string): void {
    const row = this.rows.get(requestId);
    this.changeQueue.enqueue(requestId, 'change', token, row?.mint ?? this.ctx.mints.defaultMint(), row?.unit ?? this.unit);
  }

  /** Is this request's token out on behalf of a caller in this process (so recovery must not touch it)? */
  isLive(requestId: string): boolean {
    return this.live.has(requestId);
  }

  /**
   * The request failed before the provider (we think) took the token: ask the mint (NUT-07).
   * Unspent -> swapped back to fresh proofs (the provider saw the secrets); spent -> the
   * provider's refund endpoint, else a loss with evidence. Throws MintUnavailableError if the
   * mint cannot be asked; the payment stays pending and recovery tries again.
   */
  async reclaim(requestId: string): Promise<ResolveResult> {
    // The caller gives the token up: should the mint be unreachable now, recovery retries later.
    this.live.delete(requestId);
    const result = await this.resolve(requestId);
    this.emit(requestId);
    return result;
  }

  /** @internal Settle a request whose outcome is unknown (one resolution at a time per request). */
  resolve(requestId: string): Promise<ResolveResult> {
    const running = this.resolving.get(requestId);
    if (running) return running;
    const run = resolveRequest(this, requestId).finally(() => this.resolving.delete(requestId));
    this.resolving.set(requestId, run);
    return run;
  }

  /** Run the change queue and the refund retries in the background. */
  start(): void {
    this.changeQueue.start();
    if (!this.refundTimer) {
      this.refundTimer = setInterval(() => void retryRefunds(this).catch((err) => this.ctx.logger.error('refund retry failed', { error: (err as Error).message })), 5_000);
      this.refundTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.changeQueue.stop();
    if (this.refundTimer) clearInterval(this.refundTimer);
    this.refundTimer = null;
    await this.changeQueue.idle();
    // A swap cut off mid-call would have an unknown outcome: let the running ones finish.
    await this.swaps.idle();
    await this.swaps.engine.close();
  }

  /** The money story of one request so far. */
  outcome(requestId: string): PaymentOutcome | undefined {
    const row = this.rows.get(requestId);
    if (!row) return undefined;
    return toOutcome(row, this.changeQueue.rowsOf(requestId));
  }

  /** Called whenever a request's outcome changes after takeToken (change received or refused, reclaimed, refunded, lost). */
  onOutcome(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tokens taken and how many needed a mint round trip (for mint_roundtrips_per_request). */
  stats(): { tokens: number; roundtrips: number; mintCalls: number; refills: number; changeSwaps: number; changeTokens: number } {
    return { ...this.rows.stats(), mintCalls: this.swaps.mintCalls, refills: this.reserve.refills, changeSwaps: this.changeQueue.swapsRun, changeTokens: this.changeQueue.tokensSwapped };
  }

  /** @internal */
  emit(requestId: string): void {
    if (this.listeners.size === 0) return;
    const o = this.outcome(requestId);
    if (o) for (const l of this.listeners) l(o);
  }

  /** @internal refund options for recovery */
  get refundOptions(): ResolveOptions & { fetch: FetchLike } {
    return { ...this.opts.refund, fetch: this.opts.fetch ?? this.opts.refund?.fetch ?? ((url, init) => fetch(url, init)) };
  }

  private async feeMap(mint: string): Promise<Map<string, number>> {
    const wallet = await this.ctx.mints.wallet(mint, this.unit);
    return new Map(wallet.keyChain.getKeysets().filter((k) => k.unit === this.unit).map((k) => [k.id, k.fee]));
  }

  /** Select, encode and record in one synchronous step, or null when no offline selection fits. */
  private takeOffline(
    mint: string, amountSat: number, requestId: string, fees: ReadonlyMap<string, number>, opts: TakeOptions, replace: boolean, roundtrip: boolean,
  ): TakenToken | null {
    const { ctx } = this;
    const reusable = replace ? ctx.store.pendingOf(requestId).map((p) => ({ secret: p.secret, keysetId: p.keysetId, amountSat: p.amount })) : [];
    const chosen = this.choose(mint, amountSat, fees, opts.policy ?? this.policy(amountSat), reusable);
    if (!chosen) return null;
    const { sel, proofs } = chosen;
    const token = getEncodedToken({ mint, unit: this.unit, proofs: proofs.map(toCashuProof) });
    const taken: TakenToken = {
      requestId, mint, unit: this.unit, token, amountSat, sentSat: sel.totalSat, feeSat: sel.feeSat, overpaySat: sel.overpaySat,
      proofCount: proofs.length, mintRoundTrip: roundtrip,
    };
    ctx.db.transaction(() => {
      if (replace) ctx.store.releasePending(requestId);
      ctx.store.movePending(proofs.map((p) => p.secret), 'request', requestId);
      const record = { token, amount: amountSat, sent: sel.totalSat, fee: sel.feeSat, overpay: sel.overpaySat, roundtrip };
      if (replace) this.rows.replaceToken(requestId, record);
      else this.rows.insert({ requestId, mint, unit: this.unit, providerUrl: opts.providerUrl ?? null, ...record });
      opts.inTransaction?.(taken);
    })();
    ctx.store.unspentTaken(mint, this.unit, chosen.version, proofs.map((p) => p.secret));
    this.live.add(requestId); // in the same synchronous step, so recovery can never see it as an orphan
    return taken;
  }

  /**
   * Offline selection over the unspent coins (kept in memory by the store between writes) plus
   * `reusable` ones, then the chosen proofs read in full; null when nothing fits.
   */
  private choose(mint: string, amountSat: number, fees: ReadonlyMap<string, number>, policy: SelectPolicy, reusable: Coin[]):
    { sel: Selection; proofs: StoredProof[]; version: number } | null {
    const { store } = this.ctx;
    const own = new Set(reusable.map((c) => c.secret));
    for (let fresh = false; ; fresh = true) {
      const unspent = store.unspentCoins(mint, this.unit, { fresh });
      const coins: Coin[] = [...unspent.coins, ...reusable];
      const sel = selectOffline(coins, amountSat, fees, policy);
      if (!sel) {
        const have = coins.reduce((a, c) => a + c.amountSat, 0);
        if (have < amountSat) throw new InsufficientFundsError(amountSat, have, this.unit, mint);
        return null;
      }
      const proofs = sel.coins.map((c) => store.get(c.secret)!);
      const stale = proofs.some((p) => !p || (!own.has(p.secret) && (p.state !== 'unspent' || p.mint !== mint || p.unit !== this.unit)));
      // A stale cache is never expected (the store follows every write); read again rather than
      // fail. Should the DB itself disagree, movePending refuses the proofs.
      if (!stale || fresh) return { sel, proofs, version: unspent.version };
      this.ctx.logger.warn('cached unspent proofs were stale; reading them again', { mint });
    }
  }

  /**
   * Swap so that the token's exact denominations exist (refilling the reserve on the way), then
   * take it. Swaps of one mint run one at a time; a request that waited for another's swap first
   * tries again offline, so concurrent shortfalls cost one swap, not one each.
   */
  private async takeWithSwap(mint: string, amountSat: number, fees: ReadonlyMap<string, number>, take: Take): Promise<TakenToken> {
    const wallet = await this.ctx.mints.wallet(mint, this.unit);
    const ppk = fees.get(wallet.keysetId) ?? 0;
    // The token will be the standard split of amount + fee(its own proof count).
    let total = amountSat;
    for (let i = 0; i < 16; i++) {
      const next = amountSat + inputFeeSat(splitAmount(total).length, ppk);
      if (next === total) break;
      total = next;
    }
    const result = await this.reserve.exclusive(mint, async () => {
      // Another request's swap (or a refill) may have made the proofs while this one waited for
      // it; it still waited on the mint, so it counts as a round trip.
      const waited = take(true);
      if (waited) return { taken: waited };
      const outcome = await this.reserve.split(mint, splitAmount(total));
      if (outcome?.status !== 'done') return { outcome };
      // The swap made the exact split; should a concurrent request have taken part of it, any overpayment will do.
      return { taken: take(true) ?? take(true, { allowOverpay: true, maxOverpaySat: Number.MAX_SAFE_INTEGER }), outcome };
    });
    if (result.taken) return result.taken;
    const outcome = result.outcome;
    if (outcome?.status === 'retry') throw new PaymentStateError(`mint ${mint} did not answer the swap needed for this token; try again shortly (${outcome.failure.message})`);
    const have = this.ctx.store.selectUnspent(mint, this.unit).reduce((a, p) => a + p.amount, 0);
    if (outcome === null || outcome === undefined || outcome.status === 'done') throw new InsufficientFundsError(total, have, this.unit, mint);
    throw new PaymentStateError(`could not make a token of ${amountSat} sat at ${mint}: ${outcome.status}`);
  }

  private afterTake(mint: string): void {
    if (!this.autoRefill) return;
    this.reserve.maybeRefill(mint)?.catch((err) => this.ctx.logger.warn('reserve refill failed', { mint, error: (err as Error).message }));
  }
}

/**
 * Payments on a CashuWallet's context, resolved with the wallet's recovery (CashuWallet.recover()
 * and its periodic tick run recoverPayments, which leaves this process's live requests alone).
 */
export function attachPayments(wallet: { ctx: WalletContext; addRecoveryStep(name: string, run: () => Promise<unknown>): void }, opts: PaymentsOptions = {}): Payments {
  const payments = new Payments(wallet.ctx, opts);
  wallet.addRecoveryStep('payments', () => recoverPayments(payments));
  return payments;
}

/** A change row's amount in sat: a provider may hand back change in another unit (msat) than it was paid in. */
const changeSat = (amount: number, unit: string) => unitToSatFloor(amount, unit);

/** @internal exported for tests */
export function toOutcome(row: PaymentRow, changes: ChangeRow[]): PaymentOutcome {
  const flags = new Set(row.flags);
  if (changes.some((c) => c.state === 'invalid')) flags.add('change_invalid');
  if (changes.some((c) => c.state === 'lost')) flags.add('change_lost');
  const valid = changes.filter((c) => c.state !== 'invalid');
  const sat = (c: ChangeRow, amount: number | null) => (amount === null ? null : changeSat(amount, c.unit));
  return {
    requestId: row.requestId, mint: row.mint, unit: row.unit, providerUrl: row.providerUrl, state: row.state,
    amountSat: row.amount, sentSat: row.sent, feeSat: row.fee, overpaySat: row.overpay, mintRoundTrip: row.roundtrip,
    changeClaimedSat: changes.reduce((a, c) => a + changeSat(c.claimed, c.unit), 0),
    changeReceivedSat: valid.reduce((a, c) => a + (sat(c, c.received) ?? 0), 0),
    changeFeeSat: valid.reduce((a, c) => a + (sat(c, c.fee) ?? 0), 0),
    changePending: changes.some((c) => c.state === 'queued' || c.state === 'swapping'),
    changes: changes.map((c) => ({ kind: c.kind, state: c.state, claimedSat: changeSat(c.claimed, c.unit), receivedSat: sat(c, c.received), feeSat: sat(c, c.fee), error: c.error, evidence: c.evidence })),
    flags: [...flags].sort(),
    evidence: row.evidence,
  };
}
