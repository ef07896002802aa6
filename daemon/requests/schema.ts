// Tables of the request path (owner 'requests'): the request ledger - one row per request, one
// per provider attempt - and the budget reservations. Money columns carry their unit in the
// name: tokens move in whole sats (sent/change/fee/lost), costs are msat. JSON columns
// (flags, price snapshots, skipped candidates) are written and read in daemon/requests/rows.ts
// only. Shipped migrations are never edited: append a new one.
import { migrate, type DB } from '../../db/sqlite.ts';

export const REQUESTS_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE requests (
    id               TEXT PRIMARY KEY,
    time             INTEGER NOT NULL,          -- admission, ms since the epoch (injected clock)
    client           TEXT NOT NULL,             -- client key name
    endpoint         TEXT NOT NULL,
    model_requested  TEXT NOT NULL,
    model_served     TEXT,
    stream           INTEGER NOT NULL,
    payment          TEXT NOT NULL CHECK (payment IN ('xcashu', 'session')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    reserved_msat    INTEGER NOT NULL DEFAULT 0,
    -- The rest is the sum (flags: the union) of the attempts, rewritten with every attempt write.
    prompt_tokens    INTEGER,
    completion_tokens INTEGER,
    sent_sat         INTEGER NOT NULL DEFAULT 0,
    change_sat       INTEGER NOT NULL DEFAULT 0,
    fee_sat          INTEGER NOT NULL DEFAULT 0,
    lost_sat         INTEGER NOT NULL DEFAULT 0,
    charged_msat     INTEGER NOT NULL DEFAULT 0,
    expected_msat    INTEGER,
    reported_msat    INTEGER,
    flags            TEXT NOT NULL DEFAULT '[]',
    provider         TEXT,                      -- provider id of the last attempt (the one serving)
    provider_url     TEXT,
    mint             TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    price_snapshot   TEXT,                      -- the price of the first choice at routing time
    skipped          TEXT NOT NULL DEFAULT '[]',
    error_code       TEXT,
    error            TEXT,
    ended_at         INTEGER,
    updated_at       INTEGER NOT NULL
  );
  CREATE INDEX requests_time ON requests (time);
  CREATE INDEX requests_client_time ON requests (client, time);
  CREATE INDEX requests_open ON requests (status) WHERE status = 'pending';

  CREATE TABLE attempts (
    request_id        TEXT NOT NULL REFERENCES requests (id),
    n                 INTEGER NOT NULL,         -- 1, 2, 3 in the order tried
    provider_id       TEXT NOT NULL,
    provider_url      TEXT NOT NULL,
    model_id          TEXT NOT NULL,            -- the model id sent to this provider
    mint              TEXT,                     -- exactly as written into the token
    payment_id        TEXT UNIQUE,              -- the wallet's payment row (NULL in session mode)
    price_snapshot    TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    http_status       INTEGER,
    error_code        TEXT,
    error             TEXT,
    sent_sat          INTEGER NOT NULL DEFAULT 0,   -- face value of the token(s)
    fee_sat           INTEGER NOT NULL DEFAULT 0,   -- the mint's input fee the provider paid out of it
    change_sat        INTEGER NOT NULL DEFAULT 0,   -- change + refunds handed back, not invalid
    lost_sat          INTEGER NOT NULL DEFAULT 0,   -- valid change we could not bring in
    charged_msat      INTEGER NOT NULL DEFAULT 0,   -- (sent - change - fee) x 1000: what the provider kept
    expected_msat     INTEGER,                      -- usage x price snapshot
    reported_msat     INTEGER,                      -- the provider's own cost field
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    flags             TEXT NOT NULL DEFAULT '[]',
    started_at        INTEGER NOT NULL,
    first_byte_at     INTEGER,
    ended_at          INTEGER,
    PRIMARY KEY (request_id, n)
  );
  CREATE INDEX attempts_provider ON attempts (provider_id, started_at);

  -- One reservation per admitted request: held at the worst case, then set to the real cost.
  CREATE TABLE budget_reservations (
    request_id     TEXT PRIMARY KEY,
    client         TEXT NOT NULL,
    day            TEXT NOT NULL,              -- UTC date of admission, YYYY-MM-DD
    reserved_msat  INTEGER NOT NULL,
    charged_msat   INTEGER,                    -- NULL while held
    state          TEXT NOT NULL CHECK (state IN ('held', 'settled')),
    created_at     INTEGER NOT NULL,
    settled_at     INTEGER
  );
  CREATE INDEX budget_client_day ON budget_reservations (client, day);

  -- Per client and UTC day, the sum over its reservations of (held ? reserved : charged),
  -- kept by every reserve and settle so admission reads one row, however busy the day.
  CREATE TABLE budget_days (
    client      TEXT NOT NULL,
    day         TEXT NOT NULL,
    spent_msat  INTEGER NOT NULL,
    PRIMARY KEY (client, day)
  );
  `,
  // Session mode (daemon/requests/sessions.ts): an attempt paid from a balance at the provider
  // names its session and what the balance lost for it (no token: sent/change/fee stay 0).
  `
  ALTER TABLE attempts ADD COLUMN session_id TEXT;
  ALTER TABLE attempts ADD COLUMN session_charged_msat INTEGER;
  `,
];

/** Create or upgrade the request tables. Idempotent. */
export function migrateRequests(db: DB): void {
  migrate(db, 'requests', REQUESTS_MIGRATIONS);
}
