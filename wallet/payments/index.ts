// The router's view of the wallet: take a token for one payment (one attempt of a request at one
// provider), settle it with the provider's change, or reclaim it when the attempt failed.
// DESIGN.md "The life of one request" steps 4-7.
//
// takeToken (take.ts) selects proofs offline (wallet/select.ts) and moves them unspent ->
// pending(payment) in the same transaction that records the exact token string and the provider
// URL (and runs the caller's `inTransaction`, where the router writes its attempt row), before any
// byte goes out. A token pays the provider `amountSat` NET: the mint's input fee (NUT-02) that the
// provider pays when it redeems the token is added on top, because a Routstr node credits `token
// value - input fee`. Only when no offline selection fits does it swap at the mint (a "round
// trip"); the small-denomination reserve (reserve.ts) keeps that rare.
import type { FetchLike } from '../../protocol/refund.ts';
import { sat, type Sat, type SatIn } from '../../protocol/units.ts';
import type { WalletContext } from '../context.ts';
import { PaymentError, PaymentStateError } from '../errors.ts';
import { mintKey } from '../mints.ts';
import { defaultPolicy, type SelectPolicy } from '../select.ts';
import { toCashuProof, type PendingKind } from '../store.ts';
import { WorkerSwapEngine, type SwapEngine } from '../swap/engine.ts';
import { SwapService } from '../swap/service.ts';
import { ChangeQueue, type ChangeQueueOptions } from './change-queue.ts';
import { TokenTaker, type TakeSpec, type TakenToken } from './take.ts';
import { toOutcome, type PaymentOutcome } from './outcome.ts';
import { recoverPayments, resolvePayment, retryRefunds, type PaymentsRecoveryReport, type RecoveryDeps, type ResolveOptions, type ResolveResult } from './recovery.ts';
import { defaultReserve, Reserve, type ReserveConfig } from './reserve.ts';
import { PaymentRows, type PaymentRow } from './rows.ts';
import { depositTaken, reclaimHandler, settleSpent } from './settle.ts';
import { refundHooks, SessionBook, type SessionDepositRequest, type SessionExposure, type SessionSummary } from './sessions.ts';
import { newId } from '../ids.ts';
import { migratePayments } from './schema.ts';

export type { PaymentOutcome, ChangeSummary } from './outcome.ts';
export type { TakenToken } from './take.ts';
export type { SessionSummary, SessionExposure, SessionState, SessionDepositRequest } from './sessions.ts';
export type { PaymentState, PaymentRow } from './rows.ts';
export type { ResolveAction, ResolveResult, ResolveOptions, PaymentsRecoveryReport } from './recovery.ts';
export { toOutcome } from './outcome.ts';
export { PaymentError, PaymentStateError } from '../errors.ts';

export interface PaymentsOptions {
  /** The wallet's swap service (CashuWallet passes its own); default a new one on `engine`. */
  swaps?: SwapService;
  /** Where swap crypto runs when this creates its swap service; default a worker thread. */
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
}

export interface TakeTokenRequest {
  /** One payment per attempt: the router passes `<requestId>.<n>`. */
  paymentId: string;
  /** Our wallet's mint (normalised; it must be trusted). */
  mint: string;
  /**
   * The mint URL exactly as the provider lists it (a node compares mint URLs as exact strings);
   * written into the token. It must normalise to `mint`. Default: `mint`.
   */
  tokenMint?: string;
  /** What the provider should net, in whole sats. */
  amountSat: SatIn;
  /** Base URL of the provider the token goes to: its refund endpoint is asked for lost change. */
  providerUrl: string;
  /** The provider's node version, if known: how long its refund endpoint may say 404 for "not yet" (protocol/refund.ts). */
  providerVersion?: string | null;
  policy?: SelectPolicy;
  /**
   * Runs synchronously inside the transaction that moves the proofs to pending (write the
   * attempt row here). Throwing rolls everything back; returning a promise throws.
   */
  inTransaction?: (taken: TakenToken) => void;
}

export interface SettleOptions {
  /**
   * The answer carried no usage (a stream: the node keeps the whole token and mints no change):
   * the payment is a charge flagged `usage_missing` - never reclaim it as a lost answer.
   */
  usageMissing?: boolean;
}

