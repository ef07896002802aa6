// What discovery and reviews share about Nostr events: the zod shape of an event from a
// relay, tag access, the addressable-event replacement rule and the future-date limit.
import { verifyEvent } from 'nostr-tools/pure';
import { z } from 'zod';

/** Events dated further ahead than this are dropped (clock skew allowance). */
export const MAX_FUTURE_SEC = 15 * 60;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/** The shape of any Nostr event, before its signature is checked. */
export const NostrEventSchema = z.object({
  id: hex64,
  pubkey: hex64,
  created_at: z.number().int().nonnegative(),
  kind: z.number().int(),
  tags: z.array(z.array(z.string())),
  content: z.string(),
  sig: z.string().regex(/^[0-9a-f]{128}$/),
});
export type NostrEvent = z.infer<typeof NostrEventSchema>;

export type VerifyFn = (event: NostrEvent) => boolean;

/** Schnorr signature and id check (nostr-tools), on a fresh copy: nostr-tools caches its verdict on the object. */
export const verifySignature: VerifyFn = (event) => verifyEvent(JSON.parse(JSON.stringify(event)) as NostrEvent);

/** Whether an event is dated too far in the future to be believed. */
export function isFutureDated(createdAtSec: number, nowMs: number): boolean {
  return createdAtSec > Math.floor(nowMs / 1000) + MAX_FUTURE_SEC;
}

/** The first value of each tag named `name`. */
export function tagValues(tags: readonly string[][], name: string): string[] {
  const out: string[] = [];
  for (const t of tags) if (t[0] === name && typeof t[1] === 'string') out.push(t[1]);
  return out;
}

/** NIP-01 replacement rule for addressable events: newer wins; on a tie, the lower id. */
export function supersedes(candidate: { createdAt: number; eventId: string }, current: { createdAt: number; eventId: string }): boolean {
  if (candidate.createdAt !== current.createdAt) return candidate.createdAt > current.createdAt;
  return candidate.eventId < current.eventId;
}
