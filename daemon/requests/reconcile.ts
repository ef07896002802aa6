// Reconciliation of one attempt, pure and exact (integers only): what the provider kept
// (charged), what it should have kept at the price we routed by (expected), what it said it
// kept (reported), and the flags a difference earns.
//
//   charged  = max(0, sent - change - input fee) x 1000 msat, plus - in session mode, where no
//              token moves - what the session's balance lost for the attempt
//              (sessionChargedMsat). A Routstr node credits a token at its
//              value less the mint's input fee (routstr/wallet.py: `token.amount - input_fees`)
//              and returns `credited - ceil(total_msats / 1000)` as change for a sat token
//              (routstr/upstream/base.py), so an honest charge is the reported cost rounded up
//              to a whole sat. Change worth more than was sent less the fee is no negative
//              charge: the provider kept nothing, and the excess is a surplus (flag
//              change_surplus), booked apart so a generous (or buggy) node never looks cheap.
//   expected = usage x the price snapshot the request was routed at (protocol/pricing
//              tokenCostMsat, the node's own formula) - for a model without both token prices
//              (embeddings) too, unless the node says it billed its flat reservation
//              (expectedCostMsat). A failed attempt should have cost nothing: 0.
//   reported = the provider's cost field (usage.cost.total_msats and its older spellings).
//
// Flags computed here: overcharged, cost_mismatch, usage_missing, change_surplus. Flags that are facts learned
// from the wallet - change_invalid, refunded, lost - are inputs, kept as given, so an attempt
// can be reconciled again when a late outcome changes its change.
import { reservationMsatFor, tokenCostMsat, type ModelPrice, type TokenUsage } from '../../protocol/pricing.ts';

export const FLAGS = ['overcharged', 'cost_mismatch', 'usage_missing', 'change_invalid', 'change_surplus', 'refunded', 'lost'] as const;
export type Flag = (typeof FLAGS)[number];

/** Flags that record what happened to the money (inputs), not a comparison (outputs). */
export const FACT_FLAGS = ['change_invalid', 'refunded', 'lost'] as const;
export type FactFlag = (typeof FACT_FLAGS)[number];

const PPM = 1_000_000;
const MSAT_PER_SAT = 1000;

/**
 * How far a charge may exceed usage x the listed sats price before it is `overcharged`: 3 %.
 * Prices are set in USD and converted at the lowest of several BTC/USD feeds, refreshed about
 * every 2 minutes, and most upstreams bill by their own USD cost (ROUTSTR.md sec. 3): the sats
 * charged drift from the sats listed at the snapshot by BTC/USD's moves since, which stay
 * within ~3 % over the minutes between a price probe and a request on all but extreme days.
 */
export const DRIFT_TOLERANCE_PPM = 30_000;

/**
 * The node's change for a sat token is `credited - ceil(total_msats / 1000)`: the charge is the
 * reported cost rounded UP to a whole sat, so it exceeds any exact msat cost by at most 999.
 * (The node's per-part round(x, 3) and final ceil move its total by under 1 msat; tokenCostMsat
 * reproduces them exactly.)
 */
export const SAT_ROUNDING_MSAT = 999;

export type AttemptState = 'pending' | 'succeeded' | 'failed';

/** Everything known about one attempt's money. Amounts of tokens in whole sats. */
export interface AttemptMoney {
  state: AttemptState;
  /** The price snapshot the attempt was routed at. */
  price: ModelPrice;
  /** Usage the provider reported; null when it sent none. */
  usage: TokenUsage | null;
  sentSat: number;
  /** The mint's input fee on the token, paid by the provider out of it (NUT-02). */
  feeSat: number;
  /** Change and refunds handed back, invalid ones excluded. */
  changeSat: number;
  reportedMsat: number | null;
  /** Session mode: the balance's decrease for this attempt, msat (null: paid by token). */
  sessionChargedMsat?: number | null;
  facts?: Iterable<FactFlag>;
}

export interface Reconciliation {
  /** What the provider kept, never negative. */
  chargedMsat: number;
  /** Change beyond what was sent less the fee (the provider gave us more than we paid), sat; 0 normally. */
  surplusSat: number;
  /** null: not known (pending, or served without usage). */
  expectedMsat: number | null;
  reportedMsat: number | null;
  /** The highest charge not flagged overcharged; null when expected is unknown. */
  allowedMsat: number | null;
  flags: Flag[];
}

