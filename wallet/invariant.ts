// The money invariant, per mint and unit, to the unit:
//   funded + received - withdrawn - withdrawal fees - paid to providers - charged in sessions
//     - mint fees - losses - session losses
//     = unspent + pending + held in sessions
// where paid to providers = payment_sent - change_received - refund and the session figures come
// from the ledger, unspent/pending are sums over wallet_proofs, and held in sessions is what
// wallet_sessions says providers hold for us (deposited - charged - refunded - lost). Since the
// ledger also records each deposit and refund, this checks the sessions' books against the
// ledger's as well as the proofs'. Then, asking each mint (NUT-07):
//   - every proof we count as unspent must be unspent at the mint;
//   - a proof we count as pending that the mint reports spent is named, unless the reason it is
//     pending explains it (a payment in flight in this process, a refund awaited, a swap running);
// and, from the swap records (no mint needed): a token counted twice - our own proofs swapped in
// as if someone had given them to us (an echo of a token we sent, banked as change), or the same
// foreign proof in two swaps.
import type { WalletContext } from './context.ts';
import type { LedgerKind } from './ledger.ts';
import { toCashuProof, type PendingKind, type StoredProof } from './store.ts';
import { SwapRecords } from './swap/records.ts';
import { heldInSessions } from './payments/sessions.ts';

export interface MintUnitTotals {
  mint: string;
  unit: string;
  funded: number;
  received: number;
  withdrawn: number;
  withdrawalFees: number;
  /** payment_sent - change_received - refund. */
  paidToProviders: number;
  mintFees: number;
  losses: number;
  /** Deposited into sessions (credited at providers), refunded from them, charged against them, lost with them. */
  sessionDeposited: number;
  sessionRefunded: number;
  sessionCharged: number;
  sessionLost: number;
  /** What the ledger says we hold (in proofs and at providers). */
  expected: number;
  unspent: number;
  pending: number;
  /** What providers hold for us in sessions, by the sessions' own books. */
  heldInSessions: number;
  /** expected - (unspent + pending + heldInSessions); zero when the books balance. */
  difference: number;
  /** Set when the mint was asked (checkMints). */
  mintCheck?: {
    checked: number;
    spentAmount: number;
    pendingAmount: number;
    /** Pending proofs asked about, and the value of those the mint says are spent without a reason that explains it. */
    pendingChecked?: number;
    pendingSpentAmount?: number;
    error?: string;
  };
}

export interface InvariantReport {
  ok: boolean;
  totals: MintUnitTotals[];
  /** One line per difference, naming it; empty when ok. */
  differences: string[];
}

export interface VerifyOptions {
  /** Ask every mint (NUT-07) about the proofs we count as unspent and pending. */
  checkMints?: boolean;
  /**
   * Why proofs pending for this reason may already be spent at the mint (e.g. 'in flight', 'refund
   * awaited'), or null when they should not be. Default: nothing explains it.
   */
  explainPending?: (kind: PendingKind, ref: string) => string | null;
}

function sum(rows: Map<LedgerKind, number>, kind: LedgerKind): number {
  return rows.get(kind) ?? 0;
}

/**
 * Check the invariant. With `checkMints`, also ask every mint about the proofs we count as
 * unspent and pending (an unreachable mint is reported as a difference: unverified).
 */
export async function verifyInvariant(ctx: WalletContext, opts: VerifyOptions = {}): Promise<InvariantReport> {
  const byKey = new Map<string, { mint: string; unit: string; kinds: Map<LedgerKind, number>; unspent: number; pending: number; held: number }>();
  const entry = (mint: string, unit: string) => {
    const k = `${mint}\n${unit}`;
    let e = byKey.get(k);
    if (!e) byKey.set(k, (e = { mint, unit, kinds: new Map(), unspent: 0, pending: 0, held: 0 }));
    return e;
  };
  // Read every side in one read transaction so a concurrent writer cannot split them.
  ctx.db.transaction(() => {
    for (const t of ctx.ledger.totals()) entry(t.mint, t.unit).kinds.set(t.kind, t.amount);
    for (const b of ctx.store.balances()) Object.assign(entry(b.mint, b.unit), { unspent: b.unspent, pending: b.pending });
    for (const h of heldInSessions(ctx.db)) entry(h.mint, h.unit).held = h.heldSat;
  })();

  const totals: MintUnitTotals[] = [];
  const differences: string[] = [];
  for (const e of byKey.values()) {
    const k = e.kinds;
    const t: MintUnitTotals = {
      mint: e.mint,
      unit: e.unit,
      funded: sum(k, 'funding'),
      received: sum(k, 'receive'),
      withdrawn: -sum(k, 'withdrawal'),
      withdrawalFees: -sum(k, 'withdrawal_fee'),
      paidToProviders: -(sum(k, 'payment_sent') + sum(k, 'change_received') + sum(k, 'refund')),
      mintFees: -sum(k, 'mint_fee'),
      losses: -sum(k, 'loss'),
      sessionDeposited: -sum(k, 'session_deposit'),
      sessionRefunded: sum(k, 'session_refund'),
      sessionCharged: -sum(k, 'session_charge'),
      sessionLost: -sum(k, 'session_loss'),
      expected: 0,
      unspent: e.unspent,
      pending: e.pending,
      heldInSessions: e.held,
      difference: 0,
    };
    t.expected = t.funded + t.received - t.withdrawn - t.withdrawalFees - t.paidToProviders - t.sessionCharged - t.mintFees - t.losses - t.sessionLost;
    t.difference = t.expected - (t.unspent + t.pending + t.heldInSessions);
    if (t.difference !== 0) {
      const held = t.heldInSessions !== 0 || t.sessionDeposited !== 0 ? ` + ${t.heldInSessions} held in sessions` : '';
      differences.push(`${e.mint} (${e.unit}): the ledger says ${t.expected} ${e.unit} but proofs hold ${t.unspent} unspent + ${t.pending} pending${held} (difference ${t.difference} ${e.unit})`);
    }
    totals.push(t);
  }

  differences.push(...countedTwice(ctx));
  if (opts.checkMints) {
    for (const t of totals) differences.push(...(await askMint(ctx, t, opts.explainPending ?? (() => null))));
  }
  return { ok: differences.length === 0, totals, differences };
}