export interface TopUpOptions {
  policy?: SelectPolicy;
  inTransaction?: (taken: TakenToken) => void;
}

type Listener = (outcome: PaymentOutcome) => void;

export class Payments implements RecoveryDeps {
  readonly swaps: SwapService;
  readonly reserve: Reserve;
  readonly changeQueue: ChangeQueue;
  readonly rows: PaymentRows;
  readonly unit = 'sat' as const;
  private readonly ownsSwaps: boolean;
  private readonly listeners = new Set<Listener>();
  private readonly taker: TokenTaker;
  readonly sessions: SessionBook;
  private refundTimer: NodeJS.Timeout | null = null;
  /** Payments of this process whose token is out: recovery leaves them to their caller. */
  private readonly live = new Set<string>();
  private readonly resolving = new Map<string, Promise<ResolveResult>>();

  constructor(readonly ctx: WalletContext, readonly opts: PaymentsOptions = {}) {
    migratePayments(ctx.db);
    this.rows = new PaymentRows(ctx.db, ctx.clock);
    this.ownsSwaps = !opts.swaps;
    this.swaps = opts.swaps ?? new SwapService(ctx, opts.engine ?? new WorkerSwapEngine());
    this.reserve = new Reserve(ctx, this.swaps, opts.reserve ?? defaultReserve(), this.unit);
    this.changeQueue = new ChangeQueue(ctx, this.swaps, this.reserve, {
      ...opts.changeQueue,
      onSettled: (id) => this.emit(id),
      inTransaction: refundHooks(() => this.sessions, (id) => this.changeQueue.rowsOf(id)),
      // Our own token came back as "change": settle the payment it belongs to instead (NUT-07, then reclaim).
      onOwnProofs: async (ids) => {
        for (const id of ids) {
          await this.resolve(id).then(() => this.emit(id), (err) => ctx.logger.warn('resolving a payment whose token came back failed', { payment: id, error: (err as Error).message }));
        }
      },
    });
    this.swaps.on('reclaim', reclaimHandler(ctx, this.rows));
    this.sessions = new SessionBook(ctx);
    this.taker = new TokenTaker(ctx, this.reserve, this.rows, { policy: opts.policy ?? defaultPolicy, autoRefill: opts.autoRefill ?? true, onTaken: (id) => this.live.add(id) });
  }

  /**
   * A cashuB token from `mint` worth exactly `amountSat` to the provider (plus the mint's input
   * fee it will pay), its proofs pending for `paymentId` before this returns. No mint call when
   * the offline selection fits (the usual case); else one swap.
   */
  async takeToken(req: TakeTokenRequest): Promise<TakenToken> {
    const { mint, tokenMint } = this.mintsFor(req);
    const spec: TakeSpec = { paymentId: req.paymentId, mint, tokenMint, amountSat: positive(req.amountSat), providerUrl: req.providerUrl, providerVersion: req.providerVersion ?? null, sessionId: null, replace: false, inTransaction: req.inTransaction };
    return this.taker.take(spec, req.policy);
  }

  /**
   * For the node's own `minimum_balance_required` 402/413 only (the token was NOT redeemed):
   * replace the payment's token by one worth `amountSat` that keeps every proof of the old one (the
   * provider has seen them) and adds fresh ones. Same payment, same provider. Asks the mint first
   * (NUT-07): a token the mint says is spent or in flight was redeemed (an upstream 402 after
   * redemption) and is refused with PaymentStateError, as is a payment with a banked refund -
   * call `refunded` instead. MintUnavailableError if the mint cannot be asked. Returns the new token.
   */
  async topUp(paymentId: string, amountSat: SatIn, opts: TopUpOptions = {}): Promise<TakenToken> {
    const row = this.rows.require(paymentId, 'pending');
    const amount = positive(amountSat);
    const refunds = this.changeQueue.rowsOf(paymentId).filter((c) => c.kind === 'refund' && c.state !== 'invalid');
    if (refunds.length) throw new PaymentStateError(`payment ${paymentId} has a refund banked: its token was redeemed, so it cannot be topped up`);
    const proofs = this.ctx.store.pendingOf(paymentId);
    if (proofs.length === 0) throw new PaymentStateError(`payment ${paymentId} has no pending token (a reclaim holds it)`);
    const states = await this.ctx.mints.checkStates(row.mint, row.unit, proofs.map(toCashuProof));
    const redeemed = states.filter((st) => st !== 'UNSPENT').length;
    if (redeemed > 0) throw new PaymentStateError(`payment ${paymentId}: the mint says ${redeemed} of its ${proofs.length} proofs are spent or in flight; the token was redeemed and cannot be topped up`);
    const spec: TakeSpec = { paymentId, mint: row.mint, tokenMint: row.tokenMint, amountSat: amount, providerUrl: row.providerUrl, providerVersion: row.providerVersion, sessionId: row.sessionId, replace: true, inTransaction: opts.inTransaction };
    return this.taker.take(spec, opts.policy);
  }

