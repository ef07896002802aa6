// The node's API-key balances (routstr-core v0.4.5 core/db.py ApiKey, ReservationRelease,
// CashuTransaction rows with source "apikey"), kept in memory. Every transition is
// synchronous, so concurrent requests never interleave inside one; the HTTP layer
// (balance-api.ts, balance-paid.ts) awaits only between transitions, where routstr does.
import { Purse } from './purse.ts';

export interface KeyRow {
  /** sha256 hex of the cashu token that created it; the API key is "sk-" + this. */
  readonly hash: string;
  /** msat held, reservations included (routstr `balance`). */
  balanceMsat: number;
  /** msat reserved by running requests (routstr `reserved_balance`). */
  reservedMsat: number;
  totalRequests: number;
  totalSpentMsat: number;
  /** Unit refunds are minted in: the unit of the token that created the key. */
  refundCurrency: 'sat' | 'msat';
  /** Mint refunds are minted at, spelled as the node lists it. */
  refundMint: string;
}

export interface Reservation {
  readonly id: string;
  readonly keyHash: string;
  readonly msat: number;
  readonly createdAtMs: number;
  status: 'active' | 'released' | 'charged';
}

/** A refund minted from a key's balance (routstr's "out" CashuTransaction, source "apikey"). */
export interface KeyRefund {
  readonly token: string;
  /** In `unit`. */
  readonly amount: number;
  readonly unit: 'sat' | 'msat';
  /** What the refund answer reports: whole balance in msat. */
  readonly balanceMsat: number;
  readonly createdAtMs: number;
  collected: boolean;
  swept: boolean;
}

/** total_balance: what a key may still spend. */
export const available = (k: KeyRow): number => k.balanceMsat - k.reservedMsat;

export class BalanceBook {
  private readonly keys = new Map<string, KeyRow>();
  private readonly reservations = new Map<string, Reservation>();
  private readonly refunds = new Map<string, KeyRefund[]>();
  private nextReservation = 1;

  get(hash: string): KeyRow | undefined {
    return this.keys.get(hash);
  }

  /** A new key with balance 0, before its token is redeemed (auth.py creates the row, then credits it). */
  create(hash: string, refundCurrency: 'sat' | 'msat', refundMint: string): KeyRow {
    if (this.keys.has(hash)) throw new Error(`key ${hash.slice(0, 8)} exists`);
    const row: KeyRow = { hash, balanceMsat: 0, reservedMsat: 0, totalRequests: 0, totalSpentMsat: 0, refundCurrency, refundMint };
    this.keys.set(hash, row);
    return row;
  }

  /** Redemption of the creating token failed: the row is rolled back. */
  drop(hash: string): void {
    this.keys.delete(hash);
  }

  credit(hash: string, msat: number): void {
    const k = this.keys.get(hash);
    if (k) k.balanceMsat += msat;
  }

  /**
   * pay_for_request: reserve `msat` if balance - reserved covers it (one atomic UPDATE in
   * routstr) and count the request. Returns the reservation, or undefined when short.
   */
  reserve(hash: string, msat: number, nowMs: number): Reservation | undefined {
    const k = this.keys.get(hash);
    if (!k || available(k) < msat) return undefined;
    k.reservedMsat += msat;
    k.totalRequests += 1;
    const r: Reservation = { id: String(this.nextReservation++), keyHash: hash, msat, createdAtMs: nowMs, status: 'active' };
    this.reservations.set(r.id, r);
    return r;
  }

  /**
   * revert_pay_for_request / release_reservation: give the reservation back, once.
   * `uncount` also takes the request off total_requests (a reverted request).
   */
  release(r: Reservation, uncount: boolean): boolean {
    if (r.status !== 'active') return false;
    r.status = 'released';
    const k = this.keys.get(r.keyHash);
    if (k) {
      k.reservedMsat = Math.max(0, k.reservedMsat - r.msat);
      if (uncount) k.totalRequests -= 1;
    }
    return true;
  }

