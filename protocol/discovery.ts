// Routstr provider discovery over Nostr: kind-38421 announcements (ROUTSTR.md section 1).
// An announcement is addressable by (pubkey, d); only the newest is kept. Events are
// parsed with zod, checked for a signature only when they would change what we know, and
// dropped when dated more than 15 minutes ahead or when they carry no `u` URL.
import { z } from 'zod';
import { nullLogger, type Logger } from './logger.ts';
import { isFutureDated, NostrEventSchema, type NostrEvent, supersedes, tagValues, verifySignature, type VerifyFn } from './nostr-event.ts';
import { RelayPool, type RelayPoolOptions, type RelayStatus } from './relays.ts';
import { REVIEW_KIND, ReviewBook, type Review } from './reviews.ts';

export const PROVIDER_KIND = 38421;

/** A provider as it announces itself. */
export interface Announcement {
  /** `${pubkey}:${d}`: the announcement's address and the provider's id. */
  address: string;
  pubkey: string;
  d: string;
  eventId: string;
  /** Seconds since the epoch, as signed. */
  createdAt: number;
  /** Base URLs (normalized, no trailing slash), in the announced order. */
  urls: string[];
  /** Accepted mint URLs, spelled exactly as announced. */
  mints: string[];
  version?: string;
  name?: string;
  about?: string;
}

export type Rejection = 'malformed' | 'wrong_kind' | 'future' | 'no_url' | 'bad_signature';

/**
 * Bounds on what one announcement may make us do or keep. A node announces one `u` per endpoint
 * (clearnet, onion) and its few mints; a probe tries every URL in turn, each with its own
 * timeout, so an event with thousands of dead URLs would hold a probe slot for hours.
 */
export const MAX_ANNOUNCED_URLS = 8;
export const MAX_ANNOUNCED_MINTS = 20;
const MAX_D_CHARS = 256;
const MAX_VERSION_CHARS = 64;

const ContentSchema = z.object({ name: z.string().max(200).optional().catch(undefined), about: z.string().max(2000).optional().catch(undefined) });

/**
 * A provider base URL in one spelling: scheme kept (a bare host gets https://, a bare
 * .onion gets http://), host lower-cased, no trailing slash, no query or fragment.
 * Undefined for anything that is not an http(s) URL.
 */
export function normalizeProviderUrl(raw: string): string | undefined {
  let s = raw.trim();
  if (!s) return undefined;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = (/\.onion(?::\d+)?(?:\/|$)/i.test(s) ? 'http://' : 'https://') + s;
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password) return undefined;
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

export function isOnionUrl(url: string): boolean {
  try {
    return new URL(url).hostname.endsWith('.onion');
  } catch {
    return false;
  }
}

/** Read a kind-38421 event into an Announcement, without checking its signature. */
export function readAnnouncement(raw: unknown, nowMs: number): Announcement | Rejection {
  const parsed = NostrEventSchema.safeParse(raw);
  if (!parsed.success) return 'malformed';
  const ev = parsed.data;
  if (ev.kind !== PROVIDER_KIND) return 'wrong_kind';
  if (isFutureDated(ev.created_at, nowMs)) return 'future';
  const urls = unique(tagValues(ev.tags, 'u').map(normalizeProviderUrl)).slice(0, MAX_ANNOUNCED_URLS);
  if (urls.length === 0) return 'no_url';
  // Mint URLs exactly as announced: a node compares a token's mint with its list as exact strings.
  const mints = unique(tagValues(ev.tags, 'mint').filter((m) => normalizeProviderUrl(m) !== undefined)).slice(0, MAX_ANNOUNCED_MINTS);
  const d = tagValues(ev.tags, 'd')[0] ?? '';
  if (d.length > MAX_D_CHARS) return 'malformed';
  const version = tagValues(ev.tags, 'version')[0];
  let content: z.infer<typeof ContentSchema> = {};
  try {
    const r = ContentSchema.safeParse(JSON.parse(ev.content));
    if (r.success) content = r.data;
  } catch {
    // content is optional metadata: empty or invalid JSON leaves the name unknown
  }
  return {
    address: `${ev.pubkey}:${d}`,
    pubkey: ev.pubkey,
    d,
    eventId: ev.id,
    createdAt: ev.created_at,
    urls,
    mints,
    version: version !== undefined && version.length <= MAX_VERSION_CHARS ? version : undefined,
    name: content.name?.trim() || undefined,
    about: content.about,
  };
}

function unique(values: (string | undefined)[]): string[] {
  return [...new Set(values.filter((v): v is string => !!v))];
}

