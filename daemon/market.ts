// The market view: which Routstr providers exist (Nostr announcements + static config),
// which answer, what each serves at what price, and which mints each accepts. Providers
// are probed over HTTP with bounded concurrency, refreshed on a schedule, and backed off
// when they fail (market-probe.ts). Everything is kept in SQLite, so a restart serves the last known market
// at once and then refreshes it.
import { EventEmitter, setMaxListeners } from 'node:events';
import { decode as decodeNip19 } from 'nostr-tools/nip19';
import { Discovery, isOnionUrl, normalizeProviderUrl, type Announcement } from '../protocol/discovery.ts';
import { nullLogger, type Logger } from '../protocol/logger.ts';
import type { ModelPrice } from '../protocol/pricing.ts';
import { ProviderClient } from '../protocol/provider-client.ts';
import type { RelayStatus } from '../protocol/relays.ts';
import type { Review } from '../protocol/reviews.ts';
import type { Config } from './config.ts';
import { catalogue, MarketIndex, providerView, type MarketProvider, type ModelView, type Offer, type ProviderView } from './market-index.ts';
import { DEFAULT_PROBE_CONCURRENCY, DEFAULT_REFRESH_INTERVAL_MS, MarketProber } from './market-probe.ts';
import { MarketStore, type PriceChange, type StoredModel } from './market-store.ts';
import type { DB } from '../db/sqlite.ts';

export type { Offer, ProviderView, ModelView } from './market-index.ts';
export type { PriceChange } from './market-store.ts';
export { DEFAULT_PROBE_CONCURRENCY, DEFAULT_REFRESH_INTERVAL_MS, PROBE_BACKOFF_MS } from './market-probe.ts';

/**
 * Sats prices drift with the BTC/USD rate (every model, every few minutes), so recording every
 * change of every model would grow the history by millions of rows a day. A change is recorded
 * for models someone looked up (routed) within this window, which is what reconciliation asks
 * about; other models keep their first-seen row and their current price.
 */
export const PRICE_HISTORY_HOT_MS = 24 * 3_600_000;
/** Superseded history rows older than this are deleted. */
export const PRICE_HISTORY_RETENTION_MS = 90 * 24 * 3_600_000;
export type MarketChange =
  | { type: 'provider'; provider: ProviderView }
  | { type: 'prices'; providerId: string; changes: PriceChange[] }
  | { type: 'removed'; providerId: string };

export interface MarketOptions {
  db: DB;
  config: Pick<Config, 'relays' | 'providers'> & Partial<Pick<Config, 'curator' | 'excludeBadReviews' | 'socksProxy' | 'usdPerSat' | 'probe'>>;
  clock?: () => number;
  random?: () => number;
  fetch?: typeof fetch;
  /** fetch for .onion URLs (default: through config.socksProxy). */
  onionFetch?: typeof fetch;
  WebSocketImpl?: unknown;
  logger?: Logger;
  /** Probe on timers (default). Tests pass false and call tick() themselves. */
  autoSchedule?: boolean;
  /** How often the scheduler looks for due probes, real ms (default 1000). */
  tickIntervalMs?: number;
  /** Relay reconnect tuning (tests use short delays). */
  relayOptions?: ConstructorParameters<typeof Discovery>[0]['relayOptions'];
}

/** A provider just learned of (announced on Nostr or listed in the config), due for a probe now. */
function newProvider(id: string, source: MarketProvider['source'], urls: string[], announcedMints: string[], now: number): MarketProvider {
  return { id, source, urls, announcedMints, infoMints: [], status: 'announced', statusSince: now, firstSeenAt: now, nextProbeAt: now, failures: 0, models: new Map() };
}

