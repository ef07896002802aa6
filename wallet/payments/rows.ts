// The `payments` table: one row per payment, i.e. per token handed to a provider (the router's
// attempt `<requestId>.<n>`), from takeToken to its end (settled, reclaimed, refunded or lost).
// Payments are made in sat. Synchronous; call inside the transaction that moves the proofs it
// describes.
import type { DB } from '../../db/sqlite.ts';
import { sat, type Sat } from '../../protocol/units.ts';
import { PaymentStateError } from '../errors.ts';
import type { Clock } from '../store.ts';

export type PaymentState = 'pending' | 'settled' | 'reclaimed' | 'refund_wait' | 'refunded' | 'lost';

/** What takeToken records. */
export interface NewPayment {
  paymentId: string;
  /** Our wallet's (normalised) mint URL. */
  mint: string;
  /** The mint URL exactly as the provider lists it, as written into the token. */
  tokenMint: string;
  unit: 'sat';
  /** Base URL of the provider the token went to (null only on rows from before it was required). */
  providerUrl: string | null;
  /** The provider's node version as the router knew it (what its refund answers mean), if known. */
  providerVersion: string | null;
  /** A deposit into this session (wallet/payments/sessions.ts); null for an X-Cashu payment. */
  sessionId: string | null;
  /** The exact token string sent (the refund endpoint matches it byte for byte). */
  token: string;
  /** What the provider should net. */
  amountSat: Sat;
  /** Face value of the token = amount + fee + overpay. */
  sentSat: Sat;
  /** NUT-02 input fee the provider pays the mint out of the token. */
  feeSat: Sat;
  overpaySat: Sat;
  /** Taking the token needed a swap at the mint. */
  roundtrip: boolean;
}

export interface PaymentRow extends NewPayment {
  state: PaymentState;
  flags: string[];
  evidence: unknown;
  /** Refund rounds asked so far, and when to ask again (refund_wait). */
  attempts: number;
  nextAt: number | null;
  createdAt: number;
  /** When the current token was taken (a top-up replaces it). */
  tokenAt: number;
}

interface DbRow {
  payment_id: string; mint: string; token_mint: string | null; unit: string; provider_url: string | null; provider_version: string | null; token_at: number | null; session_id: string | null; token: string; amount: number; sent: number;
  fee: number; overpay: number; roundtrip: number; state: PaymentState; flags: string; evidence: string | null;
  attempts: number; next_at: number | null; created_at: number;
}

export class PaymentRows {
  private readonly s;

  constructor(db: DB, private readonly clock: Clock) {
    this.s = {
      insert: db.prepare(`INSERT INTO payments (payment_id, mint, token_mint, unit, provider_url, provider_version, session_id, token, amount, sent, fee, overpay, roundtrip, state, token_at, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`),
      replaceToken: db.prepare(`UPDATE payments SET token = ?, amount = ?, sent = ?, fee = ?, overpay = ?, roundtrip = MAX(roundtrip, ?), token_at = ?, updated_at = ?
        WHERE payment_id = ? AND state = 'pending'`),
      get: db.prepare('SELECT * FROM payments WHERE payment_id = ?'),
      setState: db.prepare('UPDATE payments SET state = ?, evidence = COALESCE(?, evidence), updated_at = ? WHERE payment_id = ?'),
      wait: db.prepare(`UPDATE payments SET state = 'refund_wait', attempts = attempts + 1, next_at = ?, evidence = ?, updated_at = ? WHERE payment_id = ?`),
      flags: db.prepare('UPDATE payments SET flags = ?, updated_at = ? WHERE payment_id = ?'),
      waiting: db.prepare(`SELECT * FROM payments WHERE state = 'refund_wait' AND next_at <= ? ORDER BY next_at`),
      stats: db.prepare('SELECT COUNT(*) AS tokens, COALESCE(SUM(roundtrip), 0) AS roundtrips FROM payments'),
    };
  }

  insert(p: NewPayment): void {
    const now = this.clock();
    try {
      this.s.insert.run(p.paymentId, p.mint, p.tokenMint === p.mint ? null : p.tokenMint, p.unit, p.providerUrl, p.providerVersion, p.sessionId, p.token, p.amountSat, p.sentSat, p.feeSat, p.overpaySat, p.roundtrip ? 1 : 0, now, now, now);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new PaymentStateError(`payment ${p.paymentId} already has a token`);
      throw err;
    }
  }

  /** A new token for a pending payment (after a 402 asked for more). */
  replaceToken(paymentId: string, p: Pick<NewPayment, 'token' | 'amountSat' | 'sentSat' | 'feeSat' | 'overpaySat' | 'roundtrip'>): void {
    const now = this.clock();
    const n = this.s.replaceToken.run(p.token, p.amountSat, p.sentSat, p.feeSat, p.overpaySat, p.roundtrip ? 1 : 0, now, now, paymentId).changes;
    if (n !== 1) throw new PaymentStateError(`payment ${paymentId} has no pending token`);
  }

  get(paymentId: string): PaymentRow | undefined {
    const r = this.s.get.get(paymentId) as DbRow | undefined;
    return r ? fromDb(r) : undefined;
  }

  /** The row, which must be in one of `states`. */
  require(paymentId: string, ...states: PaymentState[]): PaymentRow {
    const row = this.get(paymentId);
    if (!row) throw new PaymentStateError(`no payment ${paymentId}`);
    if (states.length && !states.includes(row.state)) throw new PaymentStateError(`payment ${paymentId} is ${row.state}, not ${states.join(' or ')}`);
    return row;
  }

  setState(paymentId: string, state: PaymentState, evidence?: unknown): void {
    this.s.setState.run(state, evidence === undefined ? null : JSON.stringify(evidence), this.clock(), paymentId);
  }

  /** Ask the provider for the refund again at `nextAt`. */
  waitForRefund(paymentId: string, nextAt: number, evidence: unknown): void {
    this.s.wait.run(nextAt, JSON.stringify(evidence), this.clock(), paymentId);
  }

  addFlag(paymentId: string, flag: string): void {
    const row = this.get(paymentId);
    if (!row || row.flags.includes(flag)) return;
    this.s.flags.run(JSON.stringify([...row.flags, flag]), this.clock(), paymentId);
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
  if (r.unit !== 'sat') throw new PaymentStateError(`payment ${r.payment_id} is in ${r.unit}; payments are made in sat`);
  return {
    paymentId: r.payment_id, mint: r.mint, tokenMint: r.token_mint ?? r.mint, unit: 'sat', providerUrl: r.provider_url, providerVersion: r.provider_version, sessionId: r.session_id, token: r.token,
    amountSat: sat(r.amount), sentSat: sat(r.sent), feeSat: sat(r.fee), overpaySat: sat(r.overpay), roundtrip: r.roundtrip === 1,
    state: r.state, flags: JSON.parse(r.flags) as string[], evidence: r.evidence ? JSON.parse(r.evidence) : null,
    attempts: r.attempts, nextAt: r.next_at, createdAt: r.created_at, tokenAt: r.token_at ?? r.created_at,
  };
}