  /**
   * adjust_payment_for_tokens: settle a reservation at `costMsat`. A cost above the
   * reservation is capped at the balance the node sees (the overrun branch); a reservation
   * already released (e.g. as stale) is not charged at all (undefined). Returns the msat taken.
   */
  charge(r: Reservation, costMsat: number): number | undefined {
    if (r.status !== 'active') return undefined;
    r.status = 'charged';
    const k = this.keys.get(r.keyHash);
    if (!k) return undefined;
    const taken = costMsat > r.msat ? Math.min(k.balanceMsat, costMsat) : costMsat;
    k.reservedMsat = k.reservedMsat >= r.msat ? k.reservedMsat - r.msat : 0;
    k.balanceMsat -= taken;
    k.totalSpentMsat += taken;
    return taken;
  }

  /** release_stale_reservations for one key: reservations older than `maxAgeMs` are given back. */
  releaseStale(hash: string, nowMs: number, maxAgeMs: number): void {
    for (const r of this.reservations.values()) {
      if (r.keyHash === hash && r.status === 'active' && r.createdAtMs < nowMs - maxAgeMs) this.release(r, false);
    }
  }

  /**
   * The refund's debit-first UPDATE: zero balance and reservations only if both still are
   * what the endpoint read (routstr: WHERE balance = :read AND reserved_balance = :read).
   */
  debitAll(hash: string, readBalanceMsat: number, readReservedMsat: number): boolean {
    const k = this.keys.get(hash);
    if (!k || k.balanceMsat !== readBalanceMsat || k.reservedMsat !== readReservedMsat) return false;
    k.balanceMsat = 0;
    k.reservedMsat = 0;
    for (const r of this.reservations.values()) if (r.keyHash === hash && r.status === 'active') r.status = 'released';
    return true;
  }

  /** _restore_balance after a failed refund mint. */
  restore(hash: string, balanceMsat: number, reservedMsat: number): void {
    const k = this.keys.get(hash);
    if (!k) return;
    k.balanceMsat += balanceMsat;
    k.reservedMsat += reservedMsat;
  }

  recordRefund(hash: string, refund: KeyRefund): void {
    const list = this.refunds.get(hash) ?? [];
    list.push(refund);
    this.refunds.set(hash, list);
  }

  /** The newest refund minted for a key (routstr orders by created_at desc). */
  lastRefund(hash: string): KeyRefund | undefined {
    const list = this.refunds.get(hash);
    return list?.[list.length - 1];
  }

  /** Uncollected, unswept refunds older than `maxAgeMs` (routstr's refund sweep query). */
  sweepable(nowMs: number, maxAgeMs: number): KeyRefund[] {
    const out: KeyRefund[] = [];
    for (const list of this.refunds.values()) {
      for (const r of list) if (!r.collected && !r.swept && r.createdAtMs < nowMs - maxAgeMs) out.push(r);
    }
    return out;
  }

  /** reset_reserved_balance_on_startup (default on): a restarted node releases every reservation. */
  restarted(): void {
    for (const r of this.reservations.values()) if (r.status === 'active') r.status = 'released';
    for (const k of this.keys.values()) k.reservedMsat = 0;
  }

  /** The node is gone with everything it held. */
  wipe(): void {
    this.keys.clear();
    this.reservations.clear();
    this.refunds.clear();
  }

  /** Every key, for tests and stats. */
  all(): KeyRow[] {
    return [...this.keys.values()].map((k) => ({ ...k }));
  }
}

/**
 * What a node keeps across a restart (its database and its wallet). Pass the same object
 * to startProvider again to model a provider stopped and started on the same state.
 */
export interface ProviderState {
  readonly balances: BalanceBook;
  readonly purse: Purse;
}

export function createProviderState(clock: () => number = Date.now): ProviderState {
  return { balances: new BalanceBook(), purse: new Purse(clock) };
}
