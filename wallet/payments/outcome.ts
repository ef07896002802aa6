// The money story of one payment, as the request books reconcile it: what was sent, what the
// provider handed back, what is still on its way. Every amount is whole sats (Sat), converted
// from the change token's own unit (sums exact in msat, then rounded down once).
import { msat, msatToSatFloor, unitToMsat, unitToSatFloor, type Msat, type Sat } from '../../protocol/units.ts';
import type { ChangeRow } from './change-queue.ts';
import type { PaymentRow, PaymentState } from './rows.ts';

export interface ChangeSummary {
  kind: ChangeRow['kind'];
  state: ChangeRow['state'];
  /** Face value the token claims (msat change rounded down). */
  claimedSat: Sat;
  /** What it added to the balance once swapped in (net of the mint's fee), or null while waiting. */
  receivedSat: Sat | null;
  feeSat: Sat | null;
  error: string | null;
  evidence: unknown;
}

/** Everything the request books need to reconcile one payment (one attempt at one provider). */
export interface PaymentOutcome {
  paymentId: string;
  /** Our wallet's mint, and its spelling in the token (as the provider lists it). */
  mint: string;
  tokenMint: string;
  unit: 'sat';
  providerUrl: string | null;
  state: PaymentState;
  /** What the provider should net. */
  amountSat: Sat;
  /** Face value of the token: amountSat + feeSat + overpaySat. */
  sentSat: Sat;
  /** The mint's input fee the provider pays out of the token. */
  feeSat: Sat;
  overpaySat: Sat;
  mintRoundTrip: boolean;
  /** Change and refund tokens the provider handed back, valid or not. */
  changeClaimedSat: Sat;
  /** Received so far (net of the mint's fee for receiving it); msat change rounded down. */
  changeReceivedSat: Sat;
  /** The same, exact in msat (change may come back in msat). */
  changeReceivedMsat: Msat;
  changeFeeSat: Sat;
  /** Some change or refund is still waiting to be swapped in. */
  changePending: boolean;
  changes: ChangeSummary[];
  flags: string[];
  evidence: unknown;
}

/** A payment's row and its change rows as one outcome. */
export function toOutcome(row: PaymentRow, all: readonly ChangeRow[]): PaymentOutcome {
  const flags = new Set(row.flags);
  // Our own token handed back is not change: it is left out (the payment was resolved instead).
  if (all.some((c) => c.state === 'own')) flags.add('own_token_echoed');
  const changes = all.filter((c) => c.state !== 'own');
  if (changes.some((c) => c.state === 'invalid')) flags.add('change_invalid');
  if (changes.some((c) => c.state === 'lost')) flags.add('change_lost');
  const valid = changes.filter((c) => c.state !== 'invalid');
  const inSat = (c: ChangeRow, amount: number | null): Sat | null => (amount === null ? null : unitToSatFloor(amount, c.unit));
  // Summed exactly in msat (tokens may come in either unit), then rounded down once.
  const totalMsat = (rows: readonly ChangeRow[], pick: (c: ChangeRow) => number | null): Msat =>
    msat(rows.reduce((a, c) => a + unitToMsat(pick(c) ?? 0, c.unit), 0));
  const receivedMsat = totalMsat(valid, (c) => c.received);
  return {
    paymentId: row.paymentId, mint: row.mint, tokenMint: row.tokenMint, unit: row.unit, providerUrl: row.providerUrl, state: row.state,
    amountSat: row.amountSat, sentSat: row.sentSat, feeSat: row.feeSat, overpaySat: row.overpaySat, mintRoundTrip: row.roundtrip,
    changeClaimedSat: msatToSatFloor(totalMsat(changes, (c) => c.claimed)),
    changeReceivedSat: msatToSatFloor(receivedMsat),
    changeReceivedMsat: receivedMsat,
    changeFeeSat: msatToSatFloor(totalMsat(valid, (c) => c.fee)),
    changePending: changes.some((c) => c.state === 'queued' || c.state === 'swapping'),
    changes: changes.map((c) => ({ kind: c.kind, state: c.state, claimedSat: unitToSatFloor(c.claimed, c.unit), receivedSat: inSat(c, c.received), feeSat: inSat(c, c.fee), error: c.error, evidence: c.evidence })),
    flags: [...flags].sort(),
    evidence: row.evidence,
  };
}
