// Curator reviews of providers: kind 38425, published by a configured curator pubkey, with
// `node` = the reviewed provider's pubkey (its kind-38421 author) and `t` = a label. A
// review is addressable by (curator, d); the newest review of a node decides its verdict.
import { isFutureDated, NostrEventSchema, supersedes, tagValues, verifySignature, type NostrEvent, type VerifyFn } from './nostr-event.ts';

export const REVIEW_KIND = 38425;

export const GOOD_LABELS: ReadonlySet<string> = new Set(['lgtm', 'trusted', 'verified']);
export const BAD_LABELS: ReadonlySet<string> = new Set(['avoid', 'suspicious', 'blacklisted', 'removed']);

export type Verdict = 'good' | 'bad';

export interface Review {
  curator: string;
  d: string;
  eventId: string;
  createdAt: number;
  /** Reviewed provider pubkeys (hex). */
  nodes: string[];
  label: string;
  verdict: Verdict | undefined;
}

/** The verdict a label carries; unknown labels carry none. Bad wins over good. */
export function verdictOf(labels: readonly string[]): Verdict | undefined {
  const lower = labels.map((l) => l.trim().toLowerCase());
  if (lower.some((l) => BAD_LABELS.has(l))) return 'bad';
  if (lower.some((l) => GOOD_LABELS.has(l))) return 'good';
  return undefined;
}

/** Read a kind-38425 event (signature not checked); undefined when it is not a usable review. */
export function readReview(raw: unknown, nowMs: number): Review | undefined {
  const parsed = NostrEventSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const ev = parsed.data;
  if (ev.kind !== REVIEW_KIND || isFutureDated(ev.created_at, nowMs)) return undefined;
  const nodes = [...new Set([...tagValues(ev.tags, 'node'), ...tagValues(ev.tags, 'p')].map((n) => n.toLowerCase()))].filter((n) => /^[0-9a-f]{64}$/.test(n));
  const labels = [...tagValues(ev.tags, 't'), ...tagValues(ev.tags, 'l')];
  if (nodes.length === 0 || labels.length === 0) return undefined;
  return {
    curator: ev.pubkey,
    d: tagValues(ev.tags, 'd')[0] ?? '',
    eventId: ev.id,
    createdAt: ev.created_at,
    nodes,
    label: labels[0].toLowerCase(),
    verdict: verdictOf(labels),
  };
}

export type ReviewIngest = { outcome: 'added' | 'replaced'; review: Review } | { outcome: 'ignored' | 'duplicate' | 'stale' | 'bad_signature' };

/** Reviews from trusted curators only, newest per (curator, d). */
export class ReviewBook {
  private readonly curators: Set<string>;
  private readonly byAddress = new Map<string, Review>();

  constructor(curators: readonly string[], private readonly verify: VerifyFn = verifySignature) {
    this.curators = new Set(curators.map((c) => c.toLowerCase()));
  }

  ingest(raw: unknown, nowMs: number): ReviewIngest {
    const r = readReview(raw, nowMs);
    if (!r || !this.curators.has(r.curator)) return { outcome: 'ignored' };
    const key = `${r.curator}:${r.d}`;
    const current = this.byAddress.get(key);
    if (current?.eventId === r.eventId) return { outcome: 'duplicate' };
    if (current && !supersedes(r, current)) return { outcome: 'stale' };
    if (!this.verify(raw as NostrEvent)) return { outcome: 'bad_signature' };
    this.byAddress.set(key, r);
    return { outcome: current ? 'replaced' : 'added', review: r };
  }

  /** The verdict of the newest review naming this provider pubkey. */
  verdict(nodePubkey: string): { verdict: Verdict | undefined; label: string } | undefined {
    let newest: Review | undefined;
    for (const r of this.byAddress.values()) {
      if (!r.nodes.includes(nodePubkey)) continue;
      if (!newest || supersedes(r, newest)) newest = r;
    }
    return newest && { verdict: newest.verdict, label: newest.label };
  }

  all(): Review[] {
    return [...this.byAddress.values()];
  }
}
