// Amounts with their unit. Money is an integer in one unit: sat (Cashu proofs and tokens), msat
// (per-request prices, costs, a node's charges) or nmsat per token (per-token prices, 1e-9 msat;
// see pricing.ts). Each unit is a branded number type, so a Sat where an Msat belongs fails the
// type check, and every conversion between units is one function here whose name says how it
// rounds. Plain numbers (read from SQLite or JSON) are accepted where a unit is expected; the
// constructors (`sat`, `msat`) check that they are safe integers.

declare const unit: unique symbol;

/** Whole sats. */
export type Sat = number & { readonly [unit]: 'sat' };
/** Whole millisats. */
export type Msat = number & { readonly [unit]: 'msat' };
/** A per-token price in nano-millisats (1e-9 msat) per token. */
export type NmsatPerToken = number & { readonly [unit]: 'nmsat/token' };

/** A parameter in sats: a plain number or a Sat, never an Msat. */
export type SatIn = number & { readonly [unit]?: 'sat' };
/** A parameter in msat: a plain number or an Msat, never a Sat. */
export type MsatIn = number & { readonly [unit]?: 'msat' };

/** The Cashu keyset units satroute holds proofs in. */
export const CASHU_UNITS = ['sat', 'msat'] as const;
export type CashuUnit = (typeof CASHU_UNITS)[number];

export const MSAT_PER_SAT = 1000;

/** An amount that is not a safe integer, or a unit we do not know. */
export class UnitError extends RangeError {
  override name = 'UnitError';
  readonly code = 'unit_error';
}

function integer(n: number, what: string): void {
  if (!Number.isSafeInteger(n)) throw new UnitError(`${what} must be a safe integer, got ${n}`);
}

/** `n` as whole sats (throws UnitError unless a safe integer). */
export function sat(n: SatIn): Sat {
  integer(n, 'an amount of sat');
  return n as Sat;
}

/** `n` as whole msat (throws UnitError unless a safe integer). */
export function msat(n: MsatIn): Msat {
  integer(n, 'an amount of msat');
  return n as Msat;
}

/** `n` as an integer price in nmsat per token. */
export function nmsatPerToken(n: number): NmsatPerToken {
  integer(n, 'a price in nmsat per token');
  return n as NmsatPerToken;
}

/** Sats as msat (exact). */
export function satToMsat(amount: SatIn): Msat {
  integer(amount, 'an amount of sat');
  return msat(amount * MSAT_PER_SAT);
}

// Exact for every safe integer: the remainder is exact, and (m - r) / 1000 divides a multiple of
// 1000 (float division and Math.floor would round wrongly near 2^53).

/** msat as whole sats, rounded down (towards -infinity): what an msat credit is worth in whole sats. */
export function msatToSatFloor(amount: MsatIn): Sat {
  integer(amount, 'an amount of msat');
  const r = amount % MSAT_PER_SAT;
  return ((amount - r) / MSAT_PER_SAT - (r < 0 ? 1 : 0)) as Sat;
}

/** msat as whole sats, rounded up (towards +infinity): the smallest sat amount that covers an msat charge. */
export function msatToSatCeil(amount: MsatIn): Sat {
  integer(amount, 'an amount of msat');
  const r = amount % MSAT_PER_SAT;
  return ((amount - r) / MSAT_PER_SAT + (r > 0 ? 1 : 0)) as Sat;
}

/** Is this a Cashu unit we hold proofs in? */
export function isCashuUnit(u: string): u is CashuUnit {
  return (CASHU_UNITS as readonly string[]).includes(u);
}

function cashuUnit(u: string): CashuUnit {
  if (!isCashuUnit(u)) throw new UnitError(`unknown unit "${u}" (expected ${CASHU_UNITS.join(' or ')})`);
  return u;
}

/** An amount in a Cashu unit as whole sats, msat rounded down: what a credit is worth. */
export function unitToSatFloor(amount: number, u: string): Sat {
  return cashuUnit(u) === 'msat' ? msatToSatFloor(amount) : sat(amount);
}

/** An amount in a Cashu unit as whole sats, msat rounded up: what a debit costs. */
export function unitToSatCeil(amount: number, u: string): Sat {
  return cashuUnit(u) === 'msat' ? msatToSatCeil(amount) : sat(amount);
}

/** An amount in a Cashu unit as msat (exact). */
export function unitToMsat(amount: number, u: string): Msat {
  return cashuUnit(u) === 'msat' ? msat(amount) : satToMsat(amount);
}

/** Whole sats in a Cashu unit (exact). */
export function satToUnit(amount: SatIn, u: string): number {
  return cashuUnit(u) === 'msat' ? satToMsat(amount) : sat(amount);
}