  /**
   * The provider took the token: its proofs are spent (ledger: payment_sent) and the change
   * token, if any, waits in the queue to be swapped in. Synchronous; may run inside the caller's
   * transaction. While a reclaim holds the proofs, or after the payment was reclaimed, refunded
   * or written off, the change is banked all the same (and the reclaim settles the proofs).
   * A "change" token that is our own token echoed back settles nothing: the payment is reclaimed.
   * `usageMissing`: the answer had no usage, so no change will come (flag `usage_missing`).
   * Throws PaymentStateError only for a payment settled already.
   */
  settle(paymentId: string, changeToken?: string | null, opts: SettleOptions = {}): PaymentOutcome {
    const { ctx } = this;
    const row = this.rows.require(paymentId);
    if (row.state === 'settled') throw new PaymentStateError(`payment ${paymentId} is settled already`);
    // Our own token echoed back (a node does that when it did NOT redeem it): nothing was spent;
    // the change queue recognises it and the payment is reclaimed instead.
    const echo = changeToken?.trim() === row.token;
    ctx.db.transaction(() => {
      if (echo) this.rows.addFlag(paymentId, 'settled_with_own_token');
      else if (row.state === 'pending' || row.state === 'refund_wait') {
        if (!settleSpent(ctx, this.rows, row)) this.rows.addFlag(paymentId, 'settled_during_reclaim'); // the reclaim swap holds the proofs: it settles them
      } else if (changeToken) this.rows.addFlag(paymentId, 'late_change');
      // A stream that ended without usage: the node kept the whole token. A charge, flagged.
      if (opts.usageMissing) this.rows.addFlag(paymentId, 'usage_missing');
      // The change is banked whatever state the payment is in: it is money either way.
      if (changeToken) this.changeQueue.enqueue(paymentId, 'change', changeToken, row.mint, row.unit);
    })();
    this.live.delete(paymentId);
    return this.outcome(paymentId)!;
  }

  /**
   * The provider redeemed the token and handed back `refundToken` as its refund (an upstream
   * error's `refund_token`, e.g. the upstream's 402/413/429/5xx after redemption): the proofs are
   * spent (ledger: payment_sent) and never reused, the refund waits in the change queue as THIS
   * payment's refund (kind 'refund'), and the payment is 'refunded'. Synchronous; may run inside
   * the caller's transaction. After the payment ended otherwise, the token is banked all the same.
   */
  refunded(paymentId: string, refundToken: string): PaymentOutcome {
    const { ctx } = this;
    const row = this.rows.require(paymentId);
    ctx.db.transaction(() => {
      if (row.state === 'pending' || row.state === 'refund_wait') {
        if (!settleSpent(ctx, this.rows, row, 'refunded')) this.rows.addFlag(paymentId, 'refunded_during_reclaim'); // the reclaim swap holds the proofs: it settles them
      } else this.rows.addFlag(paymentId, 'late_refund');
      this.changeQueue.enqueue(paymentId, 'refund', refundToken, row.mint, row.unit);
    })();
    this.live.delete(paymentId);
    return this.outcome(paymentId)!;
  }

