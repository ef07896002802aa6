// `discovery` bench case: how fast a complete market is built from Nostr + HTTP probes, and
// how fast "who serves model M, at what price" is answered in a big market.
import { performance } from 'node:perf_hooks';
import { Market } from '../daemon/market.ts';
import { MarketStore, type StoredModel, type StoredProvider } from '../daemon/market-store.ts';
import { normalizePrice } from '../protocol/pricing.ts';
import { openDatabase } from '../db/sqlite.ts';
import { startFleet } from '../test/daemon/fleet.ts';
import { startRelay } from '../test/world/relay.ts';
import type { Figure } from './_figure.ts';


/** Time from start to every provider reachable with all its models (200 x 50 on the local world). */
async function fullMarket(providers: number, models: number): Promise<Figure[]> {
  const relay = await startRelay();
  const fleet = await startFleet({ providers, modelsPerProvider: models, delayMs: 2 });
  const db = openDatabase(':memory:');
  const market = new Market({ db, config: { relays: [relay.url], providers: [] }, tickIntervalMs: 100 });
  try {
    await fleet.announce(relay.url);
    const complete = () => {
      const list = market.providers();
      return list.length === providers && list.every((p) => p.status === 'reachable' && p.models === models);
    };
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      const check = () => {
        if (complete()) {
          market.off('change', check);
          resolve();
        }
      };
      market.on('change', check);
    });
    await market.start();
    await done;
    const seconds = (performance.now() - started) / 1000;
    return [
      { name: 'discovery_full_market_s', value: seconds, unit: `s (${providers} providers x ${models} models, local relay + HTTP)` },
      { name: 'discovery_probe_peak_concurrency', value: fleet.maxActiveProviders(), unit: 'providers probed at once (limit 8)' },
    ];
  } finally {
    await market.stop();
    db.close();
    await fleet.stop();
    await relay.stop();
  }
}

/** p99 of providersFor() in a market of `providers` x `models`, loaded from SQLite as after a restart. */
function lookup(providers: number, models: number): Figure[] {
  const db = openDatabase(':memory:', { synchronous: 'NORMAL' });
  const store = new MarketStore(db);
  const now = Date.now();
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < providers; i++) {
    const p: StoredProvider = {
      id: `pk${i}:d`,
      source: 'nostr',
      pubkey: `pk${i}`,
      urls: [`https://p${i}.example`],
      url: `https://p${i}.example`,
      announcedMints: ['https://mint.example'],
      infoMints: [],
      status: 'reachable',
      statusSince: now,
      firstSeenAt: now,
      lastSeenAt: now,
      nextProbeAt: now + 300_000,
      failures: 0,
    };
    const list: StoredModel[] = [];
    for (let j = 0; j < models; j++) {
      const price = normalizePrice({ sats_pricing: { prompt: 0.00001 * (1 + rand()), completion: 0.00003 * (1 + rand()), max_cost: 50 } });
      list.push({ providerId: p.id, id: `model-${j}`, aliasIds: [`vendor/model-${j}`], price, reserve: null, firstSeenAt: now, priceSince: now });
    }
    store.saveProbe(p, list, [], []);
  }
  const loadStart = performance.now();
  const market = new Market({ db, config: { relays: [], providers: [] }, autoSchedule: false });
  const loadS = (performance.now() - loadStart) / 1000;

  const keys = Array.from({ length: models }, (_, j) => (j % 2 ? `model-${j}` : `vendor/model-${j}`));
  const index = (market as unknown as { index: { reindex(id: string): void } }).index;
  const lookups: number[] = [];
  const reprices: number[] = [];
  for (let k = 0; k < 22_000; k++) {
    if (k % 100 === 0) {
      // a provider was re-probed and its prices changed: its offers are re-indexed
      const t0 = performance.now();
      index.reindex(`pk${Math.floor(rand() * providers)}:d`);
      if (k >= 2000) reprices.push(performance.now() - t0);
    }
    const key = keys[Math.floor(rand() * keys.length)];
    const t0 = performance.now();
    const offers = market.providersFor(key);
    const dt = performance.now() - t0;
    if (k >= 2000) lookups.push(dt); // the first 2000 warm up the JIT
    if (offers.length !== providers) throw new Error(`lookup of ${key} found ${offers.length} offers`);
  }
  db.close();
  const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)];
  return [
    { name: 'model_lookup_p99_ms', value: p99(lookups), unit: `ms (${providers} providers x ${models} models, by id or alias, prices changing)` },
    { name: 'market_reindex_p99_ms', value: p99(reprices), unit: `ms (re-index one ${models}-model provider in that market)` },
    { name: 'market_load_s', value: loadS, unit: `s (load ${providers} x ${models} from SQLite at start)` },
  ];
}

export async function run(): Promise<Figure[]> {
  return [...(await fullMarket(200, 50)), ...lookup(1000, 300)];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of await run()) process.stdout.write(JSON.stringify(f) + '\n');
}
