// The wallet as the daemon and the CLI see it: one CashuWallet per process that owns the wallet
// (the daemon, or a CLI command holding the lock when no daemon runs), opened through
// openWallet (wallet/open.ts). It owns the one swap service (every purpose: receive, change,
// refund, split, reclaim) and the router's payment path on it.
import { setGlobalRequestOptions } from '@cashu/cashu-ts';
import type { DB } from '../db/sqlite.ts';
import type { Logger } from '../protocol/logger.ts';
import { createWalletContext, type WalletContext } from './context.ts';
import { assertFundingInvoice } from './bolt11.ts';
import { FundingError, NwcError } from './errors.ts';
import {
  checkFunding, createFundingQuote, getFundingQuote, resumeFunding, waitForFunding,
  type FundingQuote, type WaitOptions,
} from './funding.ts';
import { verifyInvariant, type InvariantReport } from './invariant.ts';
import type { Ledger, LedgerQuery, LedgerRow } from './ledger.ts';
import type { MintRegistry } from './mints.ts';
import { loadNwcUri, saveNwc, withNwc, type NwcInfo } from './nwc.ts';
import { Payments, type PaymentsOptions, type SessionExposure } from './payments/index.ts';
import { receiveHandler, receiveToken, type ReceiveResult } from './receive.ts';
import { sweepUnspent, type SweepOptions, type SweepReport } from './sweep.ts';
import type { BalanceRow, Clock, ProofStore } from './store.ts';
import { WorkerSwapEngine, type SwapEngine } from './swap/engine.ts';
import { SwapService } from './swap/service.ts';
import { AUTO_TOPUP_TAG, decideTopup, recentTopups, type TopupDecision, type TopupPolicy } from './topup.ts';
import { resumeMelts, withdraw, type WithdrawResult } from './withdraw.ts';

export type { FundingQuote, InvariantReport, LedgerRow, NwcInfo, ReceiveResult, WithdrawResult, TopupPolicy, SessionExposure, SweepOptions, SweepReport };
export { WalletError } from './errors.ts';

export interface CashuWalletOptions {
  db: DB;
  dataDir: string;
  /** Trusted mint URLs. */
  mints: readonly string[];
  clock?: Clock;
  logger?: Logger;
  autoTopup?: TopupPolicy;
  /**
   * Abort a mint HTTP call after this long (cashu-ts global option; default 20 s). A timed-out
   * call has an unknown outcome and is settled by recovery, never assumed to have failed.
   */
  requestTimeoutMs?: number;
  /** Where swap crypto (blinding, DLEQ checks) runs; default a worker thread. */
  engine?: SwapEngine;
  /** The payment path's options (reserve, refund endpoint fetch, ...). */
  payments?: Omit<PaymentsOptions, 'swaps' | 'engine'>;
  /** Every commit so far on disk, off the event loop (WalletContext.flush); absent: durable commits use synchronous=FULL. */
  flush?: () => Promise<void>;
}

export interface BalanceSummary {
  /** Spendable sats across all mints (sat units only). */
  totalSat: number;
  pendingSat: number;
  mints: (BalanceRow & { trusted: boolean })[];
  /** Held at providers in open sessions (their promise, not our ecash), in all, and per provider. */
  heldSat: number;
  sessions: SessionExposure[];
}

export interface RecoveryReport {
  steps: { name: string; result?: unknown; error?: string }[];
}

export type RecoveryStep = (ctx: WalletContext) => Promise<unknown>;

export interface FundResult {
  quote: FundingQuote;
  paidVia: 'nwc' | 'invoice';
}

/** Spendable and pending sats across mints (sat units only), from per-mint balance rows. */
export function satTotals(rows: readonly BalanceRow[]): { totalSat: number; pendingSat: number } {
  const sat = rows.filter((r) => r.unit === 'sat');
  return { totalSat: sat.reduce((a, r) => a + r.unspent, 0), pendingSat: sat.reduce((a, r) => a + r.pending, 0) };
}

export class CashuWallet {
  readonly ctx: WalletContext;
  readonly dataDir: string;
  /** The one swap service: every purpose, its crypto on the engine (a worker thread by default). */
  readonly swaps: SwapService;
  /** The router's payment path: takeToken, topUp, settle, reclaim, bankToken, onOutcome. */
  readonly payments: Payments;
  private readonly recoverySteps: { name: string; run: RecoveryStep }[] = [];
  private readonly autoTopup?: TopupPolicy;
  private timer?: NodeJS.Timeout;
  /** The recovery pass running now (one at a time), and the periodic tick around it. */
  private recovering: Promise<RecoveryReport> | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  /** Aborts what a tick waits for (an auto top-up waiting for its invoice) when the wallet stops. */
  private readonly stopping = new AbortController();

