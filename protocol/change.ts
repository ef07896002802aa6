// The change token a node handed back, read offline (no mint call) beside the token we paid
// with. An honest routstr-core node owes change at the paid token's mint, in its unit, worth
// `amount - ceil(total_msats / 1000)` (upstream/base.py; minted by wallet.py send_token at
// token.mint): never more than it took. What a hostile node does instead is told here as facts
// for the ledger, never as a reason to drop money:
//   other_mint       change at a mint other than the paid one (the wallet receives it only if
//                    it trusts that mint; otherwise it is invalid: the provider kept the payment)
//   other_unit       change in another unit (compared in msat)
//   exceeds_payment  worth more than the whole token we sent: real ecash, received like any
//                    change, but the surplus is the provider's gift and must be counted as such
//                    - the request's charge is 0, not negative, so a gift cannot hide a charge
//                    or make the provider look cheaper than it bills
//   empty            claims no value
//   unreadable       not a Cashu token at all
// The surplus here is a lower bound (the token's face value, input fee not deducted); the
// ledger, knowing the fee, counts the exact one.
import { getTokenMetadata } from '@cashu/cashu-ts';
import { normalizeProviderUrl } from './discovery.ts';

export type ChangeProblem = 'unreadable' | 'empty' | 'other_mint' | 'other_unit' | 'exceeds_payment';

export interface ChangeCheck {
  /** The change token's mint (as written in it), unit and claimed amount; absent when unreadable. */
  mint?: string;
  unit?: string;
  amount?: number;
  /** The claimed value in msat (0 when unreadable). */
  claimedMsat: number;
  /** What the change claims beyond the whole token sent, in msat (0 when within it). */
  surplusMsat: number;
  problems: ChangeProblem[];
}

interface Face {
  mint: string;
  unit: string;
  amount: number;
  msat: number;
}

function face(token: string): Face | undefined {
  try {
    const m = getTokenMetadata(token.trim());
    const amount = m.amount.toNumber();
    const unit = m.unit ?? 'sat';
    if (!Number.isSafeInteger(amount) || amount < 0) return undefined;
    return { mint: m.mint, unit, amount, msat: unit === 'msat' ? amount : amount * 1000 };
  } catch {
    return undefined;
  }
}

const sameMint = (a: string, b: string) => (normalizeProviderUrl(a) ?? a) === (normalizeProviderUrl(b) ?? b);

/** What the change token claims, and what is wrong with it, beside the token sent. */
export function checkChange(sentToken: string, changeToken: string): ChangeCheck {
  const change = face(changeToken);
  if (!change) return { claimedMsat: 0, surplusMsat: 0, problems: ['unreadable'] };
  const out: ChangeCheck = { mint: change.mint, unit: change.unit, amount: change.amount, claimedMsat: change.msat, surplusMsat: 0, problems: [] };
  if (change.amount === 0) out.problems.push('empty');
  const sent = face(sentToken);
  if (!sent) return out;
  if (!sameMint(sent.mint, change.mint)) out.problems.push('other_mint');
  if (sent.unit !== change.unit) out.problems.push('other_unit');
  if (change.msat > sent.msat) {
    out.problems.push('exceeds_payment');
    out.surplusMsat = change.msat - sent.msat;
  }
  return out;
}
