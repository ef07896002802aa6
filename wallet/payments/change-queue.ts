// The persistent change queue: change (and refund) tokens from providers wait in SQLite until
// swapped in at the mint, off the request path. Tokens of the same mint, unit and kind are
// batched into one swap (one round trip, one set of DLEQ checks) run by the swap engine, in a
// worker thread by default. A token counts as balance only once its swap is done.
//
// Failures: mint down or no answer -> retried with backoff until done (the swap row keeps the
// exact outputs, so a retry can never mint twice). Refused by the mint (already spent, bad
// signature, a keyset it does not list) -> a batch is split and each token retried alone; a token
// refused alone is 'invalid': the provider's money, not ours, flagged `change_invalid` with
// the mint's answer as evidence. A swap our side could not prepare (SwapFailure 'invalid':
// cashu-ts refusing to build the outputs, a bug) never showed the proofs to the mint, so it says
// nothing against the token: a batch is split the same way, and a token alone stays queued, tried
// again after a backoff, the reason on its row and in a log line - never refused for our fault.
// A token whose proofs are our own (a node echoes the token we sent on 400/422/503) is never
// swapped in: the row is 'own' and the payment those proofs belong to is resolved (NUT-07, then
// reclaimed) - counting it as change would count the same sats twice.
import { tokenMetadata } from '../cashu-b-read.ts';
import type { WalletContext } from '../context.ts';
import { UnsupportedUnitError, type SwapFailure } from '../errors.ts';
import type { LedgerKind } from '../ledger.ts';
import { NUT_CODE } from '../mints.ts';
import { backoffMs, type SwapRecord, type SwapService } from '../swap/service.ts';
import type { ProofJson } from '../swap/steps.ts';
import { sortBatch } from './change-tokens.ts';
import type { Reserve } from './reserve.ts';
import { changeStatements, fromDb, type ChangeKind, type ChangeRow, type ChangeStatements, type DbRow } from './change-rows.ts';

export type { ChangeKind, ChangeRow, ChangeState } from './change-rows.ts';

export interface ChangeQueueOptions {
  /** Tokens per swap; default 10 (DESIGN.md step 6: ten per swap halves the per-token cost). */
  maxBatch?: number;
  /** Wait this long after an enqueue so more tokens can join the batch; default 1000 ms (the reserve, not the change, pays the next requests). */
  batchDelayMs?: number;
  /** Background tick for retries; default 1000 ms. */
  pollMs?: number;
  /** Called (after commit) when a payment's change is received, refused or lost. */
  onSettled?: (paymentId: string) => void;
  /** Tokens made of our own proofs were handed back for these payments (the proofs' owners): resolve them. */
  onOwnProofs?: (paymentIds: string[]) => Promise<void>;
  /** Synchronous, inside the transaction that receives (ledger rows written) or refuses these rows. */
  inTransaction?: { received(rows: ChangeRow[]): void; refused(rows: ChangeRow[]): void };
}

export interface DrainReport {
  swaps: number;
  received: number;
  invalid: number;
  retrying: number;
}

const KIND_LEDGER: Record<ChangeKind, LedgerKind> = { change: 'change_received', refund: 'refund', session_refund: 'session_refund' };
/** The swap purpose each kind is swapped in with (a session's refund is a refund at the mint). */
const KIND_PURPOSE: Record<ChangeKind, 'change' | 'refund'> = { change: 'change', refund: 'refund', session_refund: 'refund' };

export class ChangeQueue {
  private readonly s: ChangeStatements;
  private readonly maxBatch: number;
  private readonly batchDelayMs: number;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | null = null;
  private kickTimer: NodeJS.Timeout | null = null;
  private draining: Promise<DrainReport> | null = null;
  private again = false;
  /** Swaps run by this queue, and tokens they carried (for the batching figures). */
  swapsRun = 0;
  tokensSwapped = 0;

  constructor(
    private readonly ctx: WalletContext,
    private readonly swaps: SwapService,
    private readonly reserve: Reserve | null,
    private readonly opts: ChangeQueueOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 10;
    this.batchDelayMs = opts.batchDelayMs ?? 1_000;
    this.pollMs = opts.pollMs ?? 1_000;
    this.s = changeStatements(ctx.db);
    for (const purpose of ['change', 'refund'] as const) {
      swaps.on(purpose, {
        done: (row, r) => {
          this.onDone(row, r.fee);
          this.reserve?.noteReceived(row.mint, r.proofs.map((p) => p.amount));
        },
        rejected: (row, failure) => this.onRejected(this.rowsOfSwap(row.id), failure),
        lost: (row, evidence) => this.refuseRows(this.rowsOfSwap(row.id), 'lost', 'swap outcome unknown', evidence),
      });
    }
  }

