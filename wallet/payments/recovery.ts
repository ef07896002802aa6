// Settling payments whose outcome we do not know: the daemon crashed (or timed out) after the
// token went out, or the attempt failed and the token must come back. DESIGN.md step 7: the
// mint (NUT-07) says whether the provider redeemed the token; the provider's refund endpoint
// (ROUTSTR.md "Lost change") may hand back change. Every sat ends unspent, pending with a
// reason, spent with a receipt, or lost with evidence.
//
//   unspent at the mint -> swap the proofs back (the provider saw their secrets)
//   spent               -> POST <provider>/v1/balance/refund with the exact token:
//                          200: payment_sent + the refund token into the change queue
//                          425 / unreachable: ask again later, a bounded number of rounds
//                          404 soon after sending (by node version, protocol/refund.ts
//                          notFoundPendingMs): not recorded yet - ask again later, as 425
//                          404 after that / 410 / 422 (no refund by token) / rounds used up:
//                          loss with evidence
//   pending at the mint -> leave it; ask again later
// A session deposit (wallet/payments/sessions.ts) redeemed at the mint was credited to the
// session's balance at the node (its key is derived from the token): held there, not refunded.
// recoverPayments() resolves every payment-pending token except those a caller in this process
// still holds (taken, not yet settled or reclaimed); run it on start before serving, and again
// whenever convenient. A caller may settle a payment while it is being resolved: every step
// after a mint or provider call checks that it is still open.
import { notFoundPendingMs, pollRefund, type FetchLike, type RefundAnswer } from '../../protocol/refund.ts';
import type { WalletContext } from '../context.ts';
import { MintUnavailableError, PaymentStateError, ProofStateError } from '../errors.ts';
import { toCashuProof } from '../store.ts';
import { backoffMs, type SwapOutcome, type SwapService } from '../swap/service.ts';
import type { ChangeQueue } from './change-queue.ts';
import type { PaymentRow, PaymentRows } from './rows.ts';

export interface ResolveOptions {
  fetch?: FetchLike;
  /** Refund requests per round (425 is retried within a round); default 3. */
  pollAttempts?: number;
  /** Wait between them; default 2000 ms. */
  pollDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Rounds (spread out with backoff) before a missing refund becomes a loss; default 8. */
  maxRefundRounds?: number;
  /** How long after sending a 404 still means "not recorded yet"; default by node version (protocol/refund.ts notFoundPendingMs). */
  notFoundPendingMs?: (providerVersion: string | null) => number;
}

/** What recovery needs of the payment path (wallet/payments/index.ts), and nothing more. */
export interface RecoveryDeps {
  readonly ctx: WalletContext;
  readonly rows: PaymentRows;
  readonly swaps: Pick<SwapService, 'start' | 'resumeDue'>;
  readonly changeQueue: Pick<ChangeQueue, 'rowsOf' | 'enqueue' | 'drain'>;
  readonly refund: ResolveOptions & { fetch: FetchLike };
  /** Output denominations for `amountSat` of proofs swapped back (the reserve's missing ones first). */
  denominationsFor(mint: string, amountSat: number): number[];
  /** Is this payment's token out on behalf of a caller in this process? */
  isLive(paymentId: string): boolean;
  /** Resolve one payment (one resolution at a time per payment). */
  resolve(paymentId: string): Promise<ResolveResult>;
  /** Tell the listeners the payment's outcome changed. */
  emit(paymentId: string): void;
  /** A session deposit the node redeemed: credit its session (false if its proofs are not pending). */
  depositTaken(row: PaymentRow, evidence: unknown): boolean;
}

export type ResolveAction =
  | 'reclaimed'       // swapped back to fresh proofs
  | 'reclaiming'      // the swap back is waiting for the mint; it resumes in the background
  | 'refunded'        // the provider returned change; it waits in the change queue
  | 'deposited'       // a session deposit the node redeemed: held in the session
  | 'refund_wait'     // the provider has no answer yet; asked again later
  | 'lost'            // spent, nothing came back: a loss row with evidence
  | 'pending_at_mint' // the mint says the proofs are in flight; asked again later
  | 'unchanged';      // nothing to do (settled meanwhile) or the reclaim swap was refused

export interface ResolveResult {
  paymentId: string;
  action: ResolveAction;
  detail?: unknown;
}

