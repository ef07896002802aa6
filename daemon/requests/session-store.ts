// The session manager's own rows (owner 'sessions'): which balance at which provider a session
// is, and its API key. The money (deposited, charged, refunded, lost) is the wallet's
// (wallet/payments/sessions.ts, `wallet_sessions`, same session id); this table only knows how
// to reach the balance again after a restart.
//
// The API key is a bearer secret, kept like the NWC secret: in the 0600 database file of the
// 0700 data directory, never logged, never in an error, never shown by status or the audit.
// Crash window: the row (with the key, computed from the token before it is sent) is written
// in the transaction that takes the first deposit's proofs, so a crash after the node redeemed
// the token still leaves the key to refund with on start.
import { migrate, type DB } from '../../db/sqlite.ts';

export const SESSION_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE provider_sessions (
    session_id    TEXT PRIMARY KEY,
    provider_id   TEXT NOT NULL,
    provider_url  TEXT NOT NULL,
    mint          TEXT NOT NULL,            -- our wallet's mint (normalised URL)
    token_mint    TEXT NOT NULL,            -- its spelling as the provider lists it
    api_key       TEXT NOT NULL,            -- bearer secret: never logged
    state         TEXT NOT NULL CHECK (state IN ('open', 'closing', 'closed')),
    flags         TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL
  );
  CREATE INDEX provider_sessions_open ON provider_sessions (state) WHERE state <> 'closed';
  `,
];

export type SessionRowState = 'open' | 'closing' | 'closed';

export interface SessionRow {
  sessionId: string;
  providerId: string;
  providerUrl: string;
  mint: string;
  tokenMint: string;
  apiKey: string;
  state: SessionRowState;
  flags: string[];
  createdAt: number;
  lastUsedAt: number;
}

interface DbRow {
  session_id: string; provider_id: string; provider_url: string; mint: string; token_mint: string; api_key: string; state: SessionRowState;
  flags: string; created_at: number; last_used_at: number;
}

const fromDb = (r: DbRow): SessionRow => ({
  sessionId: r.session_id, providerId: r.provider_id, providerUrl: r.provider_url, mint: r.mint, tokenMint: r.token_mint, apiKey: r.api_key,
  state: r.state, flags: JSON.parse(r.flags) as string[], createdAt: r.created_at, lastUsedAt: r.last_used_at,
});

export class SessionStore {
  private readonly s;

  constructor(db: DB, private readonly clock: () => number) {
    migrate(db, 'sessions', SESSION_MIGRATIONS);
    this.s = {
      insert: db.prepare(`INSERT INTO provider_sessions (session_id, provider_id, provider_url, mint, token_mint, api_key, state, created_at, last_used_at)
        VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)`),
      get: db.prepare('SELECT * FROM provider_sessions WHERE session_id = ?'),
      unclosed: db.prepare(`SELECT * FROM provider_sessions WHERE state <> 'closed' ORDER BY created_at`),
      state: db.prepare('UPDATE provider_sessions SET state = ? WHERE session_id = ?'),
      touch: db.prepare('UPDATE provider_sessions SET last_used_at = ? WHERE session_id = ?'),
      flags: db.prepare('UPDATE provider_sessions SET flags = ? WHERE session_id = ?'),
    };
  }

  /** A new session, open. Call inside the first deposit's transaction. */
  insert(r: Omit<SessionRow, 'state' | 'flags' | 'createdAt' | 'lastUsedAt'>): void {
    const now = this.clock();
    this.s.insert.run(r.sessionId, r.providerId, r.providerUrl, r.mint, r.tokenMint, r.apiKey, now, now);
  }

  get(sessionId: string): SessionRow | undefined {
    const r = this.s.get.get(sessionId) as DbRow | undefined;
    return r ? fromDb(r) : undefined;
  }

  /** Sessions not yet closed (a crash left them behind when read on start). */
  unclosed(): SessionRow[] {
    return (this.s.unclosed.all() as DbRow[]).map(fromDb);
  }

  setState(sessionId: string, state: SessionRowState): void {
    this.s.state.run(state, sessionId);
  }

  touch(sessionId: string, at = this.clock()): void {
    this.s.touch.run(at, sessionId);
  }

  flag(sessionId: string, flag: string): boolean {
    const r = this.get(sessionId);
    if (!r || r.flags.includes(flag)) return false;
    this.s.flags.run(JSON.stringify([...r.flags, flag]), sessionId);
    return true;
  }
}