  /**
   * Queue a change or refund token (synchronous: call it inside the transaction that settles the
   * payment). A token that cannot be parsed, or comes from an untrusted mint, is recorded as
   * 'invalid' at once. The same token handed over twice for a payment (a refund_token that the
   * refund endpoint also returned) is queued once: the existing row is returned. Returns the row.
   */
  enqueue(paymentId: string, kind: ChangeKind, token: string, fallbackMint: string, fallbackUnit = 'sat'): ChangeRow {
    const text = token.trim();
    const already = this.s.sameToken.get(paymentId, text) as DbRow | undefined;
    if (already) return fromDb(already);
    const now = this.ctx.clock();
    let mint = fallbackMint;
    let unit = fallbackUnit;
    let claimed = 0;
    let refusal: { error: string; evidence: unknown } | null = null;
    try {
      // cashu-ts's getTokenMetadata with amount.toNumber(), read directly for a plain cashuB token.
      ({ mint, unit, amount: claimed } = tokenMetadata(text));
      if (!this.ctx.mints.isTrusted(mint)) refusal = { error: 'token from an untrusted mint', evidence: { reason: 'untrusted_mint', mint } };
      else mint = this.ctx.mints.assertTrusted(mint);
      // A node returns change in the unit of the token it was paid with; another unit is not
      // our change (and a unit the mint has no keyset for would be retried forever).
      if (!refusal && unit !== fallbackUnit) refusal = { error: `token in unit ${JSON.stringify(String(unit).slice(0, 40))}, not ${fallbackUnit}`, evidence: { reason: 'wrong_unit', unit: String(unit).slice(0, 40) } };
      if (!Number.isSafeInteger(claimed)) refusal = { error: 'token amount out of range', evidence: { reason: 'amount_out_of_range' } };
      else if (claimed <= 0) refusal = { error: 'token has no value', evidence: { reason: 'empty' } };
    } catch (err) {
      refusal = { error: 'not a Cashu token', evidence: { reason: 'undecodable', detail: (err as Error).message, length: token.length } };
    }
    const state = refusal ? 'invalid' : 'queued';
    const evidence = refusal ? JSON.stringify(refusal.evidence) : null;
    const info = this.s.insert.run(paymentId, kind, mint, unit, text, claimed, state, refusal?.error ?? null, evidence, now, now, now);
    // The row as inserted (the table's defaults for the rest), not read back: this runs in the settlement's transaction.
    const row = fromDb({ id: Number(info.lastInsertRowid), payment_id: paymentId, kind, mint, unit, token: text, claimed, state, swap_id: null,
      solo: 0, attempts: 0, next_at: now, received: null, fee: null, error: refusal?.error ?? null, evidence });
    if (refusal) this.notify([row]);
    else this.kick();
    return row;
  }

  rowsOf(paymentId: string): ChangeRow[] {
    return (this.s.byPayment.all(paymentId) as DbRow[]).map(fromDb);
  }

  /** Tokens waiting (queued or in a swap). */
  openCount(): number {
    return (this.s.openCount.get() as { n: number }).n;
  }

  /** Run the background loop: a batch shortly after each enqueue, and retries every pollMs. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.drain().catch((err) => this.ctx.logger.error('change queue failed', { error: (err as Error).message })), this.pollMs);
    this.timer.unref();
    this.kick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.kickTimer) clearTimeout(this.kickTimer);
    this.timer = this.kickTimer = null;
  }

  /** Wait for the running drain, if any. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining.catch(() => {});
  }

  private kick(): void {
    if (!this.timer || this.kickTimer) return;
    this.kickTimer = setTimeout(() => {
      this.kickTimer = null;
      void this.drain().catch((err) => this.ctx.logger.error('change queue failed', { error: (err as Error).message }));
    }, this.batchDelayMs);
    this.kickTimer.unref();
  }

  /** Swap every due token now (batched); also re-sends unanswered swaps whose time has come. */
  drain(): Promise<DrainReport> {
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    const run = (async () => {
      const total = emptyReport();
      do {
        this.again = false;
        addTo(total, await this.drainOnce());
      } while (this.again);
      return total;
    })().finally(() => {
      this.draining = null;
    });
    this.draining = run;
    return run;
  }