  /**
   * Bank a token a provider handed back that is not known to be this payment's refund (e.g. an
   * X-Cashu header on the node's own 402). Queued like change; counted once swapped. It never
   * stands in for the refund: recovery still asks the provider's refund endpoint. A token whose
   * proofs are our own (an echo of what we sent) is recognised and not counted.
   */
  bankToken(paymentId: string, token: string): void {
    const row = this.rows.get(paymentId);
    this.changeQueue.enqueue(paymentId, 'change', token, row?.mint ?? this.ctx.mints.defaultMint(), row?.unit ?? this.unit);
  }

  /**
   * Why proofs pending for this reason may already be spent at the mint (for `audit verify`):
   * a payment in flight in this process, one awaiting its provider's refund, a swap running now;
   * null when nothing explains it.
   */
  explainPending(kind: PendingKind, ref: string): string | null {
    if (kind === 'swap') return this.swaps.isRunning(ref) ? 'swap running' : null;
    if (kind !== 'request') return null;
    if (this.live.has(ref) || this.resolving.has(ref)) return 'payment in flight';
    return this.rows.get(ref)?.state === 'refund_wait' ? 'refund awaited from the provider' : null;
  }

  /**
   * A token to deposit into a session at the provider's balance mode (`POST /v1/balance/create` or
   * `/topup`): taken like any payment, its proofs pending until `sessionDeposited` (the node took
   * it) or `reclaim` (it did not, or the answer was lost: the mint tells).
   */
  async sessionDeposit(req: SessionDepositRequest): Promise<TakenToken> {
    const { mint, tokenMint } = this.mintsFor(req);
    this.sessions.openFor(req.sessionId, req.providerUrl, mint, false); // checked now, written with the token
    const spec: TakeSpec = {
      paymentId: req.paymentId ?? newId(`${req.sessionId}.deposit`), mint, tokenMint, amountSat: positive(req.amountSat), providerUrl: req.providerUrl,
      providerVersion: req.providerVersion ?? null, sessionId: req.sessionId, replace: false,
      inTransaction: (taken) => {
        this.sessions.openFor(req.sessionId, req.providerUrl, mint, true);
        req.inTransaction?.(taken);
      },
    };
    return this.taker.take(spec);
  }

  /** The provider credited the deposit token: its proofs are spent and the session holds its value less the input fee. */
  sessionDeposited(paymentId: string, evidence?: { balanceMsat?: number }): SessionSummary {
    const row = this.rows.require(paymentId, 'pending');
    if (!row.sessionId) throw new PaymentError(`payment ${paymentId} is not a session deposit`);
    const sessionId = row.sessionId;
    this.ctx.db.transaction(() => {
      if (!depositTaken(this.ctx, this.rows, this.sessions, row, evidence ?? {})) throw new PaymentStateError(`deposit ${paymentId} has no pending proofs (a reclaim holds them)`);
    })();
    this.live.delete(paymentId);
    return this.sessions.require(sessionId);
  }

  /** A request charged against the session (`costMsat` as the provider reported it; synchronous, may run in the caller's transaction). */
  sessionCharge(sessionId: string, costMsat: number, requestId: string): SessionSummary {
    this.ctx.db.transaction(() => this.sessions.charge(sessionId, costMsat, requestId))();
    return this.sessions.require(sessionId);
  }

  /**
   * The provider refunded the session's balance (`POST /v1/balance/refund`): the token waits in the
   * change queue; once swapped in the session closes (what the node kept beyond the charges booked
   * is charged, flagged). `null`: nothing to refund (the node says no balance): it closes now.
   */
  sessionRefund(sessionId: string, refundToken: string | null, evidence?: unknown): SessionSummary {
    this.ctx.db.transaction(() => this.sessions.refund(sessionId, refundToken, evidence, (s, token) => this.changeQueue.enqueue(sessionId, 'session_refund', token, s.mint, s.unit)))();
    return this.sessions.require(sessionId);
  }

  /** The provider will not give the session's balance back (it vanished, or refuses): a loss with the evidence. */
  sessionLost(sessionId: string, evidence: unknown): SessionSummary {
    this.ctx.db.transaction(() => this.sessions.lose(sessionId, evidence, true))();
    return this.sessions.require(sessionId);
  }

  session(sessionId: string): SessionSummary | undefined {
    return this.sessions.get(sessionId);
  }

  /** Money held at providers in open sessions, per provider and mint. */
  sessionExposure(): SessionExposure[] {
    return this.sessions.exposure();
  }

