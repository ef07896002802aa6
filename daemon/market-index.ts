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
  /**
   * Mints the provider accepts (its /v1/info list, else its announcement), spelled exactly as
   * it lists them: a node compares a token's mint with this list as exact strings, so the token
   * carries this spelling; match it with the wallet's mints by normalised URL.
   */
  mints: string[];
  /** prompt + completion nmsat per token: the list price offers are sorted by. */
  listNmsat: number;
  /** The provider URL when the offer was made (the sort's tie-breaker; fixed so lists stay sorted). */
  sortUrl: string;
}

/** The mints a provider accepts: what it says over HTTP, else what it announced. */
export function acceptedMints(p: StoredProvider): string[] {
  return p.infoMints.length ? p.infoMints : p.announcedMints;
}

/** Whether a provider's offers may be used: reachable, and not excluded by a bad review. */
export function isOffering(p: StoredProvider, excludeBad: boolean): boolean {
  return p.status === 'reachable' && !(excludeBad && p.review === 'bad');
}

// Cheapest list price first; ties by base URL (as the Routstr SDK breaks them).
function compareOffers(a: Offer, b: Offer): number {
  if (a.listNmsat !== b.listNmsat) return a.listNmsat - b.listNmsat;
  if (a.sortUrl !== b.sortUrl) return a.sortUrl < b.sortUrl ? -1 : 1;
  return a.provider.id < b.provider.id ? -1 : a.provider.id > b.provider.id ? 1 : 0;
}

const EMPTY: readonly Offer[] = Object.freeze([]);

/**
 * Providers with their models, and for each model id and alias the offers sorted cheapest
 * first. The sorted lists are immutable snapshots: a change builds a new list for the keys
 * it touches (one copy, binary-search remove and insert), so a caller may keep a list across an
 * await, and a lookup never sorts.
 */
export class MarketIndex {
  readonly providers = new Map<string, MarketProvider>();
  private readonly byModel = new Map<string, readonly Offer[]>();
  // the offers each provider has in the index, by key, to replace them on change
  private readonly offersOf = new Map<string, Map<string, Offer>>();

  constructor(private readonly excludeBad: boolean) {}

  get(id: string): MarketProvider | undefined {
    return this.providers.get(id);
  }

  /** Add or replace a provider (with its models) and re-index its offers. */
  put(p: MarketProvider): void {
    this.providers.set(p.id, p);
    this.reindex(p.id);
  }

  /** Add many providers at once (a warm start): one sort per key instead of an insert per offer. */
  putAll(list: readonly MarketProvider[]): void {
    const lists = new Map<string, Offer[]>();
    for (const p of list) {
      this.providers.set(p.id, p);
      const offers = this.offersFor(p);
      this.offersOf.set(p.id, offers);
      for (const [key, offer] of offers) {
        let l = lists.get(key);
        if (!l) lists.set(key, (l = [...(this.byModel.get(key) ?? EMPTY)]));
        l.push(offer);
      }
    }
    for (const [key, l] of lists) this.byModel.set(key, l.sort(compareOffers));
  }

  remove(id: string): void {
    this.providers.delete(id);
    this.reindex(id);
  }

  /** Offers for a model id or alias from usable providers, cheapest list price first. */
  offers(modelOrAlias: string): readonly Offer[] {
    return this.byModel.get(modelOrAlias) ?? EMPTY;
  }

  /** Every indexed key (model ids and aliases). */
  modelKeys(): IterableIterator<string> {
    return this.byModel.keys();
  }

  /** Rebuild one provider's offers (after its status, review or models changed). */
  reindex(providerId: string): void {
    const before = this.offersOf.get(providerId) ?? new Map<string, Offer>();
    const p = this.providers.get(providerId);
    const after = p ? this.offersFor(p) : new Map<string, Offer>();
    for (const key of new Set([...before.keys(), ...after.keys()])) {
      const next = (this.byModel.get(key) ?? EMPTY).slice();
      const old = before.get(key);
      if (old) {
        let i = lowerBound(next, old);
        if (next[i] !== old) i = next.indexOf(old);
        if (i >= 0) next.splice(i, 1);
      }
      const offer = after.get(key);
      if (offer) next.splice(lowerBound(next, offer), 0, offer);
      if (next.length) this.byModel.set(key, next);
      else this.byModel.delete(key);
    }
    if (after.size) this.offersOf.set(providerId, after);
    else this.offersOf.delete(providerId);
  }

  // key (model id or alias) -> this provider's offer under it
  private offersFor(p: MarketProvider): Map<string, Offer> {
    const out = new Map<string, Offer>();
    if (!isOffering(p, this.excludeBad)) return out;
    const mints = acceptedMints(p);
    for (const model of p.models.values()) {
      if (!model.price) continue;
      const offer: Offer = { provider: p, model, price: model.price, mints, listNmsat: listPriceNmsat(model.price), sortUrl: p.url ?? p.urls[0] ?? '' };
      if (!out.has(model.id) || out.get(model.id)!.model.id !== model.id) out.set(model.id, offer);
      // an id beats an alias when a provider lists both for different models
      for (const alias of model.aliasIds) if (!out.has(alias)) out.set(alias, offer);
    }
    return out;
  }
}

// The first position whose offer does not sort before `offer`.
function lowerBound(list: readonly Offer[], offer: Offer): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareOffers(list[mid], offer) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
  for (const key of [...index.modelKeys()]) {
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
    const best = e.offers[0]; // offers() are sorted cheapest first
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