  private async drainOnce(): Promise<DrainReport> {
    const report = emptyReport();
    for (const outcome of await this.swaps.resumeDue()) {
      report.swaps++;
      if (outcome.status === 'retry') report.retrying++;
    }
    // Batches of the same mint, unit and kind, up to maxBatch; a token under suspicion goes alone.
    const groups = new Map<string, { row: ChangeRow; token: string }[]>();
    for (const r of this.s.due.all(this.ctx.clock()) as DbRow[]) {
      const key = r.solo ? `solo ${r.id}` : `${r.mint}\n${r.unit}\n${r.kind}`;
      let group = groups.get(key);
      if (!group) groups.set(key, (group = []));
      group.push({ row: fromDb(r), token: r.token });
    }
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += this.maxBatch) addTo(report, await this.swapBatch(group.slice(i, i + this.maxBatch)));
    }
    return report;
  }

  private async swapBatch(batch: { row: ChangeRow; token: string }[]): Promise<DrainReport> {
    const report = emptyReport();
    const { ctx } = this;
    const { mint, unit, kind } = batch[0].row;
    let wallet;
    try {
      wallet = await ctx.mints.wallet(mint, unit);
    } catch (err) {
      if (err instanceof UnsupportedUnitError) {
        // Retrying cannot help: no keyset of this unit to swap into.
        this.refuseRows(batch.map((b) => b.row), 'invalid', err.message, { reason: 'wrong_unit', unit });
        report.invalid += batch.length;
        return report;
      }
      this.later(batch.map((b) => b.row), (err as Error).message);
      report.retrying += batch.length;
      return report;
    }
    const { members, refused, ownPayments } = sortBatch(batch, unit, (token) => wallet.decodeToken(token), (secret) => ctx.store.get(secret));
    for (const r of refused) {
      this.refuseRows([r.row], r.state, r.error, r.evidence);
      if (r.state === 'invalid') report.invalid++;
    }
    if (ownPayments.length > 0) await this.opts.onOwnProofs?.(ownPayments);
    if (members.length === 0) return report;
    const foreign = members.flatMap((m) => m.proofs);
    const total = foreign.reduce((a, p) => a + p.amount, 0);
    this.swapsRun++;
    this.tokensSwapped += members.length;
    report.swaps++;
    let outcome;
    try {
      outcome = await this.swaps.start({
        mint, unit, purpose: KIND_PURPOSE[kind], ref: members.length === 1 ? members[0].row.paymentId : null, foreign,
        denominations: this.reserve?.denominationsFor(mint, total) ?? [],
        onPrepared: (swapId) => {
          for (const m of members) {
            // The claimed amount is what the proofs add up to, not what the token's metadata said.
            this.s.setClaimed.run(m.proofs.reduce((a, p) => a + p.amount, 0), m.row.id);
            this.s.toSwapping.run(swapId, ctx.clock(), m.row.id);
          }
        },
      });
    } catch (err) {
      this.later(members.map((m) => m.row), (err as Error).message);
      report.retrying += members.length;
      return report;
    }
    if (outcome.status === 'done') report.received += members.length;
    else if (outcome.status === 'retry') report.retrying += members.length;
    else if (outcome.status === 'rejected') {
      // Refused before anything was written (the mint's keyset list, or a swap we could not prepare)?
      if (outcome.swapId === null) ctx.db.transaction(() => this.onRejected(members.map((m) => m.row), outcome.failure))();
      if (outcome.failure.kind === 'invalid') report.retrying += members.length;
      else if (members.length === 1) report.invalid++;
      else if (outcome.failure.kind === 'rejected' && outcome.failure.mintCode === NUT_CODE.PROOFS_ALREADY_SPENT) {
        report.invalid += await this.sortOutSpent(members);
      }
    }
    return report;
  }

  /**
   * A batch was refused because some proof is already spent: one NUT-07 call tells which tokens
   * (refused, with the mint's answer as evidence); the others go back to being batched.
   */
  private async sortOutSpent(members: { row: ChangeRow; proofs: ProofJson[] }[]): Promise<number> {
    const { ctx } = this;
    const { mint, unit } = members[0].row;
    let states: string[];
    try {
      states = await ctx.mints.checkStates(mint, unit, members.flatMap((m) => m.proofs));
    } catch {
      return 0; // each token will be tried alone instead
    }
    let i = 0;
    let refused = 0;
    ctx.db.transaction(() => {
      for (const m of members) {
        const mine = states.slice(i, i + m.proofs.length);
        i += m.proofs.length;
        if (mine.some((st) => st === 'SPENT')) {
          this.refuseRows([m.row], 'invalid', 'change token already spent', { reason: 'already_spent', mint_code: NUT_CODE.PROOFS_ALREADY_SPENT, nut07: mine });
          refused++;
        } else this.s.requeue.run(0, ctx.clock(), null, ctx.clock(), m.row.id);
      }
    })();
    return refused;
  }

  private rowsOfSwap(swapId: string): ChangeRow[] {
    return (this.s.bySwap.all(swapId) as DbRow[]).map(fromDb);
  }

  private get(id: number): ChangeRow {
    return fromDb(this.s.get.get(id) as DbRow);
  }

  /** Inside the swap's transaction: each token received; fee shared by proof value, rounding to the first. */
  private onDone(row: SwapRecord, fee: number): void {
    const { ctx } = this;
    const rows = this.rowsOfSwap(row.id);
    const total = rows.reduce((a, r) => a + r.claimed, 0);
    let feeLeft = fee;
    const shares = rows.map((r) => {
      const share = total > 0 ? Math.floor((fee * r.claimed) / total) : 0;
      feeLeft -= share;
      return share;
    });
    if (rows.length) shares[0] += feeLeft;
    rows.forEach((r, i) => {
      this.s.received.run(r.claimed - shares[i], shares[i], ctx.clock(), r.id);
      ctx.ledger.record({ kind: KIND_LEDGER[r.kind], mint: r.mint, unit: r.unit, amount: r.claimed, ref: r.paymentId, evidence: { swap: row.id } });
    });
    ctx.ledger.record({ kind: 'mint_fee', mint: row.mint, unit: row.unit, amount: -fee, ref: row.id, evidence: { purpose: row.purpose, tokens: rows.length } });
    this.opts.inTransaction?.received(this.rowsOfSwap(row.id));
    this.notify(rows);
  }

  /**
   * Nothing happened at the mint. A batch is split so each token is tried alone; a lone token is
   * refused - unless the swap failed on our side (kind 'invalid'): then it is kept for a retry.
   */
  private onRejected(rows: ChangeRow[], failure: SwapFailure): void {
    const { ctx } = this;
    if (rows.length > 1) {
      for (const r of rows) this.s.requeue.run(1, ctx.clock(), failure.message, ctx.clock(), r.id);
      this.again = true;
      return;
    }
    if (failure.kind === 'invalid') return this.keepForRetry(rows[0], failure.message);
    const evidence = {
      reason: failure.kind === 'rejected' && failure.mintCode === NUT_CODE.PROOFS_ALREADY_SPENT ? 'already_spent' : 'refused',
      mint_code: failure.kind === 'rejected' ? failure.mintCode : undefined,
      mint_answer: failure.message,
    };
    this.refuseRows(rows, 'invalid', failure.message, evidence);
  }

  /**
   * The token's swap could not be prepared here (the mint never saw its proofs): it stays queued,
   * alone, tried again after a backoff; the reason is on its row (the payment's outcome shows it).
   */
  private keepForRetry(r: ChangeRow, message: string): void {
    const { ctx } = this;
    // A row already in a swap counted this attempt when the swap was written.
    const attempts = r.attempts + (r.state === 'swapping' ? 0 : 1);
    const retryInMs = backoffMs(attempts);
    this.s.keep.run(attempts, ctx.clock() + retryInMs, `not swapped, kept for a retry: the swap could not be prepared here (${message})`, ctx.clock(), r.id);
    ctx.logger.warn('change token kept for a retry: its swap could not be prepared here, the mint never saw it', {
      payment: r.paymentId, kind: r.kind, mint: r.mint, claimed: r.claimed, attempts, retry_in_ms: retryInMs, error: message,
    });
  }

  private refuseRows(rows: ChangeRow[], state: 'invalid' | 'lost' | 'own', error: string, evidence: unknown): void {
    this.ctx.db.transaction(() => {
      for (const r of rows) this.s.refuse.run(state, error, JSON.stringify(evidence), this.ctx.clock(), r.id);
      this.opts.inTransaction?.refused(rows.map((r) => this.get(r.id)));
    })();
    this.notify(rows);
  }

  private later(rows: ChangeRow[], error: string): void {
    const { ctx } = this;
    ctx.db.transaction(() => {
      for (const r of rows) this.s.retryLater.run(ctx.clock() + backoffMs(r.attempts + 1), error, ctx.clock(), r.id);
    })();
  }

  private notify(rows: ChangeRow[]): void {
    const cb = this.opts.onSettled;
    if (!cb) return;
    const ids = new Set(rows.map((r) => r.paymentId));
    // After the surrounding transaction commits.
    setImmediate(() => ids.forEach((id) => cb(id)));
  }
}

const emptyReport = (): DrainReport => ({ swaps: 0, received: 0, invalid: 0, retrying: 0 });

function addTo(total: DrainReport, r: DrainReport): void {
  total.swaps += r.swaps;
  total.received += r.received;
  total.invalid += r.invalid;
  total.retrying += r.retrying;
}