export type IngestResult = { outcome: 'added' | 'replaced'; announcement: Announcement } | { outcome: 'duplicate' | 'stale' } | { outcome: 'rejected'; reason: Rejection };

/** The newest verified announcement per address. */
export class AnnouncementBook {
  private readonly byAddress = new Map<string, Announcement>();

  constructor(private readonly verify: VerifyFn = verifySignature) {}

  /** Take an event from a relay; its signature is checked only if it would change the book. */
  ingest(raw: unknown, nowMs: number): IngestResult {
    const a = readAnnouncement(raw, nowMs);
    if (typeof a === 'string') return { outcome: 'rejected', reason: a };
    const current = this.byAddress.get(a.address);
    if (current?.eventId === a.eventId) return { outcome: 'duplicate' };
    if (current && !supersedes(a, current)) return { outcome: 'stale' };
    if (!this.verify(raw as NostrEvent)) return { outcome: 'rejected', reason: 'bad_signature' };
    this.byAddress.set(a.address, a);
    return { outcome: current ? 'replaced' : 'added', announcement: a };
  }

  get(address: string): Announcement | undefined {
    return this.byAddress.get(address);
  }

  all(): Announcement[] {
    return [...this.byAddress.values()];
  }

  get size(): number {
    return this.byAddress.size;
  }
}

export interface DiscoveryOptions {
  relays: readonly string[];
  /** Curator pubkeys (hex) whose kind-38425 reviews are read. */
  curators?: readonly string[];
  onAnnouncement: (announcement: Announcement, outcome: 'added' | 'replaced') => void;
  onReview?: (review: Review) => void;
  /** Called once per relay when it has sent what it stored (EOSE). */
  onEose?: (relayUrl: string) => void;
  clock?: () => number;
  logger?: Logger;
  verify?: VerifyFn;
  WebSocketImpl?: unknown;
  random?: () => number;
  relayOptions?: Pick<RelayPoolOptions, 'backoffMs' | 'connectTimeoutMs' | 'eoseTimeoutMs' | 'pingIntervalMs'>;
}

/** Live discovery: subscribes to every relay, keeps the books, reports changes. */
export class Discovery {
  readonly announcements: AnnouncementBook;
  readonly reviews: ReviewBook;
  private readonly pool: RelayPool;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly rejected = new Map<Rejection, number>();

  constructor(private readonly opts: DiscoveryOptions) {
    this.clock = opts.clock ?? Date.now;
    this.log = opts.logger ?? nullLogger;
    const verify = opts.verify ?? verifySignature;
    this.announcements = new AnnouncementBook(verify);
    this.reviews = new ReviewBook(opts.curators ?? [], verify);
    const filters: { kinds: number[]; authors?: string[] }[] = [{ kinds: [PROVIDER_KIND] }];
    if (opts.curators?.length) filters.push({ kinds: [REVIEW_KIND], authors: [...opts.curators] });
    this.pool = new RelayPool({
      urls: opts.relays,
      filters,
      onEvent: (ev, url) => this.ingest(ev, url),
      onEose: opts.onEose,
      WebSocketImpl: opts.WebSocketImpl,
      logger: this.log,
      clock: this.clock,
      random: opts.random,
      ...opts.relayOptions,
    });
  }

  start(): void {
    this.pool.start();
  }

  stop(): void {
    this.pool.stop();
  }

  relayStatuses(): RelayStatus[] {
    return this.pool.statuses();
  }

  /** Counts of events dropped, by reason (for status output and tests). */
  rejections(): Record<string, number> {
    return Object.fromEntries(this.rejected);
  }

  /** Feed one event (from a relay, or a test). */
  ingest(raw: unknown, relayUrl = 'local'): void {
    const kind = (raw as { kind?: unknown } | null)?.kind;
    const now = this.clock();
    if (kind === REVIEW_KIND) {
      const r = this.reviews.ingest(raw, now);
      if (r.outcome === 'added' || r.outcome === 'replaced') this.opts.onReview?.(r.review);
      return;
    }
    const r = this.announcements.ingest(raw, now);
    if (r.outcome === 'added' || r.outcome === 'replaced') {
      this.log.debug('provider announcement', { relay: relayUrl, address: r.announcement.address, urls: r.announcement.urls });
      this.opts.onAnnouncement(r.announcement, r.outcome);
    } else if (r.outcome === 'rejected') {
      this.rejected.set(r.reason, (this.rejected.get(r.reason) ?? 0) + 1);
      if (r.reason !== 'no_url' && r.reason !== 'wrong_kind') this.log.debug('announcement dropped', { relay: relayUrl, reason: r.reason });
    }
  }
}
