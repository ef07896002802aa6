// Tables of the router-facing payment path (owner 'payments'): one row per payment (one attempt
// of a request at one provider), and the persistent change queue. Shipped migrations are never
// edited: append a new one.
import { migrate, type DB } from '../../db/sqlite.ts';
import { migrateWallet } from '../schema.ts';

export const PAYMENTS_MIGRATIONS: readonly string[] = [
  `
  -- One token handed to a provider for a request. token is the exact string sent: the
  -- provider's refund endpoint looks it up byte for byte.
  CREATE TABLE payments (
    request_id    TEXT PRIMARY KEY,
    mint          TEXT NOT NULL,
    unit          TEXT NOT NULL,
    provider_url  TEXT,
    token         TEXT NOT NULL,
    amount        INTEGER NOT NULL,   -- what the provider should net
    sent          INTEGER NOT NULL,   -- face value of the token = amount + fee + overpay
    fee           INTEGER NOT NULL,   -- NUT-02 input fee the provider pays out of the token
    overpay       INTEGER NOT NULL,
    roundtrip     INTEGER NOT NULL,   -- 1 if taking the token needed a swap at the mint
    state         TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'reclaimed', 'refund_wait', 'refunded', 'lost')),
    flags         TEXT NOT NULL DEFAULT '[]',
    evidence      TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  );
  CREATE INDEX payments_open ON payments (state) WHERE state IN ('pending', 'refund_wait');

  -- Change and refund tokens waiting to be swapped in. Counted as balance only once received.
  CREATE TABLE payment_change (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('change', 'refund')),
    mint        TEXT NOT NULL,
    unit        TEXT NOT NULL,
    token       TEXT NOT NULL,
    claimed     INTEGER NOT NULL,     -- face value the token says it has
    state       TEXT NOT NULL CHECK (state IN ('queued', 'swapping', 'received', 'invalid', 'lost')),
    swap_id     TEXT,
    solo        INTEGER NOT NULL DEFAULT 0,   -- swap alone: a batch it was in was refused
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    received    INTEGER,              -- claimed - fee share, once swapped
    fee         INTEGER,
    error       TEXT,
    evidence    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );
  CREATE INDEX payment_change_due ON payment_change (mint, unit, next_at) WHERE state = 'queued';
  CREATE INDEX payment_change_request ON payment_change (request_id);
  CREATE INDEX payment_change_swap ON payment_change (swap_id) WHERE swap_id IS NOT NULL;

  -- Retry state of the swaps this path runs (rows of wallet_swaps with the same id).
  -- in_flight: a call is out (still 1 after a crash); uncertain: an attempt got no usable
  -- answer, so the mint may already have done the swap.
  CREATE TABLE payment_swaps (
    swap_id    TEXT PRIMARY KEY,
    attempts   INTEGER NOT NULL DEFAULT 0,
    in_flight  INTEGER NOT NULL DEFAULT 0,
    uncertain  INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL
  );
  `,
  `
  -- One payment row per ATTEMPT, keyed by the router's payment id (\`<requestId>.<n>\`): each
  -- provider tried gets its own token. Rows of earlier versions keep their request id as id.
  ALTER TABLE payments RENAME COLUMN request_id TO payment_id;
  ALTER TABLE payment_change RENAME COLUMN request_id TO payment_id;
  -- The mint URL exactly as the provider lists it, as written into the token (NULL: as \`mint\`).
  ALTER TABLE payments ADD COLUMN token_mint TEXT;
  -- Swap retry state lives on the swap's own row now (one swap service, wallet/swap/).
  UPDATE wallet_swaps SET attempts = p.attempts, in_flight = p.in_flight, uncertain = p.uncertain, next_at = p.next_at
    FROM payment_swaps p WHERE p.swap_id = wallet_swaps.id;
  DROP TABLE payment_swaps;
  `,
  `
  -- What a refund 404 means depends on the node's version and on how long ago the token went out
  -- (protocol/refund.ts notFoundPendingMs): the version the router knew, and when the token (or
  -- its top-up) was sent (NULL on older rows: created_at).
  ALTER TABLE payments ADD COLUMN provider_version TEXT;
  ALTER TABLE payments ADD COLUMN token_at INTEGER;
  `,
  `
  -- payment_change gains a kind (session_refund: a session balance coming home, payment_id = the
  -- session id) and a state (own: a token whose proofs are our own - an echo of what we sent -
  -- never swapped in as change). SQLite cannot alter a CHECK: the table is rebuilt, rows kept.
  CREATE TABLE payment_change_v4 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('change', 'refund', 'session_refund')),
    mint        TEXT NOT NULL,
    unit        TEXT NOT NULL,
    token       TEXT NOT NULL,
    claimed     INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'swapping', 'received', 'invalid', 'lost', 'own')),
    swap_id     TEXT,
    solo        INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    received    INTEGER,
    fee         INTEGER,
    error       TEXT,
    evidence    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );
  INSERT INTO payment_change_v4 (id, payment_id, kind, mint, unit, token, claimed, state, swap_id, solo, attempts, next_at, received, fee, error, evidence, created_at, updated_at)
    SELECT id, payment_id, kind, mint, unit, token, claimed, state, swap_id, solo, attempts, next_at, received, fee, error, evidence, created_at, updated_at FROM payment_change;
  DROP TABLE payment_change;
  ALTER TABLE payment_change_v4 RENAME TO payment_change;
  CREATE INDEX payment_change_due ON payment_change (mint, unit, next_at) WHERE state = 'queued';
  CREATE INDEX payment_change_payment ON payment_change (payment_id);
  CREATE INDEX payment_change_swap ON payment_change (swap_id) WHERE swap_id IS NOT NULL;
  `,
  `
  -- A deposit into a session at the provider's balance mode (wallet_sessions) is a payment too: a
  -- token taken like any other, credited to the session once the node redeems it (NULL: X-Cashu).
  ALTER TABLE payments ADD COLUMN session_id TEXT;
  `,
];

/** Create or upgrade the payment tables (and the wallet's, which they refer to). Idempotent. */
export function migratePayments(db: DB): void {
  migrateWallet(db);
  migrate(db, 'payments', PAYMENTS_MIGRATIONS);
}
