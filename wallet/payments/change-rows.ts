// The change queue's rows in SQLite (table payment_change): their shape, the statements that read
// and move them, and the conversion from a database row. The queue's logic is change-queue.ts.
import type { DB } from '../../db/sqlite.ts';

/** change / refund: a payment's (payment_id: the payment); session_refund: a session's balance coming home (payment_id: the session). */
export type ChangeKind = 'change' | 'refund' | 'session_refund';
export type ChangeState = 'queued' | 'swapping' | 'received' | 'invalid' | 'lost' | 'own';

export interface ChangeRow {
  id: number;
  paymentId: string;
  kind: ChangeKind;
  mint: string;
  unit: string;
  claimed: number;
  state: ChangeState;
  received: number | null;
  fee: number | null;
  attempts: number;
  error: string | null;
  evidence: unknown;
}

/** A payment_change row as SQLite returns it. */
export interface DbRow {
  id: number; payment_id: string; kind: ChangeKind; mint: string; unit: string; token: string; claimed: number;
  state: ChangeState; swap_id: string | null; solo: number; attempts: number; next_at: number;
  received: number | null; fee: number | null; error: string | null; evidence: string | null;
}

/** The statements the change queue runs, prepared once. */
export function changeStatements(db: DB) {
  return {
    insert: db.prepare(`INSERT INTO payment_change (payment_id, kind, mint, unit, token, claimed, state, error, evidence, next_at, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    due: db.prepare(`SELECT * FROM payment_change WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, id LIMIT 500`),
    bySwap: db.prepare('SELECT * FROM payment_change WHERE swap_id = ? ORDER BY id'),
    byPayment: db.prepare('SELECT * FROM payment_change WHERE payment_id = ? ORDER BY id'),
    toSwapping: db.prepare(`UPDATE payment_change SET state = 'swapping', swap_id = ?, attempts = attempts + 1, updated_at = ? WHERE id = ? AND state = 'queued'`),
    received: db.prepare(`UPDATE payment_change SET state = 'received', received = ?, fee = ?, error = NULL, updated_at = ? WHERE id = ?`),
    requeue: db.prepare(`UPDATE payment_change SET state = 'queued', swap_id = NULL, solo = ?, next_at = ?, error = ?, updated_at = ? WHERE id = ?`),
    retryLater: db.prepare(`UPDATE payment_change SET attempts = attempts + 1, next_at = ?, error = ?, updated_at = ? WHERE id = ?`),
    keep: db.prepare(`UPDATE payment_change SET state = 'queued', swap_id = NULL, solo = 1, attempts = ?, next_at = ?, error = ?, updated_at = ? WHERE id = ?`),
    refuse: db.prepare(`UPDATE payment_change SET state = ?, error = ?, evidence = ?, updated_at = ? WHERE id = ?`),
    setClaimed: db.prepare('UPDATE payment_change SET claimed = ? WHERE id = ?'),
    get: db.prepare('SELECT * FROM payment_change WHERE id = ?'),
    sameToken: db.prepare(`SELECT * FROM payment_change WHERE payment_id = ? AND token = ? AND state <> 'invalid' ORDER BY id LIMIT 1`),
    openCount: db.prepare(`SELECT COUNT(*) AS n FROM payment_change WHERE state IN ('queued', 'swapping')`),
  };
}

export type ChangeStatements = ReturnType<typeof changeStatements>;

export function fromDb(r: DbRow): ChangeRow {
  return {
    id: r.id, paymentId: r.payment_id, kind: r.kind, mint: r.mint, unit: r.unit, claimed: r.claimed, state: r.state,
    received: r.received, fee: r.fee, attempts: r.attempts, error: r.error, evidence: r.evidence ? JSON.parse(r.evidence) : null,
  };
}