export class Market extends EventEmitter<{ change: [MarketChange] }> {
  private readonly store: MarketStore;
  private readonly index: MarketIndex;
  private readonly client: ProviderClient;
  private readonly discovery: Discovery | undefined;
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly prober: MarketProber;
  private readonly excludeBad: boolean;
  private readonly staticUrls: string[];
  private timer: ReturnType<typeof setInterval> | undefined;
  private kick: ReturnType<typeof setImmediate> | undefined;
  private started = false;
  private stopped = false;
  /** Aborts probes in flight when the market stops. */
  private readonly stopping = new AbortController();
  private catalogueCache: ModelView[] | undefined;
  /** model id or alias -> last time it was looked up (ms) */
  private readonly lookedUp = new Map<string, number>();
  private lastPruneAt = 0;

  constructor(private readonly opts: MarketOptions) {
    super();
    const cfg = opts.config;
    this.clock = opts.clock ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.log = opts.logger ?? nullLogger;
    setMaxListeners(0, this.stopping.signal); // one listener per request in flight, by design
    this.excludeBad = cfg.excludeBadReviews ?? true;
    this.store = new MarketStore(opts.db);
    this.index = new MarketIndex(this.excludeBad);
    this.client = new ProviderClient({
      fetch: opts.fetch,
      onionFetch: opts.onionFetch,
      socksProxy: cfg.socksProxy,
      timeoutMs: cfg.probe?.timeoutMs,
      usdPerSat: cfg.usdPerSat,
      logger: this.log,
    });
    if (cfg.usdPerSat) this.log.info('models without sats_pricing are priced from USD at the configured rate', { usdPerSat: cfg.usdPerSat });
    this.staticUrls = [...new Set(cfg.providers.map((u) => normalizeProviderUrl(u)).filter((u): u is string => !!u))];
    this.discovery = cfg.relays.length
      ? new Discovery({
          relays: cfg.relays,
          curators: cfg.curator ? [curatorHex(cfg.curator)] : [],
          onAnnouncement: (a) => this.onAnnouncement(a),
          onReview: (r) => this.onReview(r),
          clock: this.clock,
          logger: this.log,
          WebSocketImpl: opts.WebSocketImpl,
          random: this.random,
          relayOptions: opts.relayOptions,
        })
      : undefined;
    this.prober = new MarketProber({
      index: this.index,
      store: this.store,
      client: this.client,
      clock: this.clock,
      random: this.random,
      log: this.log,
      signal: this.stopping.signal,
      refreshMs: cfg.probe?.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS,
      concurrency: cfg.probe?.concurrency ?? DEFAULT_PROBE_CONCURRENCY,
      isStopped: () => this.stopped,
      isExcluded: (p) => this.isExcluded(p),
      isHot: (m, now) => this.isHot(m, now),
      update: (p, patch) => this.updateProvider(p, patch),
      offersChanged: () => (this.catalogueCache = undefined),
      providerChanged: (p) => this.changed({ type: 'provider', provider: providerView(p, this.excludeBad) }),
      pricesChanged: (providerId, changes) => this.changed({ type: 'prices', providerId, changes }),
    });
    this.loadStored();
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Start discovery and probing. The stored market is served from construction on. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const now = this.clock();
    this.syncStaticProviders(now);
    // refresh everything soon after a restart; failing providers keep their backoff
    for (const p of this.index.providers.values()) {
      if (p.status !== 'unreachable' && p.nextProbeAt > now) this.updateProvider(p, { nextProbeAt: now });
    }
    this.discovery?.start();
    if (this.opts.autoSchedule ?? true) {
      this.timer = setInterval(() => void this.tick(), this.opts.tickIntervalMs ?? 1000);
      this.timer.unref?.();
      this.scheduleSoon();
    }
  }

  /** Stop discovery, timers and probes in flight (their results are dropped). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    this.discovery?.stop();
    if (this.timer) clearInterval(this.timer);
    if (this.kick) clearImmediate(this.kick);
    this.timer = undefined;
    await this.prober.settled();
  }

  /** Probe every provider that is due now, at most `probe.concurrency` at a time; resolves when they are done. */
  async tick(): Promise<void> {
    if (this.stopped) return;
    const now = this.clock();
    if (now - this.lastPruneAt >= 24 * 3_600_000) {
      this.lastPruneAt = now;
      const pruned = this.store.pruneHistory(now - PRICE_HISTORY_RETENTION_MS);
      if (pruned) this.log.info('old price history pruned', { rows: pruned });
    }
    await this.prober.probeDue(now);
  }

