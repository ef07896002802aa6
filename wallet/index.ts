// The wallet as the daemon and the CLI see it: one CashuWallet per process that owns the
// wallet (the daemon, or a CLI command holding the lock when no daemon runs).
import { setGlobalRequestOptions } from '@cashu/cashu-ts';
import { nullLogger, type Logger } from '../protocol/logger.ts';
import type { WalletContext } from './context.ts';
import { assertFundingInvoice } from './bolt11.ts';
import { FundingError, NwcError } from './errors.ts';
import {
  checkFunding, createFundingQuote, getFundingQuote, resumeFunding, waitForFunding,
  type FundingQuote, type WaitOptions,
} from './funding.ts';
import { verifyInvariant, type InvariantReport } from './invariant.ts';
import { Ledger, type LedgerQuery, type LedgerRow } from './ledger.ts';
import { WalletLock } from './lock.ts';
import { MintRegistry } from './mints.ts';
import { loadNwcUri, saveNwc, withNwc, type NwcInfo } from './nwc.ts';
import { receiveToken, type ReceiveResult } from './receive.ts';
import { migrateWallet } from './schema.ts';
import { databaseFile, openDatabase, type DB } from './sqlite.ts';
import { ProofStore, type BalanceRow, type Clock } from './store.ts';
import { resumeSwaps } from './swap.ts';
import { AUTO_TOPUP_TAG, decideTopup, recentTopups, type TopupDecision, type TopupPolicy } from './topup.ts';
import { resumeMelts, withdraw, type WithdrawResult } from './withdraw.ts';

export type { FundingQuote, InvariantReport, LedgerRow, NwcInfo, ReceiveResult, WithdrawResult, TopupPolicy };
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
}

export interface BalanceSummary {
  /** Spendable sats across all mints (sat units only). */
  totalSat: number;
  pendingSat: number;
  mints: (BalanceRow & { trusted: boolean })[];
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
  private readonly recoverySteps: { name: string; run: RecoveryStep }[] = [];
  private readonly autoTopup?: TopupPolicy;
  private timer?: NodeJS.Timeout;

  constructor(opts: CashuWalletOptions) {
    migrateWallet(opts.db);
    setGlobalRequestOptions({ requestTimeout: opts.requestTimeoutMs ?? 20_000 });
    const clock = opts.clock ?? Date.now;
    const logger = opts.logger ?? nullLogger;
    this.dataDir = opts.dataDir;
    this.autoTopup = opts.autoTopup;
    this.ctx = {
      db: opts.db, clock, logger,
      store: new ProofStore(opts.db, clock),
      ledger: new Ledger(opts.db, clock),
      mints: new MintRegistry({ trusted: opts.mints, logger, clock }),
    };
    this.addRecoveryStep('funding quotes', resumeFunding);
    this.addRecoveryStep('withdrawals', resumeMelts);
    this.addRecoveryStep('received tokens', resumeSwaps);
  }

  get store(): ProofStore { return this.ctx.store; }
  get ledger(): Ledger { return this.ctx.ledger; }
  get mints(): MintRegistry { return this.ctx.mints; }

  /** Register more recovery (the payment path's request-pending proofs and change queue). */
  addRecoveryStep(name: string, run: RecoveryStep): void {
    this.recoverySteps.push({ name, run });
  }

  /** Resolve every unfinished quote, melt and swap. Run on start; safe to run again. */
  async recover(): Promise<RecoveryReport> {
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

  /** Recover now, then every `intervalMs` recover again and consider an auto top-up. */
  start(intervalMs = 30_000): Promise<RecoveryReport> {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
    return this.recover();
  }

  private async tick(): Promise<void> {
    await this.recover();
    await this.maybeTopUp().catch((err) => this.ctx.logger.warn('auto top-up failed', { error: (err as Error).message }));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  balance(): BalanceSummary {
    const rows = this.store.balances().map((b) => ({ ...b, trusted: this.mints.isTrusted(b.mint) }));
    return { ...satTotals(rows), mints: rows };
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
    return receiveToken(this.ctx, token);
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

  verify(opts: { checkMints?: boolean } = {}): Promise<InvariantReport> {
    return verifyInvariant(this.ctx, opts);
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
    const { quote } = await this.fund(decision.amountSat, { useNwc: true, payVia: AUTO_TOPUP_TAG, timeoutMs: 120_000 });
    return { ...decision, quote };
  }
}

/** Open the wallet of a data directory in this process, holding the writer lock. */
export function openLocalWallet(opts: { dataDir: string; mints: readonly string[]; logger?: Logger; clock?: Clock; autoTopup?: TopupPolicy }): { wallet: CashuWallet; close: () => void } {
  const lock = WalletLock.acquire(opts.dataDir);
  let db: DB;
  try {
    db = openDatabase(databaseFile(opts.dataDir));
  } catch (err) {
    lock.release();
    throw err;
  }
  const wallet = new CashuWallet({ db, ...opts });
  return {
    wallet,
    close: () => {
      wallet.stop();
      db.close();
      lock.release();
    },
  };
}

export { walletControlHandlers } from './control.ts';
