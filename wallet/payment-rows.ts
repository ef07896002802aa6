// The `payments` table: one row per token handed to a provider, from takeToken to its end
// (settled, reclaimed, refunded or lost). Synchronous; call inside the transaction that moves
// the proofs it describes.
import type { DB } from '../db/sqlite.ts';
import type { Clock } from './store.ts';
import { WalletError } from './errors.ts';

export type PaymentState = 'pending' | 'settled' | 'reclaimed' | 'refund_wait' | 'refunded' | 'lost';

/** What takeToken records. */
export interface NewPayment {
  requestId: string;
  mint: string;
  unit: string;
  providerUrl: string | null;
  /** The exact token string sent (the refund endpoint matches it byte for byte). */
  token: string;
  amount: number;
  sent: number;
  fee: number;
  overpay: number;
  roundtrip: boolean;
}

export interface PaymentRow extends NewPayment {
  state: PaymentState;
  flags: string[];
  evidence: unknown;
  attempts: number;
  nextAt: number | null;
  createdAt: number;
}

export class PaymentError extends WalletError {
  override name = 'PaymentError';
  override readonly code: string = 'payment_failed';
}

/** The request is not in a state that allows this (e.g. settling a reclaimed payment). */
export class PaymentStateError extends PaymentError {
  override name = 'PaymentStateError';
  override readonly code = 'payment_state';
}

interface DbRow {
  request_id: string; mint: string; unit: string; provider_url: string | null; token: string; amount: number; sent: number;
  fee: number; overpay: number; roundtrip: number; state: PaymentState; flags: string; evidence: string | null;
  attempts: number; next_at: number | null; created_at: number;
}

export class PaymentRows {
  private readonly s;

  constructor(db: DB, private readonly clock: Clock) {
    this.s = {
      insert: db.prepare(`INSERT INTO payments (request_id, mint, unit, provider_url, token, amount, sent, fee, overpay, roundtrip, state, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`),
      replaceToken: db.prepare(`UPDATE payments SET token = ?, amount = ?, sent = ?, fee = ?, overpay = ?, roundtrip = MAX(roundtrip, ?), updated_at = ?
        WHERE request_id = ? AND state = 'pending'`),
      get: db.prepare('SELECT * FROM payments WHERE request_id = ?'),
      setState: db.prepare('UPDATE payments SET state = ?, evidence = COALESCE(?, evidence), updated_at = ? WHERE request_id = ?'),
      wait: db.prepare(`UPDATE payments SET state = 'refund_wait', attempts = attempts + 1, next_at = ?, evidence = ?, updated_at = ? WHERE request_id = ?`),
      flags: db.prepare('UPDATE payments SET flags = ?, updated_at = ? WHERE request_id = ?'),
      waiting: db.prepare(`SELECT * FROM payments WHERE state = 'refund_wait' AND next_at <= ? ORDER BY next_at`),
      stats: db.prepare('SELECT COUNT(*) AS tokens, COALESCE(SUM(roundtrip), 0) AS roundtrips FROM payments'),
    };
  }

  insert(p: NewPayment): void {
    const now = this.clock();
    try {
      this.s.insert.run(p.requestId, p.mint, p.unit, p.providerUrl, p.token, p.amount, p.sent, p.fee, p.overpay, p.roundtrip ? 1 : 0, now, now);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new PaymentStateError(`request ${p.requestId} already has a token`);
      throw err;
    }
  }

  /** A new token for a pending request (after a 402 asked for more). */
  replaceToken(requestId: string, p: Pick<NewPayment, 'token' | 'amount' | 'sent' | 'fee' | 'overpay' | 'roundtrip'>): void {
    const n = this.s.replaceToken.run(p.token, p.amount, p.sent, p.fee, p.overpay, p.roundtrip ? 1 : 0, this.clock(), requestId).changes;
    if (n !== 1) throw new PaymentStateError(`request ${requestId} has no pending token`);
  }

  get(requestId: string): PaymentRow | undefined {
    const r = this.s.get.get(requestId) as DbRow | undefined;
    return r ? fromDb(r) : undefined;
  }

  /** The row, which must be in one of `states`. */
  require(requestId: string, ...states: PaymentState[]): PaymentRow {
    const row = this.get(requestId);
    if (!row) throw new PaymentStateError(`no payment for request ${requestId}`);
    if (states.length && !states.includes(row.state)) throw new PaymentStateError(`payment for request ${requestId} is ${row.state}, not ${states.join(' or ')}`);
    return row;
  }

  setState(requestId: string, state: PaymentState, evidence?: unknown): void {
    this.s.setState.run(state, evidence === undefined ? null : JSON.stringify(evidence), this.clock(), requestId);
  }

  /** Ask the provider for the refund again at `nextAt`. */
  waitForRefund(requestId: string, nextAt: number, evidence: unknown): void {
    this.s.wait.run(nextAt, JSON.stringify(evidence), this.clock(), requestId);
  }

  addFlag(requestId: string, flag: string): void {
    const row = this.get(requestId);
    if (!row || row.flags.includes(flag)) return;
    this.s.flags.run(JSON.stringify([...row.flags, flag]), this.clock(), requestId);
  }

  refundsDue(now: number): PaymentRow[] {
    return (this.s.waiting.all(now) as DbRow[]).map(fromDb);
  }

  /** Tokens taken so far and how many needed a mint round trip. */
  stats(): { tokens: number; roundtrips: number } {
    return this.s.stats.get() as { tokens: number; roundtrips: number };
  }
}

function fromDb(r: DbRow): PaymentRow {
  return {
    requestId: r.request_id, mint: r.mint, unit: r.unit, providerUrl: r.provider_url, token: r.token, amount: r.amount, sent: r.sent,
    fee: r.fee, overpay: r.overpay, roundtrip: r.roundtrip === 1, state: r.state, flags: JSON.parse(r.flags) as string[],
    evidence: r.evidence ? JSON.parse(r.evidence) : null, attempts: r.attempts, nextAt: r.next_at, createdAt: r.created_at,
  };
}