  /** Probe one provider now (queued behind the concurrency limit). */
  probe(providerId: string): Promise<void> {
    return this.prober.probe(providerId);
  }

  /** Probes started since construction (for status and tests). */
  get probes(): number {
    return this.prober.probes;
  }

  /** The most probes that ran at once so far. */
  get peakConcurrency(): number {
    return this.prober.peakConcurrency;
  }

  // ---- reads -----------------------------------------------------------------------------

  /** Offers for a model id or alias from reachable, non-excluded providers, cheapest list price first. */
  providersFor(modelOrAlias: string): readonly Offer[] {
    this.lookedUp.set(modelOrAlias, this.clock());
    return this.index.offers(modelOrAlias);
  }

  provider(id: string): MarketProvider | undefined {
    return this.index.get(id);
  }

  providers(): ProviderView[] {
    return [...this.index.providers.values()].map((p) => providerView(p, this.excludeBad)).sort(byStatusThenName);
  }

  /** The catalogue: every model offered, with its cheapest offer. */
  models(): ModelView[] {
    return (this.catalogueCache ??= catalogue(this.index));
  }

  /**
   * The price a provider listed for a model at a time (ms): the current price since it took
   * effect, else the price history. Exact for any time the model was being looked up.
   */
  priceAt(providerId: string, modelId: string, atMs: number): ModelPrice | null | undefined {
    const current = this.index.get(providerId)?.models.get(modelId);
    if (current && atMs >= current.priceSince) return current.price;
    return this.store.priceAt(providerId, modelId, atMs);
  }

  priceHistory(providerId: string, modelId: string): { validFrom: number; price: ModelPrice | null }[] {
    return this.store.priceHistory(providerId, modelId);
  }

  relays(): RelayStatus[] {
    return this.discovery?.relayStatuses() ?? [];
  }

  /** Counts of discovery events dropped, by reason. */
  rejectedEvents(): Record<string, number> {
    return this.discovery?.rejections() ?? {};
  }

  /** Feed one Nostr event as if a relay had sent it (tests, tools). */
  ingestEvent(event: unknown): void {
    this.discovery?.ingest(event, 'local');
  }

  // ---- discovery -------------------------------------------------------------------------

  private onAnnouncement(a: Announcement): void {
    const now = this.clock();
    const existing = this.index.get(a.address);
    const urlsChanged = !existing || existing.urls.join(' ') !== a.urls.join(' ');
    const review = this.discovery?.reviews.verdict(a.pubkey);
    const p: MarketProvider = existing ?? newProvider(a.address, 'nostr', a.urls, a.mints, now);
    Object.assign(p, {
      pubkey: a.pubkey,
      d: a.d,
      eventId: a.eventId,
      eventCreatedAt: a.createdAt,
      name: a.name ?? p.name,
      about: a.about,
      version: a.version,
      urls: a.urls,
      announcedMints: a.mints,
      ...(review ? { review: review.verdict, reviewLabel: review.label } : {}),
    });
    if (urlsChanged) {
      p.nextProbeAt = now;
      if (p.url && !a.urls.includes(p.url)) p.url = undefined;
    }
    this.index.put(p);
    this.store.saveProvider(p);
    // a static entry for a URL the provider now announces is the same provider
    for (const url of a.urls) if (this.index.get(staticId(url))) this.removeProvider(staticId(url));
    this.changed({ type: 'provider', provider: providerView(p, this.excludeBad) });
    if (urlsChanged) this.scheduleSoon();
  }

