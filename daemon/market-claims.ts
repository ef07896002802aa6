// Who owns an announced URL. Anyone can sign a kind-38421 event naming any URL; the node at
// that URL says whose it is in /v1/info `npub`, which routstr-core derives from the key that
// signs its announcements (core/settings.py derive_npub_from_nsec; nostr/listing.py). An
// announcement whose pubkey that npub contradicts is not given the URL: its offers there would
// carry the impostor's mints, review and statistics under another node's service. So a URL
// claimed by two pubkeys goes to the one /v1/info names; when /v1/info names none (an older
// node, or no answer), the claim stands unverified, as before.
import { decode } from 'nostr-tools/nip19';

export type UrlClaim = 'confirmed' | 'refuted' | 'unverified';

/** The pubkey (hex) a /v1/info `npub` names (npub1... or 64 hex digits); undefined when it names none. */
export function infoPubkey(npub: string | undefined): string | undefined {
  const s = npub?.trim();
  if (!s) return undefined;
  if (/^[0-9a-f]{64}$/i.test(s)) return s.toLowerCase();
  if (!s.startsWith('npub1')) return undefined;
  try {
    const d = decode(s as `npub1${string}`);
    return d.type === 'npub' ? d.data : undefined;
  } catch {
    return undefined;
  }
}

/** Whether what /v1/info says at a URL backs an announcement signed by `announcer` (hex; none for a static provider). */
export function urlClaim(announcer: string | undefined, info: { npub?: string } | undefined): UrlClaim {
  const owner = infoPubkey(info?.npub);
  if (!announcer || !owner) return 'unverified';
  return owner === announcer.toLowerCase() ? 'confirmed' : 'refuted';
}
