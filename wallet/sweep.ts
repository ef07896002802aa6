// The sweep after an unclean stop: ask each mint (NUT-07) about every proof we count as unspent.
// With synchronous=NORMAL a power cut or kernel crash can roll back the last commits; a token whose
// proofs moved unspent -> pending in a lost commit may have been sent and redeemed, and the next
// payment would reuse proofs the mint says are spent. The sweep finds them:
//   SPENT at the mint   -> unspent -> spent, with a ledger `loss` (evidence: the proofs' Ys, the
//                          mint's answer), in one transaction: the invariant still balances.
//   PENDING at the mint -> held: unspent -> pending('send', <sweep id>), out of selection (a payment
//                          with them would fail at the provider's node, 11002, and count against
//                          the provider). Only a melt makes proofs PENDING (Nutshell and CDK swap
//                          atomically): ours whose row rolled back, or someone's who saw the
//                          secrets. The next sweep asks again about every hold: SPENT -> spent with
//                          a loss; UNSPENT (the melt failed, the mint unlocked them) -> unspent again;
//                          PENDING -> still held. Nothing else touches these holds (recovery resolves
//                          'request' payments only).
//   UNSPENT             -> nothing.
//   no answer           -> nothing changes for that mint and unit; the report carries the error and
//                          the caller may run the sweep again later.
// Meant to run at start, after the wallet's own recovery and before the daemon listens. Each
// batch's writes re-read every proof's state in their transaction and move only proofs still in
// the state the mint was asked about, so a payment that took a proof meanwhile keeps it: a run
// while the wallet serves is harmless, only its answers may be stale for proofs taken meanwhile.
// Crash window: each batch commits on its own; a crash between batches leaves the rest for the
// next run (the sweep is idempotent).
import { hashToCurve } from '@cashu/cashu-ts';
import type { WalletContext } from './context.ts';
import { WalletError } from './errors.ts';
import { newId } from './ids.ts';
import { toCashuProof, type StoredProof } from './store.ts';

/**
 * Proofs per NUT-07 call: cashu-ts (4.8) sends checkstate in chunks of 100 Ys whatever it is
 * given; Nutshell refuses more than mint_max_request_length (default 1000) per request.
 */
export const SWEEP_BATCH = 100;
/** Prefix of the reason ref of proofs the sweep holds (pending 'send') and of its loss rows. */
export const SWEEP_REF_PREFIX = 'sweep_';

export interface SweepOptions {
  /** Proofs per mint call; default SWEEP_BATCH (more is split again by cashu-ts). */
  batchSize?: number;
}

/** What one mint and unit said; amounts in `unit`. */
export interface SweepReport {
  mint: string;
  unit: string;
  /** Proofs the mint answered about (unspent ones and earlier holds). */
  checked: number;
  /** Counted unspent (or held) here, spent at the mint: moved to spent, booked as a loss. */
  spent: { count: number; amount: number };
  /** Pending at the mint: held out of selection until a later sweep (newly held and still held). */
  pending: { count: number; amount: number };
  /** Held by an earlier sweep, unspent at the mint again: spendable again. */
  released: { count: number; amount: number };
  /** The mint did not answer (or is not trusted any more); the rest of its proofs were not asked about. */
  failed?: string;
}

type MintState = 'UNSPENT' | 'PENDING' | 'SPENT';

const isHold = (p: StoredProof) => p.reasonKind === 'send' && p.reasonRef !== null && p.reasonRef.startsWith(SWEEP_REF_PREFIX);
const total = (ps: readonly StoredProof[]) => ps.reduce((a, p) => a + p.amount, 0);
const utf8 = new TextEncoder();
/** The NUT-07 id of a proof: public (the mint sees it on every check), unlike the secret. */
const yOf = (p: StoredProof) => hashToCurve(utf8.encode(p.secret)).toHex(true);

/**
 * Ask every mint about the proofs we count as unspent (and those an earlier sweep held) and settle
 * what it says, per mint and unit. One report row per mint and unit; a mint that does not answer
 * changes nothing for its proofs.
 */