  private onReview(r: Review): void {
    for (const p of this.index.providers.values()) {
      if (!p.pubkey || !r.nodes.includes(p.pubkey)) continue;
      const v = this.discovery?.reviews.verdict(p.pubkey);
      if (!v || (v.verdict === p.review && v.label === p.reviewLabel)) continue;
      const wasExcluded = this.isExcluded(p);
      this.updateProvider(p, { review: v.verdict, reviewLabel: v.label });
      this.log.info('provider review', { provider: p.id, label: v.label, verdict: v.verdict ?? 'none' });
      if (wasExcluded && !this.isExcluded(p)) {
        this.updateProvider(p, { nextProbeAt: this.clock() });
        this.scheduleSoon();
      }
    }
  }

  // ---- helpers ---------------------------------------------------------------------------

  private loadStored(): void {
    const { providers, models } = this.store.load();
    const byProvider = new Map<string, Map<string, StoredModel>>();
    for (const m of models) {
      let map = byProvider.get(m.providerId);
      if (!map) byProvider.set(m.providerId, (map = new Map()));
      map.set(m.id, m);
    }
    this.index.putAll(providers.map((p) => ({ ...p, models: byProvider.get(p.id) ?? new Map() })));
  }

  private syncStaticProviders(now: number): void {
    const announced = new Set<string>();
    for (const p of this.index.providers.values()) if (p.source === 'nostr') for (const u of p.urls) announced.add(u);
    for (const p of [...this.index.providers.values()]) {
      if (p.source === 'static' && (!this.staticUrls.includes(p.urls[0]) || announced.has(p.urls[0]))) this.removeProvider(p.id);
    }
    for (const url of this.staticUrls) {
      if (announced.has(url) || this.index.get(staticId(url))) continue;
      if (isOnionUrl(url) && !this.client.canReach(url)) this.log.warn('static .onion provider skipped: no SOCKS proxy configured', { url });
      const p = newProvider(staticId(url), 'static', [url], [], now);
      this.index.put(p);
      this.store.saveProvider(p);
    }
  }

  private removeProvider(id: string): void {
    this.index.remove(id);
    this.store.removeProvider(id);
    this.catalogueCache = undefined;
    this.changed({ type: 'removed', providerId: id });
  }

  private updateProvider(p: MarketProvider, patch: Partial<MarketProvider>): void {
    const before = p.status + (this.isExcluded(p) ? 'x' : '');
    Object.assign(p, patch);
    this.store.saveProvider(p);
    const after = p.status + (this.isExcluded(p) ? 'x' : '');
    if (before !== after || patch.review !== undefined) {
      this.index.reindex(p.id);
      this.catalogueCache = undefined;
      this.changed({ type: 'provider', provider: providerView(p, this.excludeBad) });
    }
  }

  // whether someone looked this model up (by id or alias) recently
  private isHot(m: StoredModel, now: number): boolean {
    for (const key of [m.id, ...m.aliasIds]) if ((this.lookedUp.get(key) ?? -Infinity) >= now - PRICE_HISTORY_HOT_MS) return true;
    return false;
  }

  private isExcluded(p: MarketProvider): boolean {
    return this.excludeBad && p.review === 'bad';
  }

  private scheduleSoon(): void {
    if (!this.started || this.stopped || !(this.opts.autoSchedule ?? true) || this.kick) return;
    this.kick = setImmediate(() => {
      this.kick = undefined;
      void this.tick();
    });
  }

  private changed(change: MarketChange): void {
    this.catalogueCache = undefined;
    this.emit('change', change);
  }
}

const staticId = (url: string) => `url:${url}`;

/** The curator's pubkey as hex, given as hex or npub. */
export function curatorHex(curator: string): string {
  const c = curator.trim();
  if (c.startsWith('npub1')) {
    const d = decodeNip19(c);
    if (d.type === 'npub') return d.data;
  }
  return c.toLowerCase();
}

const STATUS_ORDER = { reachable: 0, announced: 1, unreachable: 2 } as const;
function byStatusThenName(a: ProviderView, b: ProviderView): number {
  return STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
}