/** Tokens counted twice, from the swap records: our own proofs swapped in as foreign, or a foreign proof in two swaps. */
function countedTwice(ctx: WalletContext): string[] {
  const records = new SwapRecords(ctx.db, ctx.clock);
  const out: string[] = [];
  for (const s of records.ownInputsSwappedIn()) {
    out.push(`${s.mint} (${s.unit}): swap ${s.swapId} (${s.purpose}${s.ref ? ` for ${s.ref}` : ''}) swapped in ${s.amount} ${s.unit} of our own proofs as if given to us: counted twice`);
  }
  for (const s of records.foreignSwappedTwice()) out.push(`the same proof was swapped in by ${s.swaps} swaps (${s.ids}): counted twice`);
  return out;
}

const REASON_NAME: Record<PendingKind, string> = { request: 'payment', swap: 'swap', melt: 'withdrawal', send: 'token sent' };

/** NUT-07 for the proofs we count as unspent and pending at one mint and unit; the differences it shows. */
async function askMint(ctx: WalletContext, t: MintUnitTotals, explain: NonNullable<VerifyOptions['explainPending']>): Promise<string[]> {
  const out: string[] = [];
  const unspent = ctx.store.selectUnspent(t.mint, t.unit);
  const pending = ctx.store.selectPending(t.mint, t.unit);
  let states: string[];
  try {
    states = await ctx.mints.checkStates(t.mint, t.unit, [...unspent, ...pending].map(toCashuProof));
  } catch (err) {
    t.mintCheck = { checked: 0, spentAmount: 0, pendingAmount: 0, error: (err as Error).message };
    return [`${t.mint} (${t.unit}): could not ask the mint (${(err as Error).message}); ${t.unspent} ${t.unit} unspent and ${t.pending} ${t.unit} pending are unverified`];
  }
  // The wallet goes on while the mint answers: a proof whose state changed meanwhile (taken and
  // redeemed, a swap that finished) was settled in the books then, and is not a difference.
  const unchanged = (p: StoredProof) => {
    const now = ctx.store.get(p.secret);
    return now?.state === p.state && now.reasonKind === p.reasonKind && now.reasonRef === p.reasonRef;
  };
  let spentAmount = 0;
  let pendingAmount = 0;
  unspent.forEach((p, i) => {
    if (!unchanged(p)) return;
    if (states[i] === 'SPENT') spentAmount += p.amount;
    if (states[i] === 'PENDING') pendingAmount += p.amount;
  });
  if (spentAmount > 0) out.push(`${t.mint} (${t.unit}): ${spentAmount} ${t.unit} we count as unspent is spent at the mint`);
  if (pendingAmount > 0) out.push(`${t.mint} (${t.unit}): ${pendingAmount} ${t.unit} we count as unspent is pending at the mint`);
  // Pending proofs the mint says are spent, per reason, unless the reason explains it.
  const spentByReason = new Map<string, { kind: PendingKind; ref: string; amount: number }>();
  pending.forEach((p: StoredProof, i) => {
    if (states[unspent.length + i] !== 'SPENT' || !p.reasonKind || !p.reasonRef || !unchanged(p)) return;
    const key = `${p.reasonKind}\n${p.reasonRef}`;
    const r = spentByReason.get(key) ?? { kind: p.reasonKind, ref: p.reasonRef, amount: 0 };
    r.amount += p.amount;
    spentByReason.set(key, r);
  });
  let pendingSpentAmount = 0;
  for (const r of spentByReason.values()) {
    if (explain(r.kind, r.ref) !== null) continue;
    pendingSpentAmount += r.amount;
    out.push(`${t.mint} (${t.unit}): ${r.amount} ${t.unit} pending for ${REASON_NAME[r.kind]} ${r.ref} is spent at the mint (not settled in our books)`);
  }
  t.mintCheck = { checked: unspent.length, spentAmount, pendingAmount, pendingChecked: pending.length, pendingSpentAmount };
  return out;
}
