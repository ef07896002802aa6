// How each provider is doing as far as routing is concerned: its breakers and whether (and
// why) it is avoided. For `satroute providers`, the admin API and the WebSocket `providers`
// topic; read from the live breakers and statistics, or from SQLite when no daemon runs.
import type { DB } from '../../db/sqlite.ts';
import { Breakers, type BreakerView } from './breaker.ts';
import { BreakerStore } from './breaker-store.ts';
import { ProviderStats, type Avoidance } from './stats.ts';
import { StatsStore } from './stats-store.ts';

export interface ProviderHealth {
  /** The provider-wide breaker, when it ever recorded a failure. */
  breaker: BreakerView | null;
  /** Its provider+model breakers that are not closed. */
  models: BreakerView[];
  /** Avoided for overcharging or invalid change, with the reason for people. */
  avoided: Avoidance | null;
  success_rate: number | null;
  charge_ratio: number | null;
  latency_ms: number | null;
}

/** Health per provider id, for every provider routing knows something about. */
export function providerHealth(breakers: Breakers, stats: ProviderStats): Record<string, ProviderHealth> {
  const out: Record<string, ProviderHealth> = {};
  const entry = (id: string) => (out[id] ??= { breaker: null, models: [], avoided: null, success_rate: null, charge_ratio: null, latency_ms: null });
  for (const b of breakers.views()) {
    if (b.model_id === null) entry(b.provider_id).breaker = b;
    else if (b.state !== 'closed' || b.cooldown_until !== null) entry(b.provider_id).models.push(b);
  }
  for (const s of stats.views()) {
    const e = entry(s.provider_id);
    e.avoided = s.avoid;
    e.success_rate = s.success_rate;
    e.charge_ratio = s.charge_ratio;
    e.latency_ms = s.latency_ms;
  }
  return out;
}

/** The same, from the data directory's tables (no daemon running, or an older one); a read: creates no table. */
export function storedProviderHealth(db: DB, clock: () => number = Date.now): Record<string, ProviderHealth> {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('route_breakers', 'route_stats')").all();
  if (tables.length < 2) return {};
  return providerHealth(new Breakers({ store: new BreakerStore(db), clock }), new ProviderStats({ store: new StatsStore(db), clock }));
}
