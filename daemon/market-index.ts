// The market in memory: providers with their models, and an index from model id or alias
// to the offers that can serve it, so "who serves M, at what price" is a map lookup, not a
// scan. Also the read-only views (`satroute providers|models --json`, admin API).
import { listPriceNmsat, nmsatToSatsPerMillion, type ModelPrice } from '../protocol/pricing.ts';
import type { StoredModel, StoredProvider } from './market-store.ts';

export interface MarketProvider extends StoredProvider {
  models: Map<string, StoredModel>;
}

/** One provider's offer for a model: what the router chooses among. */
export interface Offer {
  provider: MarketProvider;
  model: StoredModel;
  price: ModelPrice;
  /** Mints the provider accepts (its /v1/info list, else its announcement). */
  mints: string[];
}

/** The mints a provider accepts: what it says over HTTP, else what it announced. */
export function acceptedMints(p: StoredProvider): string[] {
  return p.infoMints.length ? p.infoMints : p.announcedMints;
}

/** Whether a provider's offers may be used: reachable, and not excluded by a bad review. */
export function isOffering(p: StoredProvider, excludeBad: boolean): boolean {
  return p.status === 'reachable' && !(excludeBad && p.review === 'bad');
}

const byListPrice = (a: Offer, b: Offer) => listPriceNmsat(a.price) - listPriceNmsat(b.price) || (a.provider.url ?? '').localeCompare(b.provider.url ?? '');

export class MarketIndex {
  readonly providers = new Map<string, MarketProvider>();
  // model id or alias -> provider id -> offer
  private readonly byModel = new Map<string, Map<string, Offer>>();
  // keys each provider is indexed under, to remove them on reindex
  private readonly keysOf = new Map<string, string[]>();
  private readonly sorted = new Map<string, Offer[]>();

  constructor(private readonly excludeBad: boolean) {}

  get(id: string): MarketProvider | undefined {
    return this.providers.get(id);
  }

  /** Add or replace a provider (with its models) and re-index its offers. */
  put(p: MarketProvider): void {
    this.providers.set(p.id, p);
    this.reindex(p.id);
  }

  remove(id: string): void {
    this.providers.delete(id);
    this.reindex(id);
  }

  /** Offers for a model id or alias from usable providers, cheapest list price first. */
  offers(modelOrAlias: string): Offer[] {
    const cached = this.sorted.get(modelOrAlias);
    if (cached) return cached;
    const m = this.byModel.get(modelOrAlias);
    const list = m ? [...m.values()].sort(byListPrice) : [];
    if (m) this.sorted.set(modelOrAlias, list);
    return list;
  }

  /** Every indexed key (model ids and aliases). */
  modelKeys(): string[] {
    return [...this.byModel.keys()];
  }

  reindex(providerId: string): void {
    for (const key of this.keysOf.get(providerId) ?? []) {
      const m = this.byModel.get(key);
      m?.delete(providerId);
      if (m && m.size === 0) this.byModel.delete(key);
      this.sorted.delete(key);
    }
    this.keysOf.delete(providerId);
    const p = this.providers.get(providerId);
    if (!p || !isOffering(p, this.excludeBad)) return;
    const keys: string[] = [];
    const mints = acceptedMints(p);
    for (const model of p.models.values()) {
      if (!model.price) continue;
      const offer: Offer = { provider: p, model, price: model.price, mints };
      for (const key of [model.id, ...model.aliasIds]) {
        let m = this.byModel.get(key);
        if (!m) this.byModel.set(key, (m = new Map()));
        // an id beats an alias when a provider lists both for different models
        if (m.has(providerId) && key !== model.id) continue;
        m.set(providerId, offer);
        this.sorted.delete(key);
        keys.push(key);
      }
    }
    this.keysOf.set(providerId, keys);
  }
}

// ---- views -----------------------------------------------------------------------------

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export interface PriceView {
  prompt_nmsat: number;
  completion_nmsat: number;
  request_msat: number;
  max_cost_msat: number;
  prompt_sats_per_mtok: number;
  completion_sats_per_mtok: number;
  source: ModelPrice['source'];
}