  constructor(opts: CashuWalletOptions) {
    const requestTimeoutMs = opts.requestTimeoutMs ?? 20_000;
    setGlobalRequestOptions({ requestTimeout: requestTimeoutMs });
    this.dataDir = opts.dataDir;
    this.autoTopup = opts.autoTopup;
    this.ctx = createWalletContext(opts.db, opts);
    this.swaps = new SwapService(this.ctx, opts.engine ?? new WorkerSwapEngine({ requestTimeoutMs }));
    this.swaps.on('receive', receiveHandler(this.ctx));
    this.payments = new Payments(this.ctx, { ...opts.payments, swaps: this.swaps });
    this.addRecoveryStep('funding quotes', resumeFunding);
    this.addRecoveryStep('withdrawals', resumeMelts);
    // Every unfinished swap (received tokens too), orphaned payments, queued change.
    this.addRecoveryStep('swaps and payments', () => this.payments.recover());
  }

  get store(): ProofStore { return this.ctx.store; }
  get ledger(): Ledger { return this.ctx.ledger; }
  get mints(): MintRegistry { return this.ctx.mints; }

  /** Register more recovery, run after the wallet's own steps. */
  addRecoveryStep(name: string, run: RecoveryStep): void {
    this.recoverySteps.push({ name, run });
  }

  /**
   * Resolve every unfinished quote, melt and swap. Run on start; safe to run again. One pass at a
   * time: a call while a pass runs shares it.
   */
  recover(): Promise<RecoveryReport> {
    if (this.recovering) return this.recovering;
    const run = this.runSteps().finally(() => {
      if (this.recovering === run) this.recovering = null;
    });
    this.recovering = run;
    return run;
  }

  private async runSteps(): Promise<RecoveryReport> {
    const steps: RecoveryReport['steps'] = [];
    for (const s of this.recoverySteps) {
      try {
        steps.push({ name: s.name, result: await s.run(this.ctx) });
      } catch (err) {
        this.ctx.logger.warn('recovery step failed', { step: s.name, error: (err as Error).message });
        steps.push({ name: s.name, error: (err as Error).message });
      }
    }
    return { steps };
  }

  /**
   * Recover now, then every `intervalMs` recover again and consider an auto top-up; the change queue
   * and refund retries run in the background. `sweep`: after recovery and before the background work
   * starts, ask the mints about every unspent proof (sweepUnspent; its reports are the last step's
   * result) - after an unclean stop, or at every start (a checkstate call per 100 proofs).
   */
  async start(intervalMs = 30_000, opts: { sweep?: boolean } = {}): Promise<RecoveryReport> {
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
    const report = await this.recover();
    if (opts.sweep && !this.stopped) {
      try {
        report.steps.push({ name: 'sweep', result: await this.sweepUnspent() });
      } catch (err) {
        this.ctx.logger.warn('sweep failed', { error: (err as Error).message });
        report.steps.push({ name: 'sweep', error: (err as Error).message });
      }
    }
    if (!this.stopped) this.payments.start();
    return report;
  }

  private tick(): void {
    if (this.ticking || this.stopped) return;
    this.ticking = (async () => {
      await this.recover();
      if (this.stopped) return;
      await this.maybeTopUp().catch((err) => this.ctx.logger.warn('auto top-up failed', { error: (err as Error).message }));
    })().finally(() => {
      this.ticking = null;
    });
  }

  /** Stop the periodic tick and wait for a recovery pass or tick still running (its mint calls end within the request timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stopping.abort();
    await this.ticking?.catch(() => {});
    await this.recovering?.catch(() => {});
    await this.payments.stop();
    await this.swaps.idle();
    await this.swaps.engine.close();
  }

  balance(): BalanceSummary {
    const rows = this.store.balances().map((b) => ({ ...b, trusted: this.mints.isTrusted(b.mint) }));
    const sessions = this.payments.sessionExposure();
    return { ...satTotals(rows), mints: rows, heldSat: sessions.reduce((a, e) => a + e.heldSat, 0), sessions };
  }

  history(q: LedgerQuery = {}): LedgerRow[] {
    return this.ledger.list(q);
  }

  createFundingQuote(amountSat: number, opts: { mint?: string; payVia?: string } = {}): Promise<FundingQuote> {
    return createFundingQuote(this.ctx, amountSat, { mint: opts.mint, payVia: opts.payVia ?? (this.nwcConfigured() ? 'nwc' : undefined) });
  }

  /** One step: ask the mint and mint the proofs if the invoice is paid. */
  fundingStatus(quoteId: string): Promise<FundingQuote> {
    return checkFunding(this.ctx, quoteId);
  }

