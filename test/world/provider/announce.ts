// The provider's kind-38421 announcement (RIP-02), built and published as routstr's
// nostr/listing.py does.
import { WebSocket } from 'ws';
import { finalizeEvent, type Event, type EventTemplate } from 'nostr-tools/pure';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';

useWebSocketImplementation(WebSocket);

export const ANNOUNCEMENT_KIND = 38421;

export interface AnnouncementFields {
  providerId: string;
  urls: string[];
  mints: string[];
  version: string;
  name: string;
  about: string;
  createdAtSec: number;
}

export interface AnnounceOverrides {
  /** Replace the tags wholesale. */
  tags?: string[][];
  /** Replace the content string wholesale (may be invalid JSON). */
  content?: string;
  createdAtSec?: number;
  urls?: string[];
  mints?: string[];
  version?: string;
  name?: string;
  about?: string;
  providerId?: string;
}

export function announcementTemplate(f: AnnouncementFields, over: AnnounceOverrides = {}): EventTemplate {
  const urls = over.urls ?? f.urls;
  const mints = over.mints ?? f.mints;
  const tags = over.tags ?? [
    ['d', over.providerId ?? f.providerId],
    ...urls.map((u) => ['u', u]),
    ...mints.map((m) => ['mint', m]),
    ['version', over.version ?? f.version],
  ];
  const content = over.content ?? JSON.stringify({ name: over.name ?? f.name, about: over.about ?? f.about });
  return { kind: ANNOUNCEMENT_KIND, created_at: over.createdAtSec ?? f.createdAtSec, tags, content };
}

export interface PublishResult {
  event: Event;
  accepted: string[];
  failed: { relay: string; reason: string }[];
}

/** Sign and send to every relay (each with its own short-lived connection). */
export async function publishAnnouncement(template: EventTemplate, secretKey: Uint8Array, relays: string[], timeoutMs = 3000): Promise<PublishResult> {
  const event = finalizeEvent(template, secretKey);
  const result: PublishResult = { event, accepted: [], failed: [] };
  await Promise.all(
    relays.map(async (url) => {
      let relay: Relay | undefined;
      try {
        relay = await Relay.connect(url, { timeout: timeoutMs });
        relay.publishTimeout = timeoutMs;
        await relay.publish(event);
        result.accepted.push(url);
      } catch (err) {
        result.failed.push({ relay: url, reason: (err as Error)?.message ?? String(err) });
      } finally {
        relay?.close();
      }
    }),
  );
  return result;
}