/**
 * What the node bills for this usage at this price, msat, as routstr-core v0.4.5's
 * payment/cost_calculation.py `calculate_cost` does. It bills no request fee (`base_msats=0`).
 * When the upstream reports a USD cost (`_resolve_usd_cost(...) > 0`, as OpenRouter and most
 * real upstreams do) it bills that (`_calculate_from_usd_cost`): the tokens at the listed price,
 * moved by BTC/USD since the listing - whatever the model's rates, so an embedding (completion
 * price 0) costs its prompt tokens. Only without a USD cost does it price tokens itself, and
 * then a model lacking a prompt or completion rate (`if not (input_rate and output_rate)`) is
 * billed `MaxCostData(total_msats=max_cost)`, max_cost being the request's discounted
 * reservation (payment/helpers.py `calculate_discounted_max_cost`; for a body without
 * `messages` or `max_tokens`, an embeddings body, max_cost x 1000 x 0.99).
 *
 * So such a model is expected to cost its tokens, unless the node reports (`reportedMsat`) that
 * flat reservation - within the BTC/USD drift its sats max_cost moves by, as its prices do. (A
 * chat model lacking a rate, billed a reservation its messages discounted, is flagged: rare, and
 * it did cost more than its tokens.)
 */
export function expectedCostMsat(usage: TokenUsage, price: ModelPrice, reportedMsat: number | null = null): number {
  const perToken = tokenCostMsat(usage, price);
  if (price.promptNmsat > 0 && price.completionNmsat > 0) return perToken;
  const flatMsat = flatReservationMsat(price);
  if (reportedMsat !== null && Math.abs(reportedMsat - flatMsat) <= driftMsat(flatMsat) + 1) return flatMsat;
  return perToken;
}

/** What the node bills a model lacking a token rate when no USD cost comes back: its reservation for a body without messages or max_tokens. */
export function flatReservationMsat(price: ModelPrice): number {
  return reservationMsatFor(null, { promptTokens: undefined, maxTokens: undefined }, price.maxCostMsat);
}

/** The highest charge that is drift and rounding, not an overcharge, for an expected cost. */
export function allowedChargeMsat(expectedMsat: number): number {
  return expectedMsat + driftMsat(expectedMsat) + SAT_ROUNDING_MSAT;
}

/** BTC/USD drift on an amount: DRIFT_TOLERANCE_PPM of it, rounded up. */
function driftMsat(msat: number): number {
  return Number((BigInt(msat) * BigInt(DRIFT_TOLERANCE_PPM) + BigInt(PPM - 1)) / BigInt(PPM));
}

/** Reconcile one attempt. */
export function reconcile(a: AttemptMoney): Reconciliation {
  for (const [name, v] of [['sentSat', a.sentSat], ['feeSat', a.feeSat], ['changeSat', a.changeSat]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  }
  if (a.reportedMsat !== null && (!Number.isSafeInteger(a.reportedMsat) || a.reportedMsat < 0)) throw new RangeError(`reportedMsat must be a non-negative integer, got ${a.reportedMsat}`);
  const flags = new Set<Flag>(a.facts ?? []);
  const session = a.sessionChargedMsat ?? 0;
  if (!Number.isSafeInteger(session) || session < 0) throw new RangeError(`sessionChargedMsat must be a non-negative integer, got ${session}`);
  const kept = keptBy(a.sentSat, a.changeSat, a.feeSat);
  const surplusSat = kept.surplusSat;
  const chargedMsat = kept.chargedMsat + session;
  if (surplusSat > 0) flags.add('change_surplus');

  let expectedMsat: number | null = null;
  if (a.state === 'failed') expectedMsat = 0;
  else if (a.state === 'succeeded') {
    if (a.usage) expectedMsat = expectedCostMsat(a.usage, a.price, a.reportedMsat);
    else flags.add('usage_missing');
  }

  let allowedMsat: number | null = null;
  if (a.state === 'succeeded' && expectedMsat !== null) {
    allowedMsat = allowedChargeMsat(expectedMsat);
    if (chargedMsat > allowedMsat) flags.add('overcharged');
  }
  // Only a served attempt bills by its report; a failed one is refunded or lost whatever it says.
  if (a.state === 'succeeded' && a.reportedMsat !== null) {
    // A token's charge is the report rounded up to a whole sat; a balance's decrease is exact.
    const over = chargedMsat - a.reportedMsat;
    if (over < 0 || over > (a.sessionChargedMsat != null ? 0 : SAT_ROUNDING_MSAT)) flags.add('cost_mismatch');
  }
  return { chargedMsat, surplusSat, expectedMsat, reportedMsat: a.reportedMsat, allowedMsat, flags: sortFlags(flags) };
}

/**
 * What a provider kept of a token, msat - max(0, sent - change - fee) x 1000 - and the surplus:
 * change beyond the token less its fee, sat. The one place the charge is computed from the
 * token's figures (reconcile, `audit verify`).
 */
export function keptBy(sentSat: number, changeSat: number, feeSat: number): { chargedMsat: number; surplusSat: number } {
  const keptSat = sentSat - changeSat - feeSat;
  return { chargedMsat: Math.max(0, keptSat) * MSAT_PER_SAT, surplusSat: Math.max(0, -keptSat) };
}

/** Flags in their canonical order (the order of FLAGS), without repeats. */
export function sortFlags(flags: Iterable<Flag>): Flag[] {
  const set = new Set(flags);
  return FLAGS.filter((f) => set.has(f));
}

export const isFactFlag = (f: string): f is FactFlag => (FACT_FLAGS as readonly string[]).includes(f);