export function priceView(p: ModelPrice): PriceView {
  return {
    prompt_nmsat: p.promptNmsat,
    completion_nmsat: p.completionNmsat,
    request_msat: p.requestMsat,
    max_cost_msat: p.maxCostMsat,
    prompt_sats_per_mtok: nmsatToSatsPerMillion(p.promptNmsat),
    completion_sats_per_mtok: nmsatToSatsPerMillion(p.completionNmsat),
    source: p.source,
  };
}

export interface ProviderView {
  id: string;
  name: string;
  source: 'nostr' | 'static';
  pubkey: string | null;
  url: string | null;
  urls: string[];
  status: StoredProvider['status'];
  status_since: string | null;
  excluded: boolean;
  review: 'good' | 'bad' | null;
  review_label: string | null;
  models: number;
  cheapest: ({ model: string } & PriceView) | null;
  mints: string[];
  version: string | null;
  last_seen: string | null;
  last_probe: string | null;
  next_probe: string | null;
  failures: number;
  last_error: string | null;
}

/** A name for people: the announced or reported name, else the host. */
export function displayName(p: StoredProvider): string {
  if (p.name) return p.name;
  const u = p.url ?? p.urls[0];
  try {
    return new URL(u).host;
  } catch {
    return p.id;
  }
}

export function providerView(p: MarketProvider, excludeBad: boolean): ProviderView {
  let cheapest: StoredModel | undefined;
  for (const m of p.models.values()) {
    if (m.price && (!cheapest || listPriceNmsat(m.price) < listPriceNmsat(cheapest.price ?? m.price))) cheapest = m;
  }
  return {
    id: p.id,
    name: displayName(p),
    source: p.source,
    pubkey: p.pubkey ?? null,
    url: p.url ?? p.urls[0] ?? null,
    urls: p.urls,
    status: p.status,
    status_since: iso(p.statusSince),
    excluded: excludeBad && p.review === 'bad',
    review: p.review ?? null,
    review_label: p.reviewLabel ?? null,
    models: p.models.size,
    cheapest: cheapest?.price ? { model: cheapest.id, ...priceView(cheapest.price) } : null,
    mints: acceptedMints(p),
    version: p.version ?? null,
    last_seen: iso(p.lastSeenAt),
    last_probe: iso(p.lastProbeAt),
    next_probe: iso(p.nextProbeAt),
    failures: p.failures,
    last_error: p.lastError ?? null,
  };
}

export interface ModelView {
  id: string;
  name: string;
  aliases: string[];
  providers: number;
  cheapest: ({ provider: string; provider_name: string } & PriceView) | null;
  context_length: number | null;
  seen_at: string | null;
}

/** The catalogue: each model id once, from usable providers, with its cheapest offer. */
export function catalogue(index: MarketIndex): ModelView[] {
  const byId = new Map<string, { offers: Offer[]; aliases: Set<string> }>();
  for (const key of index.modelKeys()) {
    for (const offer of index.offers(key)) {
      if (offer.model.id !== key) continue; // reached through an alias; counted under its id
      let e = byId.get(key);
      if (!e) byId.set(key, (e = { offers: [], aliases: new Set() }));
      e.offers.push(offer);
      for (const a of offer.model.aliasIds) e.aliases.add(a);
    }
  }
  const out: ModelView[] = [];
  for (const [id, e] of byId) {
    const best = e.offers[0]; // offers() is sorted cheapest first
    out.push({
      id,
      name: best.model.name ?? id,
      aliases: [...e.aliases].sort(),
      providers: e.offers.length,
      cheapest: { provider: best.provider.id, provider_name: displayName(best.provider), ...priceView(best.price) },
      context_length: best.model.contextLength ?? null,
      seen_at: iso(Math.max(...e.offers.map((o) => o.provider.lastSeenAt ?? 0)) || undefined),
    });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
