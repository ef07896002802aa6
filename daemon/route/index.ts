// Routing in one place for the daemon: the breakers, the provider statistics, the prompt
// tokenizer and the router, built from the data directory's database and satroute.json, and
// the control-socket methods that show their state.
import { z } from 'zod';
import { nullLogger, type Logger } from '../../protocol/logger.ts';
import { PromptTokenizer } from '../../protocol/tokens.ts';
import type { DB } from '../../db/sqlite.ts';
import type { Offer } from '../market-index.ts';
import { autoConfigFrom } from './auto.ts';
import { Breakers, type BreakerOptions } from './breaker.ts';
import { BreakerStore } from './breaker-store.ts';
import { RouteConfigError } from './errors.ts';
import { providerHealth } from './health.ts';
import { Router } from './router.ts';
import { ProviderStats, type StatsOptions } from './stats.ts';
import { StatsStore } from './stats-store.ts';

export { Router, MAX_ATTEMPTS, type AttemptReport, type LateReport, type PlannedAttempt, type RoutePlan, type RouteRequest } from './router.ts';
export { Breakers, type BreakerChange, type BreakerOutcome, type BreakerView, type Permit } from './breaker.ts';
export { ProviderStats } from './stats.ts';
export { NoProviderError, NoQualifyingModelError, RouteConfigError, RouteError } from './errors.ts';
export type { Skip, SkipReason } from './skips.ts';
export { AUTO_MODEL } from './auto.ts';

const Tuning = z
  .object({
    breaker: z
      .object({
        failureThreshold: z.number().int().positive(),
        openBaseMs: z.number().int().positive(),
        openMaxMs: z.number().int().positive(),
        jitter: z.number().min(0).max(1),
        probeTimeoutMs: z.number().int().positive(),
        defaultRetryAfterMs: z.number().int().nonnegative(),
        maxRetryAfterMs: z.number().int().nonnegative(),
      })
      .partial()
      .optional(),
    stats: z
      .object({
        halfLifeMs: z.number().positive(),
        avoidOverchargeRatio: z.number().min(1),
        avoidInvalidChangeShare: z.number().min(0).max(1),
        avoidMinWeight: z.number().positive(),
      })
      .partial()
      .optional(),
  })
  .optional();

export interface RoutingConfig {
  /** `model: "auto"` (daemon/route/auto.ts). */
  auto?: unknown;
  /** Optional tuning: `routing: { breaker: {...}, stats: {...} }` (defaults as DESIGN.md). */
  routing?: unknown;
}

export interface Routing {
  router: Router;
  breakers: Breakers;
  stats: ProviderStats;
  tokenizer: PromptTokenizer;
  /** Load the tokenizer and start writing statistics; call once at daemon start. */
  start(): Promise<void>;
  /** Write the last statistics; call at daemon stop. */
  stop(): void;
}

export function openRouting(o: { db: DB; market: { providersFor(model: string): readonly Offer[] }; config: RoutingConfig; clock?: () => number; random?: () => number; logger?: Logger }): Routing {
  const tuning = Tuning.safeParse(o.config.routing);
  if (!tuning.success) throw new RouteConfigError(`satroute.json "routing": ${tuning.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const logger = o.logger ?? nullLogger;
  const breakers = new Breakers({ store: new BreakerStore(o.db), clock: o.clock, random: o.random, logger, options: tuning.data?.breaker as Partial<BreakerOptions> | undefined });
  const stats = new ProviderStats({ store: new StatsStore(o.db), clock: o.clock, logger, options: tuning.data?.stats as Partial<StatsOptions> | undefined });
  const tokenizer = new PromptTokenizer();
  const router = new Router({ market: o.market, breakers, stats, tokenizer, auto: autoConfigFrom(o.config) });
  return {
    router,
    breakers,
    stats,
    tokenizer,
    async start() {
      stats.start();
      await tokenizer.load();
    },
    stop() {
      stats.stop();
    },
  };
}

/** Control-socket methods for the daemon to register (`satroute providers` asks `route.health`). */
export function routeControlHandlers(routing: Routing): Record<string, () => unknown> {
  return {
    'route.health': () => providerHealth(routing.breakers, routing.stats),
    'route.breakers': () => routing.breakers.views(),
  };
}