  /** Is this payment's token out on behalf of a caller in this process (so recovery must not touch it)? */
  isLive(paymentId: string): boolean {
    return this.live.has(paymentId);
  }

  /**
   * The attempt failed before the provider (we think) took the token: ask the mint (NUT-07).
   * Unspent -> swapped back to fresh proofs (the provider saw the secrets); spent -> the
   * provider's refund endpoint, else a loss with evidence. Throws MintUnavailableError if the
   * mint cannot be asked; the payment stays pending and recovery tries again.
   */
  async reclaim(paymentId: string): Promise<ResolveResult> {
    // The caller gives the token up: should the mint be unreachable now, recovery retries later.
    this.live.delete(paymentId);
    const result = await this.resolve(paymentId);
    this.emit(paymentId);
    return result;
  }

  /** Settle a payment whose outcome is unknown (one resolution at a time per payment). */
  resolve(paymentId: string): Promise<ResolveResult> {
    const running = this.resolving.get(paymentId);
    if (running) return running;
    const run = resolvePayment(this, paymentId).finally(() => this.resolving.delete(paymentId));
    this.resolving.set(paymentId, run);
    return run;
  }

  /** Resume unfinished swaps, resolve orphaned payments, swap in queued change (see recovery.ts). */
  recover(): Promise<PaymentsRecoveryReport> {
    return recoverPayments(this);
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
    if (this.ownsSwaps) await this.swaps.engine.close();
  }

  /** The money story of one payment so far. */
  outcome(paymentId: string): PaymentOutcome | undefined {
    const row = this.rows.get(paymentId);
    if (!row) return undefined;
    return toOutcome(row, this.changeQueue.rowsOf(paymentId));
  }

  /** Called whenever a payment's outcome changes after takeToken (change received or refused, reclaimed, refunded, lost). */
  onOutcome(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tokens taken and how many needed a mint round trip (for mint_roundtrips_per_request). */
  stats(): { tokens: number; roundtrips: number; mintCalls: number; refills: number; changeSwaps: number; changeTokens: number } {
    return { ...this.rows.stats(), mintCalls: this.swaps.mintCalls, refills: this.reserve.refills, changeSwaps: this.changeQueue.swapsRun, changeTokens: this.changeQueue.tokensSwapped };
  }

  /** Our mint (trusted) and its spelling in the token (as the provider lists it); the provider URL required. */
  private mintsFor(req: { mint: string; tokenMint?: string; providerUrl: string }): { mint: string; tokenMint: string } {
    const mint = this.ctx.mints.assertTrusted(req.mint);
    const tokenMint = req.tokenMint ?? mint;
    if (tokenMint !== mint && mintKey(tokenMint) !== mint) throw new PaymentError(`the token's mint ${tokenMint} is not the wallet's mint ${mint}`);
    if (!req.providerUrl) throw new PaymentError('a payment needs the URL of the provider it goes to');
    return { mint, tokenMint };
  }

  /** @internal recovery: a session deposit the node redeemed */
  depositTaken(row: PaymentRow, evidence: unknown): boolean {
    return depositTaken(this.ctx, this.rows, this.sessions, row, evidence);
  }

  /** @internal tell the listeners */
  emit(paymentId: string): void {
    if (this.listeners.size === 0) return;
    const o = this.outcome(paymentId);
    if (o) for (const l of this.listeners) l(o);
  }

  /** @internal the refund endpoint options recovery uses */
  get refund(): ResolveOptions & { fetch: FetchLike } {
    return { ...this.opts.refund, fetch: this.opts.fetch ?? this.opts.refund?.fetch ?? ((url, init) => fetch(url, init)) };
  }

  /** @internal output denominations for proofs coming back (the reserve's missing ones first) */
  denominationsFor(mint: string, amountSat: number): number[] {
    return this.reserve.denominationsFor(mint, amountSat);
  }
}

/** A payment amount: a positive whole number of sats (PaymentError otherwise). */
function positive(amountSat: SatIn): Sat {
  if (!Number.isSafeInteger(amountSat) || amountSat <= 0) throw new PaymentError(`a payment must be a positive whole number of sats, got ${amountSat}`);
  return sat(amountSat);
}