  getFundingQuote(quoteId: string): FundingQuote {
    return getFundingQuote(this.ctx, quoteId);
  }

  waitForFunding(quoteId: string, opts?: WaitOptions): Promise<FundingQuote> {
    return waitForFunding(this.ctx, quoteId, opts);
  }

  /**
   * Pay a funding quote's invoice through the stored NWC connection. A refusal (e.g.
   * insufficient balance) throws FundingError: nothing is minted, the quote stays unpaid.
   */
  async payWithNwc(quoteId: string): Promise<void> {
    const uri = loadNwcUri(this.dataDir);
    if (!uri) throw new NwcError('no NWC wallet connected: run `satroute wallet nwc <uri>` first');
    const q = getFundingQuote(this.ctx, quoteId);
    assertFundingInvoice(q.bolt11, q.amount, q.unit); // a quote stored before this check existed, too
    try {
      await withNwc(uri, (w) => w.payInvoice(q.bolt11));
    } catch (err) {
      // Make sure: the wallet may have paid before failing to answer.
      const after = await checkFunding(this.ctx, quoteId).catch(() => q);
      if (after.state === 'unpaid') throw new FundingError(`${(err as Error).message}; nothing was minted`, { cause: err });
    }
  }

  /** Create a quote, pay it through NWC when connected (unless payWithNwc is false), wait until minted. */
  async fund(amountSat: number, opts: WaitOptions & { mint?: string; useNwc?: boolean; onQuote?: (q: FundingQuote) => void; payVia?: string } = {}): Promise<FundResult> {
    const viaNwc = opts.useNwc !== false && this.nwcConfigured();
    const quote = await this.createFundingQuote(amountSat, { mint: opts.mint, payVia: opts.payVia ?? (viaNwc ? 'nwc' : undefined) });
    opts.onQuote?.(quote);
    if (viaNwc) await this.payWithNwc(quote.quoteId);
    const done = await this.waitForFunding(quote.quoteId, opts);
    if (done.state !== 'issued') throw new FundingError(`funding ${done.state}${done.error ? `: ${done.error}` : ''}`);
    return { quote: done, paidVia: viaNwc ? 'nwc' : 'invoice' };
  }

  receive(token: string): Promise<ReceiveResult> {
    return receiveToken(this.ctx, this.swaps, token);
  }

  withdraw(bolt11: string, opts: { mint?: string } = {}): Promise<WithdrawResult> {
    return withdraw(this.ctx, bolt11, opts);
  }

  nwcConfigured(): boolean {
    return loadNwcUri(this.dataDir) !== null;
  }

  /** Check a connection string with get_info/get_balance, then store it (0600). */
  async connectNwc(uri: string): Promise<NwcInfo> {
    const info = await withNwc(uri, (w) => w.info());
    if (!info.methods.includes('pay_invoice')) throw new NwcError('this NWC connection does not allow pay_invoice');
    saveNwc(this.dataDir, uri, info.alias, this.ctx.clock());
    this.ctx.logger.info('NWC wallet connected', { alias: info.alias, relays: info.relays });
    return info;
  }

  /** The money invariant (wallet/invariant.ts); payments in flight here explain their proofs spent at the mint. */
  verify(opts: { checkMints?: boolean } = {}): Promise<InvariantReport> {
    return verifyInvariant(this.ctx, { ...opts, explainPending: (kind, ref) => this.payments.explainPending(kind, ref) });
  }

  /**
   * Ask every mint about the proofs we count as unspent and settle what it says (wallet/sweep.ts):
   * spent ones are booked as a loss, pending ones held out of selection. Run at start after
   * recover(), before serving (after an unclean stop a rolled-back commit may have left proofs
   * unspent here that a provider already redeemed). A mint that does not answer is reported.
   */
  sweepUnspent(opts: SweepOptions = {}): Promise<SweepReport[]> {
    return sweepUnspent(this.ctx, opts);
  }

  trustMint(url: string): string {
    return this.mints.trust(url);
  }

  /** Fund through NWC if the balance is under the configured threshold (interval and daily cap apply). */
  async maybeTopUp(): Promise<TopupDecision & { quote?: FundingQuote }> {
    if (!this.autoTopup || !this.nwcConfigured()) return { fund: false, reason: 'above_threshold' };
    const now = this.ctx.clock();
    const decision = decideTopup(this.autoTopup, now, this.balance().totalSat, recentTopups(this.ctx, now));
    if (!decision.fund) return decision;
    this.ctx.logger.info('auto top-up', { amountSat: decision.amountSat });
    const { quote } = await this.fund(decision.amountSat, { useNwc: true, payVia: AUTO_TOPUP_TAG, timeoutMs: 120_000, signal: this.stopping.signal });
    return { ...decision, quote };
  }
}
