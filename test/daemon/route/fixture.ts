// A market for router tests: the real Market, loaded from its SQLite store (as after a
// restart), with providers and models given as world ModelSpecs (listed the way the world's
// providers list them, so prices and reservation terms are the node's own).
import { Market } from '../../../daemon/market.ts';
import { MarketStore, type StoredModel, type StoredProvider } from '../../../daemon/market-store.ts';
import { Breakers } from '../../../daemon/route/breaker.ts';
import { Router, type RouteRequest } from '../../../daemon/route/router.ts';
import { ProviderStats } from '../../../daemon/route/stats.ts';
import type { AutoConfig } from '../../../daemon/route/auto.ts';
import { normalizePrice, reserveTermsFrom } from '../../../protocol/pricing.ts';
import { PromptTokenizer } from '../../../protocol/tokens.ts';
import { openDatabase, type DB } from '../../../db/sqlite.ts';
import { modelListing } from '../../world/provider/pricing.ts';
import type { ModelSpec } from '../../world/provider/types.ts';

export const T0 = 1_800_000_000_000;
export const MINT = 'https://mint.example';

export interface ProviderSpec {
  name: string;
  models: ModelSpec[];
  /** Mint URLs as the provider spells them (default [MINT]). */
  mints?: string[];
}

export function storeMarket(db: DB, specs: readonly ProviderSpec[]): void {
  const store = new MarketStore(db);
  for (const s of specs) {
    const url = `https://${s.name.toLowerCase()}.example`;
    const p: StoredProvider = {
      id: `pk-${s.name}:d`,
      source: 'nostr',
      pubkey: `pk-${s.name}`,
      name: s.name,
      urls: [url],
      url,
      announcedMints: s.mints ?? [MINT],
      infoMints: s.mints ?? [MINT],
      status: 'reachable',
      statusSince: T0,
      firstSeenAt: T0,
      lastSeenAt: T0,
      nextProbeAt: T0 + 300_000,
      failures: 0,
    };
    const models: StoredModel[] = s.models.map((m) => {
      const listing = modelListing(m, 0.001, 0);
      return { providerId: p.id, id: m.id, aliasIds: m.aliasIds ?? [], price: normalizePrice(listing), reserve: reserveTermsFrom(listing), firstSeenAt: T0, priceSince: T0 };
    });
    store.saveProbe(p, models, [], []);
  }
}

export interface RouteWorld {
  db: DB;
  market: Market;
  breakers: Breakers;
  stats: ProviderStats;
  router: Router;
  clock: { now: number };
  /** A chat request for `model` with these balances (default 10,000 sat at MINT). */
  request(over?: Partial<RouteRequest>): RouteRequest;
}

export function routeWorld(specs: readonly ProviderSpec[], o: { auto?: AutoConfig; random?: () => number } = {}): RouteWorld {
  const db = openDatabase(':memory:');
  storeMarket(db, specs);
  const clock = { now: T0 };
  const market = new Market({ db, config: { relays: [], providers: [] }, autoSchedule: false, clock: () => clock.now });
  const breakers = new Breakers({ clock: () => clock.now, random: o.random ?? (() => 0) });
  const stats = new ProviderStats({ clock: () => clock.now });
  const tokenizer = new PromptTokenizer({ countTokens: (s) => Math.ceil(s.length / 4) });
  const router = new Router({ market, breakers, stats, tokenizer, auto: o.auto });
  return {
    db,
    market,
    breakers,
    stats,
    router,
    clock,
    request: (over = {}) => ({
      model: 'gpt-x',
      body: { model: over.model ?? 'gpt-x', messages: [{ role: 'user', content: 'What is the capital of France? Answer briefly.' }], max_tokens: 100 },
      endpoint: '/v1/chat/completions',
      balances: new Map([[MINT, 10_000]]),
      ...over,
    }),
  };
}

export const gpt = (promptSats: number, completionSats: number, over: Partial<ModelSpec> = {}): ModelSpec => ({
  id: 'gpt-x',
  aliasIds: ['openai/gpt-x'],
  promptSatsPerToken: promptSats,
  completionSatsPerToken: completionSats,
  ...over,
});