/** Decide what happened to one payment's token and settle it accordingly. */
export async function resolvePayment(p: RecoveryDeps, paymentId: string): Promise<ResolveResult> {
  const { ctx } = p;
  const row = p.rows.require(paymentId);
  if (row.state === 'refund_wait') return askRefund(p, row, { mint: 'spent' });
  if (row.state !== 'pending') return { paymentId, action: 'unchanged', detail: { state: row.state } };
  const proofs = ctx.store.pendingOf(paymentId);
  if (proofs.length === 0) return { paymentId, action: 'reclaiming' }; // already in a reclaim swap
  const states = await ctx.mints.checkStates(row.mint, row.unit, proofs.map(toCashuProof));
  if (!stillOpen(p, paymentId, proofs.length)) return { paymentId, action: 'unchanged', detail: { state: p.rows.get(paymentId)?.state } };
  if (states.some((s) => s === 'PENDING')) return { paymentId, action: 'pending_at_mint' };
  const spent = proofs.filter((_, i) => states[i] === 'SPENT');
  const unspentSat = proofs.filter((_, i) => states[i] !== 'SPENT').reduce((a, q) => a + q.amount, 0);
  if (spent.length === proofs.length) {
    if (!row.sessionId) return askRefund(p, row, { mint: 'spent', proofs: proofs.length });
    const evidence = { mint: 'spent', proofs: proofs.length, answer: 'lost; the node redeemed the deposit' };
    let credited = false;
    ctx.db.transaction(() => { credited = p.depositTaken(row, evidence); })();
    return { paymentId, action: credited ? 'deposited' : 'unchanged', detail: evidence };
  }
  if (spent.length > 0) {
    // A node redeems whole tokens, so this should not happen; the spent part is gone.
    const spentSat = spent.reduce((a, q) => a + q.amount, 0);
    const evidence = { reason: 'partly_spent', spent_sat: spentSat, unspent_sat: unspentSat };
    ctx.db.transaction(() => {
      ctx.store.markSecretsSpent(spent.map((q) => q.secret));
      ctx.ledger.record({ kind: 'loss', mint: row.mint, unit: row.unit, amount: -spentSat, ref: paymentId, evidence });
      p.rows.addFlag(paymentId, 'partly_spent');
    })();
  }
  let outcome: SwapOutcome;
  try {
    outcome = await p.swaps.start({
      mint: row.mint, unit: row.unit, purpose: 'reclaim', ref: paymentId, reclaimRef: paymentId,
      denominations: p.denominationsFor(row.mint, unspentSat),
    });
  } catch (err) {
    // Settled by its caller while the swap was being prepared: the proofs are no longer ours to move.
    if (err instanceof ProofStateError && !stillOpen(p, paymentId)) return { paymentId, action: 'unchanged', detail: { state: p.rows.get(paymentId)?.state } };
    throw err;
  }
  return { paymentId, action: reclaimAction(outcome), detail: outcome.status === 'done' ? { fee_sat: outcome.fee } : undefined };
}

function reclaimAction(o: SwapOutcome): ResolveAction {
  switch (o.status) {
    case 'done': return 'reclaimed';
    case 'retry': return 'reclaiming';
    case 'lost': return 'lost';
    case 'rejected': return 'unchanged';
  }
}

/** Still pending (or waiting for a refund) with its proofs pending for the payment (`count` of them, when given)? */
function stillOpen(p: RecoveryDeps, paymentId: string, count?: number): boolean {
  const row = p.rows.get(paymentId);
  if (!row || (row.state !== 'pending' && row.state !== 'refund_wait')) return false;
  const pending = p.ctx.store.pendingOf(paymentId).length;
  return count === undefined ? pending > 0 : pending === count;
}

/** The provider redeemed the token: ask for the change it may hold for us. */
async function askRefund(p: RecoveryDeps, row: PaymentRow, mintEvidence: unknown): Promise<ResolveResult> {
  const { ctx } = p;
  const opts = p.refund;
  const paymentId = row.paymentId;
  // The provider already handed back this payment's refund (the caller's `refunded`, or the refund
  // endpoint's answer for this very token): it waits in the change queue, not a loss. Any other
  // token banked for the payment (e.g. an X-Cashu header on the node's own 402) is not it.
  const banked = p.changeQueue.rowsOf(paymentId).filter((c) => c.kind === 'refund' && c.state !== 'invalid');
  if (banked.length > 0) {
    const evidence = { mint: mintEvidence, provider: row.providerUrl, refund: { banked: banked.map((c) => ({ kind: c.kind, claimed: c.claimed, state: c.state })) } };
    ctx.db.transaction(() => {
      ctx.store.markSpent(paymentId);
      ctx.ledger.record({ kind: 'payment_sent', mint: row.mint, unit: row.unit, amount: -row.sentSat, ref: paymentId, evidence });
      p.rows.setState(paymentId, 'refunded', evidence);
    })();
    return { paymentId, action: 'refunded', detail: evidence };
  }
  if (!row.providerUrl) return lose(p, row, { reason: 'no_refund_path', mint: mintEvidence, provider: row.providerUrl });
  // A 404 this soon after sending may only mean the node has not recorded the token yet.
  const sinceSentMs = ctx.clock() - row.tokenAt;
  const notFoundMeansPending = sinceSentMs < (opts.notFoundPendingMs ?? notFoundPendingMs)(row.providerVersion);
  let answer: RefundAnswer | { kind: 'error'; message: string };
  try {
    answer = await pollRefund(row.providerUrl, row.token, {
      fetch: opts.fetch, maxAttempts: opts.pollAttempts ?? 3, delayMs: opts.pollDelayMs ?? 2_000, sleep: opts.sleep, notFoundMeansPending,
    });
  } catch (err) {
    answer = { kind: 'error', message: (err as Error).message };
  }
  const refundEvidence = answer.kind === 'refunded' ? { amount: answer.amount, unit: answer.unit } : answer;
  const evidence = { mint: mintEvidence, provider: row.providerUrl, version: row.providerVersion, since_sent_ms: sinceSentMs, refund: refundEvidence };
  if (!stillOpen(p, paymentId)) {
    // Settled by its caller while the provider answered; a refund token is banked all the same.
    if (answer.kind === 'refunded') p.changeQueue.enqueue(paymentId, 'refund', answer.token, row.mint, row.unit);
    return { paymentId, action: 'unchanged', detail: evidence };
  }
  switch (answer.kind) {
    case 'refunded': {
      const token = answer.token;
      ctx.db.transaction(() => {
        ctx.store.markSpent(paymentId);
        ctx.ledger.record({ kind: 'payment_sent', mint: row.mint, unit: row.unit, amount: -row.sentSat, ref: paymentId, evidence });
        p.rows.setState(paymentId, 'refunded', evidence);
        p.changeQueue.enqueue(paymentId, 'refund', token, row.mint, row.unit);
      })();
      return { paymentId, action: 'refunded', detail: evidence };
    }
    case 'not_found':
      if (!notFoundMeansPending) return lose(p, row, evidence);
      return waitForRefund(p, row, evidence);
    case 'swept':
    case 'unsupported':
      return lose(p, row, evidence);
    case 'pending':
    case 'error':
      return waitForRefund(p, row, evidence);
  }
}

