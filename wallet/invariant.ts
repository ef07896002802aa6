// The money invariant, per mint and unit, to the unit:
//   funded + received - withdrawn - withdrawal fees - paid to providers - mint fees - losses
//     = unspent + pending
// where paid to providers = payment_sent - change_received - refund (all from the ledger), and
// unspent/pending are sums over wallet_proofs. Then, asking each mint (NUT-07), every proof we
// count as unspent must be unspent at the mint.
import type { WalletContext } from './context.ts';
import type { LedgerKind } from './ledger.ts';
import { toCashuProof } from './store.ts';

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
  /** What the ledger says we hold. */
  expected: number;
  unspent: number;
  pending: number;
  /** expected - (unspent + pending); zero when the books balance. */
  difference: number;
  /** Set when the mint was asked (checkMints). */
  mintCheck?: { checked: number; spentAmount: number; pendingAmount: number; error?: string };
}

export interface InvariantReport {
  ok: boolean;
  totals: MintUnitTotals[];
  /** One line per difference, naming it; empty when ok. */
  differences: string[];
}

function sum(rows: Map<LedgerKind, number>, kind: LedgerKind): number {
  return rows.get(kind) ?? 0;
}

/**
 * Check the invariant. With `checkMints`, also ask every mint whether the proofs we count as
 * unspent really are (an unreachable mint is reported as a difference: unverified).
 */
export async function verifyInvariant(ctx: WalletContext, opts: { checkMints?: boolean } = {}): Promise<InvariantReport> {
  const byKey = new Map<string, { mint: string; unit: string; kinds: Map<LedgerKind, number>; unspent: number; pending: number }>();
  const entry = (mint: string, unit: string) => {
    const k = `${mint}\n${unit}`;
    let e = byKey.get(k);
    if (!e) byKey.set(k, (e = { mint, unit, kinds: new Map(), unspent: 0, pending: 0 }));
    return e;
  };
  // Read both sides in one read transaction so a concurrent writer cannot split them.
  ctx.db.transaction(() => {
    for (const t of ctx.ledger.totals()) entry(t.mint, t.unit).kinds.set(t.kind, t.amount);
    for (const b of ctx.store.balances()) Object.assign(entry(b.mint, b.unit), { unspent: b.unspent, pending: b.pending });
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
      expected: 0,
      unspent: e.unspent,
      pending: e.pending,
      difference: 0,
    };
    t.expected = t.funded + t.received - t.withdrawn - t.withdrawalFees - t.paidToProviders - t.mintFees - t.losses;
    t.difference = t.expected - (t.unspent + t.pending);
    if (t.difference !== 0) {
      differences.push(`${e.mint} (${e.unit}): the ledger says ${t.expected} ${e.unit} but proofs hold ${t.unspent} unspent + ${t.pending} pending (difference ${t.difference} ${e.unit})`);
    }
    totals.push(t);
  }

  if (opts.checkMints) {
    for (const t of totals) {
      const proofs = ctx.store.selectUnspent(t.mint, t.unit);
      try {
        const states = await ctx.mints.checkStates(t.mint, t.unit, proofs.map(toCashuProof));
        let spentAmount = 0;
        let pendingAmount = 0;
        states.forEach((s, i) => {
          if (s === 'SPENT') spentAmount += proofs[i].amount;
          if (s === 'PENDING') pendingAmount += proofs[i].amount;
        });
        t.mintCheck = { checked: proofs.length, spentAmount, pendingAmount };
        if (spentAmount > 0) differences.push(`${t.mint} (${t.unit}): ${spentAmount} ${t.unit} we count as unspent is spent at the mint`);
        if (pendingAmount > 0) differences.push(`${t.mint} (${t.unit}): ${pendingAmount} ${t.unit} we count as unspent is pending at the mint`);
      } catch (err) {
        t.mintCheck = { checked: 0, spentAmount: 0, pendingAmount: 0, error: (err as Error).message };
        differences.push(`${t.mint} (${t.unit}): could not ask the mint (${(err as Error).message}); ${t.unspent} ${t.unit} unspent is unverified`);
      }
    }
  }
  return { ok: differences.length === 0, totals, differences };
}
