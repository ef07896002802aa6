// The provider statistics' SQLite table, so a restart remembers who overcharged, failed or
// returned bad change. One row per provider (model_id '') and per provider+model / model
// (token calibration); the decayed sums are one JSON document per row, known only here.
import { migrate, type DB } from '../../db/sqlite.ts';

export const STATS_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE route_stats (
    kind         TEXT NOT NULL CHECK (kind IN ('provider', 'tokens')),
    provider_id  TEXT NOT NULL,   -- '' for a model's token sums across providers
    model_id     TEXT NOT NULL,   -- '' for a provider's sums
    sums         TEXT NOT NULL,   -- JSON: decayed sums (daemon/route/stats.ts), 'at' = when last decayed
    PRIMARY KEY (kind, provider_id, model_id)
  );
  `,
];

/** Decayed sums for one provider; `at` is when they were last decayed. */
export interface ProviderSums {
  at: number;
  attempts: number;
  successes: number;
  settled: number;
  ratioSum: number;
  invalidChange: number;
  latencyN: number;
  latencySumMs: number;
  lostMsat: number;
  /** Failed attempts whose token the node handed back in full (a refund token); absent in rows written before. */
  refunded: number;
}

/** Decayed sums for one provider+model (token calibration), or one model across providers (modelId only). */
export interface TokenSums {
  at: number;
  promptN: number;
  promptRatioSum: number;
  completionN: number;
  completionSum: number;
}

export interface StoredStats {
  providers: { providerId: string; sums: ProviderSums }[];
  tokens: { providerId: string; modelId: string; sums: TokenSums }[];
}

export class StatsStore {
  private readonly upsert;

  constructor(private readonly db: DB) {
    migrate(db, 'route.stats', STATS_MIGRATIONS);
    this.upsert = db.prepare(
      `INSERT INTO route_stats (kind, provider_id, model_id, sums) VALUES (?, ?, ?, ?)
       ON CONFLICT (kind, provider_id, model_id) DO UPDATE SET sums = excluded.sums`,
    );
  }

  load(): StoredStats {
    const rows = this.db.prepare('SELECT kind, provider_id, model_id, sums FROM route_stats').all() as { kind: string; provider_id: string; model_id: string; sums: string }[];
    const out: StoredStats = { providers: [], tokens: [] };
    for (const r of rows) {
      if (r.kind === 'provider') out.providers.push({ providerId: r.provider_id, sums: { refunded: 0, ...(JSON.parse(r.sums) as Omit<ProviderSums, 'refunded'>) } });
      else out.tokens.push({ providerId: r.provider_id, modelId: r.model_id, sums: JSON.parse(r.sums) as TokenSums });
    }
    return out;
  }

  /** Upsert rows in one transaction. */
  save(providers: StoredStats['providers'], tokens: StoredStats['tokens']): void {
    this.db.transaction(() => {
      for (const p of providers) this.upsert.run('provider', p.providerId, '', JSON.stringify(p.sums));
      for (const t of tokens) this.upsert.run('tokens', t.providerId, t.modelId, JSON.stringify(t.sums));
    })();
  }
}
