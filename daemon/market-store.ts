// The market's SQLite tables: providers, their current models and prices, and an
// append-only price history so a request can be reconciled at the price it was routed at.
// Memory (daemon/market-index.ts) is what requests read; these tables let a restarted
// daemon (or `satroute providers` with no daemon) serve the last known market at once.
import type { ModelPrice, ReserveTerms } from '../protocol/pricing.ts';
import { migrate, type DB } from '../db/sqlite.ts';

export const MARKET_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE market_providers (
    id               TEXT PRIMARY KEY,  -- '<pubkey>:<d>' for Nostr, 'url:<base url>' for static
    source           TEXT NOT NULL CHECK (source IN ('nostr', 'static')),
    pubkey           TEXT,
    d                TEXT,
    event_id         TEXT,
    event_created_at INTEGER,           -- seconds, as signed
    name             TEXT,
    about            TEXT,
    version          TEXT,
    urls             TEXT NOT NULL,     -- JSON array, announced order
    url              TEXT,              -- the URL that answered last
    announced_mints  TEXT NOT NULL,     -- JSON array
    info_mints       TEXT NOT NULL,     -- JSON array, from /v1/info
    status           TEXT NOT NULL CHECK (status IN ('announced', 'reachable', 'unreachable')),
    status_since     INTEGER NOT NULL,  -- ms
    first_seen_at    INTEGER NOT NULL,
    last_seen_at     INTEGER,           -- last successful probe (models and prices seen)
    last_probe_at    INTEGER,
    next_probe_at    INTEGER NOT NULL,
    failures         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    review           TEXT CHECK (review IN ('good', 'bad')),
    review_label     TEXT
  );
  CREATE INDEX market_providers_pubkey ON market_providers (pubkey);

  CREATE TABLE market_models (
    provider_id       TEXT NOT NULL REFERENCES market_providers (id) ON DELETE CASCADE,
    model_id          TEXT NOT NULL,
    name              TEXT,
    alias_ids         TEXT NOT NULL,    -- JSON array
    context_length    INTEGER,
    price             TEXT,             -- JSON ModelPrice (integers), NULL when unpriced
    first_seen_at     INTEGER NOT NULL,
    price_since       INTEGER NOT NULL, -- when the current price was first seen
    PRIMARY KEY (provider_id, model_id)
  );

  -- A model's price from valid_from on. Written when a model is first seen, and when the price
  -- of a model someone asks for changes or the model goes away (see daemon/market.ts).
  CREATE TABLE market_price_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id  TEXT NOT NULL,
    model_id     TEXT NOT NULL,
    valid_from   INTEGER NOT NULL,      -- ms
    price        TEXT                   -- JSON ModelPrice; NULL: unpriced or withdrawn
  );
  CREATE INDEX market_price_history_at ON market_price_history (provider_id, model_id, valid_from);
  `,
  // What a node's reservation check reads: its sats prices as listed (floats) and the model's
  // top_provider limits. NULL until the model's next probe (a request then reserves the
  // listed max_cost, never less than the node checks).
  `ALTER TABLE market_models ADD COLUMN reserve_terms TEXT;`,
];

export type ProviderStatus = 'announced' | 'reachable' | 'unreachable';

export interface StoredProvider {
  id: string;
  source: 'nostr' | 'static';
  pubkey?: string;
  d?: string;
  eventId?: string;
  eventCreatedAt?: number;
  name?: string;
  about?: string;
  version?: string;
  urls: string[];
  url?: string;
  announcedMints: string[];
  infoMints: string[];
  status: ProviderStatus;
  statusSince: number;
  firstSeenAt: number;
  lastSeenAt?: number;
  lastProbeAt?: number;
  nextProbeAt: number;
  failures: number;
  lastError?: string;
  review?: 'good' | 'bad';
  reviewLabel?: string;
}

export interface StoredModel {
  providerId: string;
  id: string;
  name?: string;
  aliasIds: string[];
  contextLength?: number;
  price: ModelPrice | null;
  /** The node's reservation inputs (sats prices as listed, top_provider limits); null when unknown. */
  reserve: ReserveTerms | null;
  firstSeenAt: number;
  priceSince: number;
}

/** A row of the price history: from `validFrom` (ms) on, the model cost `price` (null: unpriced or withdrawn). */
export interface PriceRecord {
  providerId: string;
  modelId: string;
  validFrom: number;
  price: ModelPrice | null;
}

/** A price that took effect (or a model that went away: `price` null and `removed`). */
export interface PriceChange {
  providerId: string;
  modelId: string;
  at: number;
  before: ModelPrice | null | undefined;
  price: ModelPrice | null;
  removed?: boolean;
}

interface ProviderRow {
  id: string;
  source: 'nostr' | 'static';
  pubkey: string | null;
  d: string | null;
  event_id: string | null;
  event_created_at: number | null;
  name: string | null;
  about: string | null;
  version: string | null;
  urls: string;
  url: string | null;
  announced_mints: string;
  info_mints: string;
  status: ProviderStatus;
  status_since: number;
  first_seen_at: number;
  last_seen_at: number | null;
  last_probe_at: number | null;
  next_probe_at: number;
  failures: number;
  last_error: string | null;
  review: 'good' | 'bad' | null;
  review_label: string | null;
}

interface ModelRow {
  provider_id: string;
  model_id: string;
  name: string | null;
  alias_ids: string;
  context_length: number | null;
  price: string | null;
  reserve_terms: string | null;
  first_seen_at: number;
  price_since: number;
}

const orUndef = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function toProvider(r: ProviderRow): StoredProvider {
  return {
    id: r.id,
    source: r.source,
    pubkey: orUndef(r.pubkey),
    d: orUndef(r.d),
    eventId: orUndef(r.event_id),
    eventCreatedAt: orUndef(r.event_created_at),
    name: orUndef(r.name),
    about: orUndef(r.about),
    version: orUndef(r.version),
    urls: JSON.parse(r.urls) as string[],
    url: orUndef(r.url),
    announcedMints: JSON.parse(r.announced_mints) as string[],
    infoMints: JSON.parse(r.info_mints) as string[],
    status: r.status,
    statusSince: r.status_since,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: orUndef(r.last_seen_at),
    lastProbeAt: orUndef(r.last_probe_at),
    nextProbeAt: r.next_probe_at,
    failures: r.failures,
    lastError: orUndef(r.last_error),
    review: orUndef(r.review),
    reviewLabel: orUndef(r.review_label),
  };
}

function toModel(r: ModelRow): StoredModel {
  return {
    providerId: r.provider_id,
    id: r.model_id,
    name: orUndef(r.name),
    aliasIds: JSON.parse(r.alias_ids) as string[],
    contextLength: orUndef(r.context_length),
    price: r.price === null ? null : (JSON.parse(r.price) as ModelPrice),
    reserve: r.reserve_terms === null ? null : (JSON.parse(r.reserve_terms) as ReserveTerms),
    firstSeenAt: r.first_seen_at,
    priceSince: r.price_since,
  };
}

/** Reads and writes the market tables. All writes for one probe happen in one transaction. */
export class MarketStore {
  private readonly upsertProvider;
  private readonly upsertModel;
  private readonly deleteModel;
  private readonly insertHistory;
  private readonly selectPriceAt;
  private readonly selectLast;
  private readonly deleteProvider;

  constructor(private readonly db: DB) {
    migrate(db, 'market', MARKET_MIGRATIONS);
    this.upsertProvider = db.prepare(`
      INSERT INTO market_providers (id, source, pubkey, d, event_id, event_created_at, name, about, version, urls, url,
        announced_mints, info_mints, status, status_since, first_seen_at, last_seen_at, last_probe_at, next_probe_at,
        failures, last_error, review, review_label)
      VALUES (@id, @source, @pubkey, @d, @event_id, @event_created_at, @name, @about, @version, @urls, @url,
        @announced_mints, @info_mints, @status, @status_since, @first_seen_at, @last_seen_at, @last_probe_at, @next_probe_at,
        @failures, @last_error, @review, @review_label)
      ON CONFLICT (id) DO UPDATE SET source = excluded.source, pubkey = excluded.pubkey, d = excluded.d,
        event_id = excluded.event_id, event_created_at = excluded.event_created_at, name = excluded.name,
        about = excluded.about, version = excluded.version, urls = excluded.urls, url = excluded.url,
        announced_mints = excluded.announced_mints, info_mints = excluded.info_mints, status = excluded.status,
        status_since = excluded.status_since, last_seen_at = excluded.last_seen_at, last_probe_at = excluded.last_probe_at,
        next_probe_at = excluded.next_probe_at, failures = excluded.failures, last_error = excluded.last_error,
        review = excluded.review, review_label = excluded.review_label`);
    this.upsertModel = db.prepare(`
      INSERT INTO market_models (provider_id, model_id, name, alias_ids, context_length, price, reserve_terms, first_seen_at, price_since)
      VALUES (@provider_id, @model_id, @name, @alias_ids, @context_length, @price, @reserve_terms, @first_seen_at, @price_since)
      ON CONFLICT (provider_id, model_id) DO UPDATE SET name = excluded.name, alias_ids = excluded.alias_ids,
        context_length = excluded.context_length, price = excluded.price, reserve_terms = excluded.reserve_terms,
        price_since = excluded.price_since`);
    this.deleteModel = db.prepare('DELETE FROM market_models WHERE provider_id = ? AND model_id = ?');
    this.insertHistory = db.prepare('INSERT INTO market_price_history (provider_id, model_id, valid_from, price) VALUES (?, ?, ?, ?)');
    this.selectPriceAt = db.prepare(
      'SELECT price FROM market_price_history WHERE provider_id = ? AND model_id = ? AND valid_from <= ? ORDER BY valid_from DESC, id DESC LIMIT 1',
    );
    this.selectLast = db.prepare('SELECT valid_from, price FROM market_price_history WHERE provider_id = ? AND model_id = ? ORDER BY valid_from DESC, id DESC LIMIT 1');
    this.deleteProvider = db.prepare('DELETE FROM market_providers WHERE id = ?');
  }

  /** Everything stored, for a warm start. */
  load(): { providers: StoredProvider[]; models: StoredModel[] } {
    const providers = (this.db.prepare('SELECT * FROM market_providers').all() as ProviderRow[]).map(toProvider);
    const models = (this.db.prepare('SELECT * FROM market_models').all() as ModelRow[]).map(toModel);
    return { providers, models };
  }

  saveProvider(p: StoredProvider): void {
    this.upsertProvider.run(providerParams(p));
  }

  /**
   * One probe's outcome in one transaction: the provider row, the models that changed or
   * appeared, the ones that went away, and the price history rows to add.
   */
  saveProbe(p: StoredProvider, upserts: readonly StoredModel[], removedModelIds: readonly string[], history: readonly PriceRecord[]): void {
    this.db.transaction(() => {
      this.upsertProvider.run(providerParams(p));
      for (const m of upserts) {
        this.upsertModel.run({
          provider_id: m.providerId,
          model_id: m.id,
          name: m.name ?? null,
          alias_ids: JSON.stringify(m.aliasIds),
          context_length: m.contextLength ?? null,
          price: m.price === null ? null : JSON.stringify(m.price),
          reserve_terms: m.reserve === null ? null : JSON.stringify(m.reserve),
          first_seen_at: m.firstSeenAt,
          price_since: m.priceSince,
        });
      }
      for (const id of removedModelIds) this.deleteModel.run(p.id, id);
      for (const h of history) this.insertHistory.run(h.providerId, h.modelId, h.validFrom, h.price === null ? null : JSON.stringify(h.price));
    })();
  }

  removeProvider(id: string): void {
    this.deleteProvider.run(id);
  }

  /** The price a provider listed for a model at a time (ms); null if unpriced or withdrawn then, undefined if never seen by then. */
  priceAt(providerId: string, modelId: string, atMs: number): ModelPrice | null | undefined {
    const row = this.selectPriceAt.get(providerId, modelId, atMs) as { price: string | null } | undefined;
    if (!row) return undefined;
    return row.price === null ? null : (JSON.parse(row.price) as ModelPrice);
  }

  /** The newest history row of a model at a provider. */
  lastRecorded(providerId: string, modelId: string): { validFrom: number; price: ModelPrice | null } | undefined {
    const row = this.selectLast.get(providerId, modelId) as { valid_from: number; price: string | null } | undefined;
    return row && { validFrom: row.valid_from, price: row.price === null ? null : (JSON.parse(row.price) as ModelPrice) };
  }

  /** Delete history rows that were superseded before `cutoffMs`; returns how many. */
  pruneHistory(cutoffMs: number): number {
    return this.db
      .prepare(
        `DELETE FROM market_price_history AS h WHERE h.valid_from < @cutoff AND EXISTS (
           SELECT 1 FROM market_price_history AS n WHERE n.provider_id = h.provider_id AND n.model_id = h.model_id
             AND n.valid_from <= @cutoff AND (n.valid_from > h.valid_from OR (n.valid_from = h.valid_from AND n.id > h.id)))`,
      )
      .run({ cutoff: cutoffMs }).changes;
  }

  /** Every recorded price of a model at a provider, oldest first. */
  priceHistory(providerId: string, modelId: string): { validFrom: number; price: ModelPrice | null }[] {
    const rows = this.db
      .prepare('SELECT valid_from, price FROM market_price_history WHERE provider_id = ? AND model_id = ? ORDER BY valid_from, id')
      .all(providerId, modelId) as { valid_from: number; price: string | null }[];
    return rows.map((r) => ({ validFrom: r.valid_from, price: r.price === null ? null : (JSON.parse(r.price) as ModelPrice) }));
  }
}

function providerParams(p: StoredProvider): Record<string, unknown> {
  return {
    id: p.id,
    source: p.source,
    pubkey: p.pubkey ?? null,
    d: p.d ?? null,
    event_id: p.eventId ?? null,
    event_created_at: p.eventCreatedAt ?? null,
    name: p.name ?? null,
    about: p.about ?? null,
    version: p.version ?? null,
    urls: JSON.stringify(p.urls),
    url: p.url ?? null,
    announced_mints: JSON.stringify(p.announcedMints),
    info_mints: JSON.stringify(p.infoMints),
    status: p.status,
    status_since: p.statusSince,
    first_seen_at: p.firstSeenAt,
    last_seen_at: p.lastSeenAt ?? null,
    last_probe_at: p.lastProbeAt ?? null,
    next_probe_at: p.nextProbeAt,
    failures: p.failures,
    last_error: p.lastError ?? null,
    review: p.review ?? null,
    review_label: p.reviewLabel ?? null,
  };
}