export async function sweepUnspent(ctx: WalletContext, opts: SweepOptions = {}): Promise<SweepReport[]> {
  const batchSize = Math.max(1, Math.floor(opts.batchSize ?? SWEEP_BATCH));
  const sweepId = newId('sweep');
  const groups = new Map<string, { mint: string; unit: string; unspent: StoredProof[]; held: StoredProof[] }>();
  const group = (mint: string, unit: string) => {
    const k = `${mint}\n${unit}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { mint, unit, unspent: [], held: [] }));
    return g;
  };
  for (const p of ctx.store.allUnspent()) group(p.mint, p.unit).unspent.push(p);
  for (const b of ctx.store.balances()) {
    if (b.pending === 0) continue;
    const held = ctx.store.selectPending(b.mint, b.unit).filter(isHold);
    if (held.length > 0) group(b.mint, b.unit).held.push(...held);
  }

  const reports: SweepReport[] = [];
  for (const g of groups.values()) {
    const r: SweepReport = { mint: g.mint, unit: g.unit, checked: 0, spent: { count: 0, amount: 0 }, pending: { count: 0, amount: 0 }, released: { count: 0, amount: 0 } };
    reports.push(r);
    try {
      for (let i = 0; i < g.held.length; i += batchSize) {
        const batch = g.held.slice(i, i + batchSize);
        settleHeld(ctx, r, batch, await ctx.mints.checkStates(g.mint, g.unit, batch.map(toCashuProof)));
      }
      for (let i = 0; i < g.unspent.length; i += batchSize) {
        const batch = g.unspent.slice(i, i + batchSize);
        settleUnspent(ctx, r, batch, await ctx.mints.checkStates(g.mint, g.unit, batch.map(toCashuProof)), sweepId);
      }
    } catch (err) {
      if (!(err instanceof WalletError)) throw err;
      r.failed = err.message;
      ctx.logger.warn('sweep: could not ask the mint', { mint: g.mint, unit: g.unit, error: err.message });
    }
    if (r.spent.count > 0) ctx.logger.warn('sweep: proofs we counted as unspent are spent at the mint', { mint: g.mint, unit: g.unit, count: r.spent.count, amount: r.spent.amount });
  }
  return reports;
}

/** One batch of unspent proofs and the mint's answers: spent ones lost, pending ones held. */
function settleUnspent(ctx: WalletContext, r: SweepReport, batch: readonly StoredProof[], states: readonly MintState[], sweepId: string): void {
  r.checked += batch.length;
  ctx.db.transaction(() => {
    // Only proofs still unspent now: one a payment took since the read is its taker's.
    const still = (p: StoredProof) => ctx.store.get(p.secret)?.state === 'unspent';
    const spent = batch.filter((p, i) => states[i] === 'SPENT' && still(p));
    const pending = batch.filter((p, i) => states[i] === 'PENDING' && still(p));
    if (spent.length > 0) {
      ctx.store.markUnspentLost(spent.map((p) => p.secret), sweepId);
      ctx.ledger.record({
        kind: 'loss', mint: r.mint, unit: r.unit, amount: -total(spent), ref: sweepId,
        evidence: { reason: 'spent_while_unspent_here', cause: 'a commit rolled back by an unclean stop', mint_state: 'SPENT', proofs: spent.length, Ys: spent.map(yOf) },
      });
    }
    if (pending.length > 0) ctx.store.movePending(pending.map((p) => p.secret), 'send', sweepId);
    r.spent.count += spent.length;
    r.spent.amount += total(spent);
    r.pending.count += pending.length;
    r.pending.amount += total(pending);
  })();
}

/** One batch of proofs an earlier sweep held and the mint's answers: spent ones lost, unspent ones released. */
function settleHeld(ctx: WalletContext, r: SweepReport, batch: readonly StoredProof[], states: readonly MintState[]): void {
  r.checked += batch.length;
  ctx.db.transaction(() => {
    const still = (p: StoredProof) => {
      const now = ctx.store.get(p.secret);
      return now?.state === 'pending' && now.reasonRef === p.reasonRef;
    };
    const spent = batch.filter((p, i) => states[i] === 'SPENT' && still(p));
    const unspent = batch.filter((p, i) => states[i] === 'UNSPENT' && still(p));
    const pending = batch.filter((p, i) => states[i] === 'PENDING' && still(p));
    // Loss rows per hold (its ref), so each loss names the sweep that held the proofs.
    const byRef = new Map<string, StoredProof[]>();
    for (const p of spent) byRef.set(p.reasonRef!, [...(byRef.get(p.reasonRef!) ?? []), p]);
    for (const [ref, ps] of byRef) {
      ctx.store.markSecretsSpent(ps.map((p) => p.secret));
      ctx.ledger.record({
        kind: 'loss', mint: r.mint, unit: r.unit, amount: -total(ps), ref,
        evidence: { reason: 'spent_while_unspent_here', cause: 'a melt we have no record of (a commit rolled back by an unclean stop) completed', mint_state: 'SPENT', held_as: 'PENDING', proofs: ps.length, Ys: ps.map(yOf) },
      });
    }
    if (unspent.length > 0) ctx.store.releaseSecrets(unspent.map((p) => p.secret));
    r.spent.count += spent.length;
    r.spent.amount += total(spent);
    r.released.count += unspent.length;
    r.released.amount += total(unspent);
    r.pending.count += pending.length;
    r.pending.amount += total(pending);
  })();
}