/** No answer yet: ask again later (with backoff), a bounded number of rounds, then a loss. */
function waitForRefund(p: RecoveryDeps, row: PaymentRow, evidence: Record<string, unknown>): ResolveResult {
  const { ctx } = p;
  const rounds = row.attempts + 1;
  if (rounds >= (p.refund.maxRefundRounds ?? 8)) return lose(p, row, { ...evidence, rounds });
  ctx.db.transaction(() => p.rows.waitForRefund(row.paymentId, ctx.clock() + backoffMs(rounds) * 10, { ...evidence, rounds }))();
  return { paymentId: row.paymentId, action: 'refund_wait', detail: evidence };
}

/** Spent at the mint and nothing came back: the proofs are gone, with the evidence why. */
function lose(p: RecoveryDeps, row: PaymentRow, evidence: unknown): ResolveResult {
  const { ctx } = p;
  ctx.db.transaction(() => {
    ctx.store.markSpent(row.paymentId);
    ctx.ledger.record({ kind: 'loss', mint: row.mint, unit: row.unit, amount: -row.sentSat, ref: row.paymentId, evidence });
    p.rows.setState(row.paymentId, 'lost', evidence);
    p.rows.addFlag(row.paymentId, 'lost');
  })();
  ctx.logger.warn('payment lost: token spent, no refund', { payment: row.paymentId, mint: row.mint, amountSat: row.sentSat });
  return { paymentId: row.paymentId, action: 'lost', detail: evidence };
}

/** Ask again the providers whose refund answer is due. */
export async function retryRefunds(p: RecoveryDeps): Promise<ResolveResult[]> {
  const out: ResolveResult[] = [];
  for (const row of p.rows.refundsDue(p.ctx.clock())) {
    out.push(await p.resolve(row.paymentId));
    p.emit(row.paymentId);
  }
  return out;
}

export interface PaymentsRecoveryReport {
  swaps: { status: SwapOutcome['status']; swapId: string | null }[];
  payments: ResolveResult[];
  /** Payments that stay pending because their mint could not be asked. */
  deferred: { paymentId: string; error: string }[];
}

/**
 * Resume every unfinished swap (every purpose), settle every orphaned payment-pending token (none
 * of this process's live payments), then swap in queued change. Idempotent; safe to run again,
 * and after a crash in the middle of it.
 */
export async function recoverPayments(p: RecoveryDeps): Promise<PaymentsRecoveryReport> {
  const report: PaymentsRecoveryReport = { swaps: [], payments: [], deferred: [] };
  for (const o of await p.swaps.resumeDue(true)) report.swaps.push({ status: o.status, swapId: o.swapId });
  for (const group of p.ctx.store.pendingGroups()) {
    if (group.kind !== 'request' || p.isLive(group.ref)) continue;
    const row = p.rows.get(group.ref);
    if (row?.state === 'refund_wait' && (row.nextAt ?? 0) > p.ctx.clock()) continue; // asked again when due
    try {
      const r = await p.resolve(group.ref);
      report.payments.push(r);
      p.emit(group.ref);
    } catch (err) {
      if (err instanceof MintUnavailableError || err instanceof PaymentStateError) report.deferred.push({ paymentId: group.ref, error: err.message });
      else throw err;
    }
  }
  await p.changeQueue.drain();
  return report;
}
