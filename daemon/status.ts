// What `satroute status` (and the `daemon.status` control method) shows beside the wallet and
// the market: today's spend, requests whose settlement is not final, breakers not closed. Read
// from the database alone, with plain SELECTs, so the CLI shows the same figures whether the
// daemon runs (it asks the daemon) or not (it reads the data directory; WAL lets a reader sit
// beside a writer). A table a fresh data directory does not have yet reads as empty.
import type { DB } from '../db/sqlite.ts';
import { utcDay } from './requests/budgets.ts';

export interface BreakerNotClosed {
  provider_id: string;
  /** null: the whole provider. */
  model_id: string | null;
  state: 'open' | 'half_open';
  open_until: string | null;
}

export interface BooksStatus {
  /** The UTC day the spend is counted for (budgets count the same days). */
  day: string;
  /** What providers kept today (sent - change - fees), in msat. */
  spent_today_msat: number;
  /** Requests admitted today (any outcome). */
  requests_today: number;
  /** Payments whose outcome is not final yet (change to swap, a refund awaited, unknown). */
  pending_settlements: number;
  breakers_not_closed: BreakerNotClosed[];
}

const hasTable = (db: DB, name: string): boolean =>
  db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(name) !== undefined;

/** Payments whose settlement is not final (the wallet's states `pending` and `refund_wait`). */
export function pendingSettlements(db: DB): number {
  if (!hasTable(db, 'payments')) return 0;
  return db.prepare(`SELECT COUNT(*) FROM payments WHERE state IN ('pending', 'refund_wait')`).pluck().get() as number;
}

/** Today's spend, pending settlements and breakers not closed, at `nowMs` (epoch ms). */
export function booksStatus(db: DB, nowMs: number): BooksStatus {
  const day = utcDay(nowMs);
  const dayStart = Date.parse(`${day}T00:00:00.000Z`);
  let spent = 0;
  let requests = 0;
  if (hasTable(db, 'requests')) {
    const r = db.prepare('SELECT COALESCE(SUM(charged_msat), 0) AS spent, COUNT(*) AS n FROM requests WHERE time >= ?').get(dayStart) as { spent: number; n: number };
    spent = r.spent;
    requests = r.n;
  }
  const breakers: BreakerNotClosed[] = [];
  if (hasTable(db, 'route_breakers')) {
    const rows = db.prepare(`SELECT provider_id, model_id, state, open_until FROM route_breakers WHERE state != 'closed' ORDER BY provider_id, model_id`).all() as { provider_id: string; model_id: string; state: 'open' | 'half_open'; open_until: number | null }[];
    for (const b of rows) breakers.push({ provider_id: b.provider_id, model_id: b.model_id === '' ? null : b.model_id, state: b.state, open_until: b.open_until === null ? null : new Date(b.open_until).toISOString() });
  }
  return { day, spent_today_msat: spent, requests_today: requests, pending_settlements: pendingSettlements(db), breakers_not_closed: breakers };
}
