// The breakers' SQLite table: one row per provider (model_id '') and per provider+model, so a
// restart keeps open breakers open (and half-open ones waiting for their probe). The probe
// permit is process memory: after a restart a half-open breaker admits one new probe.
import { migrate, type DB } from '../../db/sqlite.ts';
import type { BreakerRecord, BreakerState } from './breaker-state.ts';

export const BREAKER_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE route_breakers (
    provider_id      TEXT NOT NULL,
    model_id         TEXT NOT NULL,     -- '' for the provider as a whole
    state            TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    failures         INTEGER NOT NULL,  -- consecutive, while closed
    reopens          INTEGER NOT NULL,
    opened_at        INTEGER,           -- ms
    open_until       INTEGER,
    last_failure_at  INTEGER,
    last_error       TEXT,
    cooldown_until   INTEGER,           -- a 429's Retry-After
    PRIMARY KEY (provider_id, model_id)
  );
  `,
];

interface Row {
  provider_id: string;
  model_id: string;
  state: BreakerState;
  failures: number;
  reopens: number;
  opened_at: number | null;
  open_until: number | null;
  last_failure_at: number | null;
  last_error: string | null;
  cooldown_until: number | null;
}

export class BreakerStore {
  private readonly upsert;

  constructor(private readonly db: DB) {
    migrate(db, 'route.breakers', BREAKER_MIGRATIONS);
    this.upsert = db.prepare(`
      INSERT INTO route_breakers (provider_id, model_id, state, failures, reopens, opened_at, open_until, last_failure_at, last_error, cooldown_until)
      VALUES (@provider_id, @model_id, @state, @failures, @reopens, @opened_at, @open_until, @last_failure_at, @last_error, @cooldown_until)
      ON CONFLICT (provider_id, model_id) DO UPDATE SET state = excluded.state, failures = excluded.failures,
        reopens = excluded.reopens, opened_at = excluded.opened_at, open_until = excluded.open_until,
        last_failure_at = excluded.last_failure_at, last_error = excluded.last_error, cooldown_until = excluded.cooldown_until`);
  }

  load(): BreakerRecord[] {
    return (this.db.prepare('SELECT * FROM route_breakers').all() as Row[]).map((r) => ({
      providerId: r.provider_id,
      modelId: r.model_id === '' ? null : r.model_id,
      state: r.state,
      failures: r.failures,
      reopens: r.reopens,
      openedAt: r.opened_at,
      openUntil: r.open_until,
      lastFailureAt: r.last_failure_at,
      lastError: r.last_error,
      cooldownUntil: r.cooldown_until,
      probe: null,
    }));
  }

  save(r: BreakerRecord): void {
    this.upsert.run({
      provider_id: r.providerId,
      model_id: r.modelId ?? '',
      state: r.state,
      failures: r.failures,
      reopens: r.reopens,
      opened_at: r.openedAt,
      open_until: r.openUntil,
      last_failure_at: r.lastFailureAt,
      last_error: r.lastError,
      cooldown_until: r.cooldownUntil,
    });
  }
}
