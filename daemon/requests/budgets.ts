// Client budgets: a per-request cap and a daily budget (UTC days, from the injected clock).
// Admission reserves the request's worst case; settlement replaces it by what the request
// really cost. The check and the reservation are ONE SQLite write transaction begun with
// BEGIN IMMEDIATE, so concurrent admissions - from other connections, threads or processes -
// are serialised by SQLite's write lock and a budget is never overspent by a race.
//
// What counts against a day: held reservations at their worst case, settled ones at their
// cost - kept as a running total per client and day (budget_days), so admission reads one row
// however many requests the day has seen. Late outcomes (change found invalid after the swap, a refund arriving later) settle
// the same request again with the new cost.
import type { DB } from '../../db/sqlite.ts';
import { BudgetExceededError } from '../api/errors.ts';
import { migrateRequests } from './schema.ts';

const MSAT_PER_SAT = 1000;

/** The limits of one client (a ClientKey has this shape). */
export interface BudgetLimits {
  name: string;
  dailySats: number | null;
  maxSatsPerRequest: number | null;
}

export interface Reservation {
  requestId: string;
  client: string;
  /** UTC date the reservation counts against. */
  day: string;
  reservedMsat: number;
  /** Spent or held today by this client, this reservation included. */
  spentTodayMsat: number;
  dailyLimitMsat: number | null;
}

export interface ReservationRow {
  requestId: string;
  client: string;
  day: string;
  reservedMsat: number;
  chargedMsat: number | null;
  state: 'held' | 'settled';
}

