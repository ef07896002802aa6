// The append-only money ledger: every credit (+) and debit (-) of the wallet with its cause.
// Rows are written in the same db.transaction as the proof change they explain, so that for
// each (mint, unit): SUM(ledger rows that move proofs) = unspent + pending proofs, and the session
// rows account for the money held at providers (see wallet/invariant.ts).
// SQLite triggers refuse UPDATE and DELETE on the table.
import type { DB } from '../db/sqlite.ts';
import type { Clock } from './store.ts';
import { WalletError } from './errors.ts';

/**
 * - funding          + proofs minted from a paid Lightning invoice (ref: mint quote id)
 * - receive          + face value of a token swapped in (ref: swap id)
 * - payment_sent     - proofs handed to a provider, once the request settles (ref: request id)
 * - change_received  + face value of change swapped in (ref: request id)
 * - refund           + a refund token swapped in (ref: request id)
 * - mint_fee         - input fees (NUT-02) the mint kept on a swap or melt (ref: swap id / quote id)
 * - withdrawal       - the invoice amount of a melt (ref: melt quote id)
 * - withdrawal_fee   - the Lightning fee the mint actually spent on a melt (ref: melt quote id)
 * - loss             - money gone with evidence (spent proofs with no way back) (ref: what lost it)
 * Sessions (money deposited at a provider's balance; wallet/payments/sessions.ts):
 * - session_deposit  - proofs the provider redeemed into the session's balance, net of their input fee (ref: session id)
 * - session_refund   + the session's refund token swapped in (ref: session id)
 * - session_charge   - a request charged against the session, whole sats rounded up (ref: request id);
 *                      at close, a correction either way (ref: session id). Moves no proofs.
 * - session_loss     - a session balance gone with its provider, with evidence; + a correction should
 *                      it come back after all (ref: session id). Moves no proofs.
 */
export const LEDGER_KINDS = [
  'funding', 'receive', 'payment_sent', 'change_received', 'refund',
  'mint_fee', 'withdrawal', 'withdrawal_fee', 'loss',
  'session_deposit', 'session_refund', 'session_charge', 'session_loss',
] as const;
export type LedgerKind = (typeof LEDGER_KINDS)[number];

const CREDIT: ReadonlySet<LedgerKind> = new Set(['funding', 'receive', 'change_received', 'refund', 'session_refund']);
/** Kinds whose corrections go the other way (a debit by default). */
const EITHER: ReadonlySet<LedgerKind> = new Set(['session_charge', 'session_loss']);
/** Kinds that move no proofs: they say what became of money held at providers. */
export const HELD_ONLY_KINDS: ReadonlySet<LedgerKind> = new Set(['session_charge', 'session_loss']);

export interface LedgerEntry {
  kind: LedgerKind;
  mint: string;
  unit: string;
  /** Signed integer in `unit`: credits > 0, debits < 0 (checked). Zero rows are skipped. */
  amount: number;
  ref?: string | null;
  /** Anything that explains the row (mint answers, states, invoice); stored as JSON. Never secrets. */
  evidence?: unknown;
}

export interface LedgerRow extends Required<Omit<LedgerEntry, 'evidence'>> {
  id: number;
  time: number;
  evidence: unknown;
}

export interface LedgerQuery {
  since?: number;
  mint?: string;
  kind?: LedgerKind;
  ref?: string;
  limit?: number;
}

/** Totals per (mint, unit, kind): the parts of the invariant. */
export interface LedgerTotal {
  mint: string;
  unit: string;
  kind: LedgerKind;
  amount: number;
  count: number;
}

export class Ledger {
  private readonly insert;
  private readonly totalsStmt;

  constructor(readonly db: DB, private readonly clock: Clock = Date.now) {
    this.insert = db.prepare('INSERT INTO wallet_ledger (time, kind, mint, unit, amount, ref, evidence) VALUES (?,?,?,?,?,?,?)');
    this.totalsStmt = db.prepare('SELECT mint, unit, kind, SUM(amount) AS amount, COUNT(*) AS count FROM wallet_ledger GROUP BY mint, unit, kind ORDER BY mint, unit, kind');
  }

  /**
   * Append one row; synchronous, so call it inside the db.transaction that moves the proofs.
   * Returns the row id, or null for a zero amount (nothing happened to the balance).
   */
  record(entry: LedgerEntry): number | null {
    const { kind, amount } = entry;
    if (!LEDGER_KINDS.includes(kind)) throw new WalletError(`unknown ledger kind ${kind}`);
    if (!Number.isSafeInteger(amount)) throw new WalletError(`ledger amount ${amount} is not an integer`);
    if (amount === 0) return null;
    if (!EITHER.has(kind) && (CREDIT.has(kind) ? amount < 0 : amount > 0)) throw new WalletError(`ledger ${kind} must be ${CREDIT.has(kind) ? 'a credit (> 0)' : 'a debit (< 0)'}, got ${amount}`);
    const evidence = entry.evidence === undefined ? null : JSON.stringify(entry.evidence);
    return Number(this.insert.run(this.clock(), kind, entry.mint, entry.unit, amount, entry.ref ?? null, evidence).lastInsertRowid);
  }

  /** Rows, newest first. */
  list(q: LedgerQuery = {}): LedgerRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.since !== undefined) { where.push('time >= ?'); args.push(q.since); }
    if (q.mint) { where.push('mint = ?'); args.push(q.mint); }
    if (q.kind) { where.push('kind = ?'); args.push(q.kind); }
    if (q.ref) { where.push('ref = ?'); args.push(q.ref); }
    const sql = `SELECT * FROM wallet_ledger ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ?`;
    args.push(q.limit ?? -1);
    return (this.db.prepare(sql).all(...args) as (Omit<LedgerRow, 'evidence'> & { evidence: string | null })[]).map((r) => ({
      ...r,
      evidence: r.evidence ? JSON.parse(r.evidence) : null,
    }));
  }

  totals(): LedgerTotal[] {
    return this.totalsStmt.all() as LedgerTotal[];
  }

  /** What the ledger says the proofs of each (mint, unit) add up to (rows that move no proofs left out). */
  balances(): { mint: string; unit: string; amount: number }[] {
    const m = new Map<string, { mint: string; unit: string; amount: number }>();
    for (const t of this.totals()) {
      if (HELD_ONLY_KINDS.has(t.kind)) continue;
      const k = `${t.mint}\n${t.unit}`;
      const cur = m.get(k) ?? { mint: t.mint, unit: t.unit, amount: 0 };
      cur.amount += t.amount;
      m.set(k, cur);
    }
    return [...m.values()];
  }
}
