// The wallet's SQLite tables. Shipped migrations are never edited: append a new one.
//
// Money rule (checked by wallet/invariant.ts): for every (mint, unit),
//   SUM(wallet_ledger.amount) over every kind but session_charge and session_loss
//     = SUM(amount of wallet_proofs in state unspent or pending),
// and the session rows (session_deposit, session_refund, session_charge, session_loss) account for
// what wallet_sessions holds at providers. So any transaction that creates or destroys proofs
// writes the matching ledger rows in the same db.transaction; moving a proof unspent <-> pending
// needs no ledger row.
import { migrate, type DB } from '../db/sqlite.ts';

export const WALLET_MIGRATIONS: readonly string[] = [
  `
  -- Every proof we hold or held. secret is unique across all mints (it is random).
  CREATE TABLE wallet_proofs (
    secret       TEXT PRIMARY KEY,
    mint         TEXT NOT NULL,
    unit         TEXT NOT NULL,
    keyset_id    TEXT NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    c            TEXT NOT NULL,
    dleq         TEXT,            -- JSON {e,s,r}
    witness      TEXT,            -- JSON or string, as cashu-ts gave it
    p2pk_e       TEXT,
    state        TEXT NOT NULL CHECK (state IN ('unspent', 'pending', 'spent')),
    reason_kind  TEXT CHECK (reason_kind IN ('request', 'swap', 'melt', 'send')),
    reason_ref   TEXT,            -- request id, swap id, melt quote id; kept once spent
    source       TEXT NOT NULL,   -- what created it: 'mint:<quote>', 'swap:<id>', 'melt:<quote>', ...
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CHECK (state <> 'pending' OR (reason_kind IS NOT NULL AND reason_ref IS NOT NULL)),
    CHECK (state <> 'unspent' OR (reason_kind IS NULL AND reason_ref IS NULL))
  );
  CREATE INDEX wallet_proofs_unspent ON wallet_proofs (mint, unit, amount) WHERE state = 'unspent';
  CREATE INDEX wallet_proofs_reason ON wallet_proofs (reason_ref) WHERE reason_ref IS NOT NULL;
  CREATE INDEX wallet_proofs_pending ON wallet_proofs (state) WHERE state = 'pending';

  -- Append-only money ledger: every credit (+) and debit (-) with its cause.
  CREATE TABLE wallet_ledger (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    time      INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    mint      TEXT NOT NULL,
    unit      TEXT NOT NULL,
    amount    INTEGER NOT NULL,
    ref       TEXT,
    evidence  TEXT
  );
  CREATE INDEX wallet_ledger_ref ON wallet_ledger (ref);
  CREATE INDEX wallet_ledger_mint ON wallet_ledger (mint, unit);
  CREATE TRIGGER wallet_ledger_no_update BEFORE UPDATE ON wallet_ledger
    BEGIN SELECT RAISE(ABORT, 'wallet_ledger is append-only'); END;
  CREATE TRIGGER wallet_ledger_no_delete BEFORE DELETE ON wallet_ledger
    BEGIN SELECT RAISE(ABORT, 'wallet_ledger is append-only'); END;

  -- Mint quotes (funding). outputs = serialised OutputData, written BEFORE the mint call.
  CREATE TABLE wallet_mint_quotes (
    quote_id    TEXT PRIMARY KEY,
    mint        TEXT NOT NULL,
    unit        TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    request     TEXT NOT NULL,
    expiry      INTEGER,
    state       TEXT NOT NULL CHECK (state IN ('unpaid', 'paid', 'minting', 'issued', 'expired', 'lost')),
    outputs     TEXT,
    pay_via     TEXT,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );
  CREATE INDEX wallet_mint_quotes_open ON wallet_mint_quotes (state) WHERE state IN ('unpaid', 'paid', 'minting');

  -- Melts (withdrawals). Inputs are the proofs pending(melt, quote_id); outputs = blank
  -- outputs for NUT-08 change, written BEFORE the melt call.
  CREATE TABLE wallet_melts (
    quote_id     TEXT PRIMARY KEY,
    mint         TEXT NOT NULL,
    unit         TEXT NOT NULL,
    request      TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    fee_reserve  INTEGER NOT NULL,
    input_fee    INTEGER NOT NULL DEFAULT 0,
    inputs_amount INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL CHECK (state IN ('created', 'pending', 'paid', 'failed', 'lost')),
    outputs      TEXT,
    preimage     TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
  );

  -- Swaps. Own inputs are proofs pending(swap, id); foreign inputs (a token received, change)
  -- are kept here as JSON. outputs = serialised OutputData, written BEFORE the swap call.
  CREATE TABLE wallet_swaps (
    id             TEXT PRIMARY KEY,
    mint           TEXT NOT NULL,
    unit           TEXT NOT NULL,
    purpose        TEXT NOT NULL CHECK (purpose IN ('receive', 'change', 'refund', 'split', 'reclaim')),
    ref            TEXT,
    state          TEXT NOT NULL CHECK (state IN ('prepared', 'done', 'failed', 'lost')),
    foreign_inputs TEXT,
    inputs_amount  INTEGER NOT NULL,
    fee            INTEGER NOT NULL DEFAULT 0,
    outputs        TEXT,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
  );
  CREATE INDEX wallet_swaps_open ON wallet_swaps (state) WHERE state = 'prepared';
  CREATE INDEX wallet_swaps_ref ON wallet_swaps (ref);
  `,
  `
  -- One swap service for every purpose (wallet/swap/): the retry state of a swap lives on its row
  -- (it was in payment_swaps for the payment path's purposes; the payments migration moves it).
  -- in_flight: a mint call is out (still 1 after a crash); uncertain: an attempt got no usable
  -- answer, so the mint may already have done the swap.
  ALTER TABLE wallet_swaps ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE wallet_swaps ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE wallet_swaps ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE wallet_swaps ADD COLUMN next_at INTEGER NOT NULL DEFAULT 0;
  -- A receive swap left prepared by the old code may have been sent: resume it as uncertain.
  UPDATE wallet_swaps SET uncertain = 1 WHERE state = 'prepared' AND purpose = 'receive';
  CREATE INDEX wallet_swaps_due ON wallet_swaps (next_at) WHERE state = 'prepared';
  `,
  `
  -- Sessions: money deposited at a provider's balance (API-key) mode. Not proofs any more, still
  -- ours: held = deposited - charged - refunded - lost (sat), which audit verify adds to the
  -- proofs' side of the invariant. Rows and their bookkeeping: wallet/payments/sessions.ts.
  CREATE TABLE wallet_sessions (
    session_id    TEXT PRIMARY KEY,
    provider_url  TEXT NOT NULL,
    mint          TEXT NOT NULL,
    unit          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('open', 'refunding', 'closed', 'lost')),
    deposited     INTEGER NOT NULL DEFAULT 0,   -- credited at the provider: token value - its input fee
    charged_msat  INTEGER NOT NULL DEFAULT 0,   -- per-request charges as reported
    charged       INTEGER NOT NULL DEFAULT 0,   -- booked (ledger session_charge): ceil(charged_msat / 1000) + corrections at close
    refunded      INTEGER NOT NULL DEFAULT 0,   -- refund tokens received (swapped in)
    lost          INTEGER NOT NULL DEFAULT 0,
    flags         TEXT NOT NULL DEFAULT '[]',
    evidence      TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
  );
  CREATE INDEX wallet_sessions_open ON wallet_sessions (provider_url) WHERE state IN ('open', 'refunding');
  `,
];

/** Create or upgrade the wallet's tables. Idempotent. */
export function migrateWallet(db: DB): void {
  migrate(db, 'wallet', WALLET_MIGRATIONS);
}