/** The UTC calendar date of a clock reading, YYYY-MM-DD. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export class Budgets {
  private readonly s;
  private readonly reserveTx;
  private readonly settleTx;
  private readonly extendTx;

  constructor(db: DB, private readonly clock: () => number = Date.now) {
    migrateRequests(db);
    this.s = {
      spent: db.prepare('SELECT spent_msat FROM budget_days WHERE client = ? AND day = ?').pluck(),
      addSpent: db.prepare(`INSERT INTO budget_days (client, day, spent_msat) VALUES (?, ?, ?)
        ON CONFLICT (client, day) DO UPDATE SET spent_msat = spent_msat + excluded.spent_msat`),
      insert: db.prepare(`INSERT INTO budget_reservations (request_id, client, day, reserved_msat, state, created_at) VALUES (?, ?, ?, ?, 'held', ?)`),
      settle: db.prepare(`UPDATE budget_reservations SET state = 'settled', charged_msat = ?, settled_at = ? WHERE request_id = ?`),
      get: db.prepare('SELECT * FROM budget_reservations WHERE request_id = ?'),
      grow: db.prepare(`UPDATE budget_reservations SET reserved_msat = ? WHERE request_id = ? AND state = 'held'`),
    };
    this.reserveTx = db.transaction((requestId: string, client: BudgetLimits, worstCaseMsat: number): Reservation => {
      const now = this.clock();
      const day = utcDay(now);
      if (client.maxSatsPerRequest !== null && worstCaseMsat > client.maxSatsPerRequest * MSAT_PER_SAT) {
        throw new BudgetExceededError('per_request', worstCaseMsat, client.maxSatsPerRequest * MSAT_PER_SAT);
      }
      const spent = (this.s.spent.get(client.name, day) as number | undefined) ?? 0;
      const limit = client.dailySats === null ? null : client.dailySats * MSAT_PER_SAT;
      if (limit !== null && spent + worstCaseMsat > limit) throw new BudgetExceededError('daily', worstCaseMsat, Math.max(0, limit - spent));
      this.s.insert.run(requestId, client.name, day, worstCaseMsat, now);
      this.s.addSpent.run(client.name, day, worstCaseMsat);
      return { requestId, client: client.name, day, reservedMsat: worstCaseMsat, spentTodayMsat: spent + worstCaseMsat, dailyLimitMsat: limit };
    });
    this.settleTx = db.transaction((requestId: string, costMsat: number): boolean => {
      const r = this.get(requestId);
      if (!r) return false;
      // The day keeps counting this request at what it counted before, replaced by its cost.
      const before = r.state === 'held' ? r.reservedMsat : r.chargedMsat ?? 0;
      this.s.settle.run(costMsat, this.clock(), requestId);
      this.s.addSpent.run(r.client, r.day, costMsat - before);
      return true;
    });
    this.extendTx = db.transaction((requestId: string, client: BudgetLimits, toMsat: number): number => {
      const r = this.get(requestId);
      if (!r || r.state !== 'held') throw new RangeError(`request ${requestId} holds no reservation to extend`);
      if (toMsat <= r.reservedMsat) return r.reservedMsat;
      if (client.maxSatsPerRequest !== null && toMsat > client.maxSatsPerRequest * MSAT_PER_SAT) {
        throw new BudgetExceededError('per_request', toMsat, client.maxSatsPerRequest * MSAT_PER_SAT);
      }
      const extra = toMsat - r.reservedMsat;
      const spent = (this.s.spent.get(r.client, r.day) as number | undefined) ?? 0;
      const limit = client.dailySats === null ? null : client.dailySats * MSAT_PER_SAT;
      if (limit !== null && spent + extra > limit) throw new BudgetExceededError('daily', toMsat, Math.max(0, limit - spent + r.reservedMsat));
      this.s.grow.run(toMsat, requestId);
      this.s.addSpent.run(r.client, r.day, extra);
      return toMsat;
    });
  }

  /**
   * Reserve `worstCaseMsat` for a request of `client`, or throw BudgetExceededError. One
   * BEGIN IMMEDIATE transaction; inside the caller's transaction (e.g. with the request row) a
   * savepoint of it - begin that one with `.immediate` too, or a concurrent writer can make
   * SQLite refuse its upgrade from read to write (SQLITE_BUSY_SNAPSHOT).
   */
  reserve(requestId: string, client: BudgetLimits, worstCaseMsat: number): Reservation {
    if (!Number.isSafeInteger(worstCaseMsat) || worstCaseMsat < 0) throw new RangeError(`worst case must be a non-negative integer of msat, got ${worstCaseMsat}`);
    return this.reserveTx.immediate(requestId, client, worstCaseMsat);
  }

  /**
   * The request's real cost (what left the wallet for it, see requestCostMsat in ledger.ts)
   * replaces its reservation. Call again when a late outcome changes the cost. False if it had
   * no reservation.
   */
  settle(requestId: string, costMsat: number): boolean {
    if (!Number.isSafeInteger(costMsat) || costMsat < 0) throw new RangeError(`cost must be a non-negative integer of msat, got ${costMsat}`);
    return this.settleTx.immediate(requestId, costMsat);
  }

  /**
   * Raise a held reservation to `toMsat` (a top-up needs a bigger token than admission reserved),
   * checked against the same limits in one BEGIN IMMEDIATE transaction; BudgetExceededError if it
   * does not fit. Returns the reservation now held.
   */
  extend(requestId: string, client: BudgetLimits, toMsat: number): number {
    if (!Number.isSafeInteger(toMsat) || toMsat < 0) throw new RangeError(`reservation must be a non-negative integer of msat, got ${toMsat}`);
    return this.extendTx.immediate(requestId, client, toMsat);
  }

  /** Nothing was spent (refused before paying): the whole reservation returns to the budget. */
  release(requestId: string): boolean {
    return this.settle(requestId, 0);
  }

  get(requestId: string): ReservationRow | undefined {
    const r = this.s.get.get(requestId) as { request_id: string; client: string; day: string; reserved_msat: number; charged_msat: number | null; state: 'held' | 'settled' } | undefined;
    return r && { requestId: r.request_id, client: r.client, day: r.day, reservedMsat: r.reserved_msat, chargedMsat: r.charged_msat, state: r.state };
  }

  /** Held (at worst case) plus settled (at cost) today, UTC, for this client. */
  spentTodayMsat(client: string): number {
    return (this.s.spent.get(client, utcDay(this.clock())) as number | undefined) ?? 0;
  }
}
