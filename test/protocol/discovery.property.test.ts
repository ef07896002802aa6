// Hostile input for Nostr discovery: signed events with junk content and tags, forged and
// tampered events, and plain junk from a relay. Nothing throws; the books hold exactly the
// newest genuine announcement per address and the newest genuine curator review, bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sha256 } from '@noble/hashes/sha2.js';
import { finalizeEvent, getPublicKey, type Event } from 'nostr-tools/pure';
import { Discovery, MAX_ANNOUNCED_MINTS, MAX_ANNOUNCED_URLS, normalizeProviderUrl, PROVIDER_KIND, readAnnouncement, type Announcement } from '../../protocol/discovery.ts';
import { MAX_FUTURE_SEC, supersedes, verifySignature } from '../../protocol/nostr-event.ts';
import { readReview, REVIEW_KIND, type Review } from '../../protocol/reviews.ts';
import { assertProperty } from '../property.ts';

const NOW = 1_800_000_000_000;
const NOW_SEC = NOW / 1000;
// Fixed keys, so a seed always signs the same events.
const KEYS = ['alpha', 'beta', 'curator'].map((s) => sha256(new TextEncoder().encode(s)));
const PUBKEYS = KEYS.map((k) => getPublicKey(k));
const CURATOR = PUBKEYS[2];

const junk = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 8 }));
const urlish = fc.oneof(fc.constantFrom('https://node.example/', 'HTTPS://Node.Example', 'node.example', 'abcdefghijklmnop.onion', 'http://127.0.0.1:8000/r/', 'ftp://bad.example', 'javascript:alert(1)', 'https://u:p@h.example', '', ' '), fc.webUrl(), junk);
const tagArb = fc.oneof(
  fc.tuple(fc.constant('u'), urlish).map((t) => [...t]),
  fc.tuple(fc.constant('mint'), urlish).map((t) => [...t]),
  fc.tuple(fc.constantFrom('d'), fc.oneof(fc.constantFrom('node1', 'node2', ''), junk, fc.string({ minLength: 250, maxLength: 300 }))).map((t) => [...t]),
  fc.tuple(fc.constantFrom('version'), fc.oneof(fc.constant('0.4.5'), junk, fc.string({ minLength: 60, maxLength: 70 }))).map((t) => [...t]),
  fc.tuple(fc.constantFrom('node', 'p'), fc.oneof(fc.constantFrom(...PUBKEYS, PUBKEYS[0].toUpperCase()), junk)).map((t) => [...t]),
  fc.tuple(fc.constantFrom('t', 'l'), fc.oneof(fc.constantFrom('lgtm', 'trusted', 'avoid', 'Blacklisted ', 'meh'), junk)).map((t) => [...t]),
  fc.array(junk, { maxLength: 3 }),
);
const contentArb = fc.oneof(
  fc.record({ name: fc.oneof(fc.string({ maxLength: 30 }), fc.string({ minLength: 201, maxLength: 210 }), fc.anything()), about: fc.anything() }, { requiredKeys: [] }).map((c) => JSON.stringify(c) ?? ''),
  fc.string({ maxLength: 40 }),
);
/** One way an event can be altered after signing. */
const tamperArb = fc.constantFrom('none', 'none', 'none', 'content', 'tags', 'created_at', 'sig', 'id', 'pubkey');

const eventArb = fc
  .record({
    key: fc.nat({ max: KEYS.length - 1 }),
    kind: fc.oneof({ weight: 6, arbitrary: fc.constant(PROVIDER_KIND) }, { weight: 3, arbitrary: fc.constant(REVIEW_KIND) }, { weight: 1, arbitrary: fc.constantFrom(1, 31338, 40500) }),
    created_at: fc.oneof(fc.integer({ min: NOW_SEC - 400, max: NOW_SEC }), fc.integer({ min: NOW_SEC - 1e7, max: NOW_SEC + 2 * MAX_FUTURE_SEC })),
    tags: fc.array(tagArb, { maxLength: 14 }),
    // Most events get a d and a u, so addresses collide and replacement is exercised.
    base: fc.constantFrom<string[][]>([['d', 'node1'], ['u', 'https://node.example']], [['d', 'node2'], ['u', 'http://b.example/']], [['u', 'https://c.example']], []),
    content: contentArb,
    tamper: tamperArb,
  })
  .map(({ key, kind, created_at, tags, base, content, tamper }) => {
    const ev = finalizeEvent({ kind, created_at, tags: [...base, ...tags], content }, KEYS[key]);
    const copy = JSON.parse(JSON.stringify(ev)) as Event;
    if (tamper === 'content') copy.content += ' ';
    if (tamper === 'tags') copy.tags = [...copy.tags, ['u', 'https://evil.example']];
    if (tamper === 'created_at') copy.created_at += 1;
    if (tamper === 'sig') copy.sig = (copy.sig[0] === '0' ? '1' : '0') + copy.sig.slice(1);
    if (tamper === 'id') copy.id = (copy.id[0] === '0' ? '1' : '0') + copy.id.slice(1);
    if (tamper === 'pubkey') copy.pubkey = PUBKEYS[(key + 1) % PUBKEYS.length];
    return { event: copy, genuine: tamper === 'none' };
  });

/** What the announcement book must hold: per address, the newest genuine, usable announcement. */
function expectedAnnouncements(events: { event: Event; genuine: boolean }[]): Map<string, Announcement> {
  const out = new Map<string, Announcement>();
  for (const { event, genuine } of events) {
    if (!genuine) continue;
    const a = readAnnouncement(event, NOW);
    if (typeof a === 'string') continue;
    const cur = out.get(a.address);
    if (!cur || supersedes(a, cur)) out.set(a.address, a);
  }
  return out;
}

function assertAnnouncementBounded(a: Announcement): void {
  assert.ok(a.urls.length >= 1 && a.urls.length <= MAX_ANNOUNCED_URLS);
  for (const u of a.urls) assert.equal(normalizeProviderUrl(u), u, 'a URL in its one spelling');
  assert.ok(a.urls.every((u) => /^https?:\/\//.test(u)));
  assert.ok(a.mints.length <= MAX_ANNOUNCED_MINTS && a.mints.every((m) => normalizeProviderUrl(m) !== undefined));
  assert.ok(a.d.length <= 256 && (a.version === undefined || a.version.length <= 64));
  assert.ok((a.name === undefined || a.name.length <= 200) && (a.about === undefined || a.about.length <= 2000));
  assert.ok(a.createdAt <= NOW_SEC + MAX_FUTURE_SEC);
}

test('signed, forged and tampered announcements and reviews in any order: the books hold exactly the newest genuine one per address', () => {
  assertProperty(
    fc.property(fc.array(eventArb, { maxLength: 8 }), (events) => {
      const announced: Announcement[] = [];
      const reviewed: Review[] = [];
      const discovery = new Discovery({ relays: [], curators: [CURATOR], clock: () => NOW, onAnnouncement: (a) => announced.push(a), onReview: (r) => reviewed.push(r) });
      for (const { event } of events) discovery.ingest(event);
      const expected = expectedAnnouncements(events);
      const held = new Map(discovery.announcements.all().map((a) => [a.address, a]));
      assert.deepEqual([...held.keys()].sort(), [...expected.keys()].sort());
      for (const [address, a] of held) {
        assert.equal(a.eventId, expected.get(address)!.eventId);
        assertAnnouncementBounded(a);
      }
      const genuineIds = new Set(events.filter((e) => e.genuine).map((e) => e.event.id));
      for (const a of announced) assert.ok(genuineIds.has(a.eventId), 'only genuine announcements are reported');
      for (const r of [...reviewed, ...discovery.reviews.all()]) {
        assert.equal(r.curator, CURATOR, 'only the curator\'s reviews count');
        assert.ok(genuineIds.has(r.eventId));
        assert.ok(r.nodes.length > 0 && r.nodes.every((n) => /^[0-9a-f]{64}$/.test(n)));
      }
      for (const pk of PUBKEYS) {
        const v = discovery.reviews.verdict(pk);
        if (v) assert.ok(v.verdict === undefined || v.verdict === 'good' || v.verdict === 'bad');
      }
    }),
    { seed: 1351, numRuns: 40 },
  );
});

/** Events shaped like Nostr events (hex where hex goes) with everything else junk. */
const shapedArb = fc.record({
  id: fc.stringMatching(/^[0-9a-f]{64}$/),
  pubkey: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.constantFrom('f'.repeat(64), '0'.repeat(64), ...PUBKEYS)),
  created_at: fc.oneof(fc.nat(), fc.integer({ min: NOW_SEC - 1000, max: NOW_SEC + 5000 })),
  kind: fc.constantFrom(PROVIDER_KIND, REVIEW_KIND),
  tags: fc.array(tagArb, { maxLength: 6 }),
  content: contentArb,
  sig: fc.stringMatching(/^[0-9a-f]{128}$/),
});

test('junk from a relay - any JSON, or hex that is not a key or a signature - is dropped without a throw', () => {
  assertProperty(
    fc.property(fc.oneof(shapedArb, fc.jsonValue(), fc.anything()), (raw) => {
      const r = readAnnouncement(raw, NOW);
      if (typeof r !== 'string') assertAnnouncementBounded(r);
      readReview(raw, NOW);
      let added = 0;
      const discovery = new Discovery({ relays: [], curators: [CURATOR], clock: () => NOW, onAnnouncement: () => added++, onReview: () => added++ });
      discovery.ingest(raw);
      discovery.ingest(raw);
      if (typeof raw === 'object' && raw !== null && 'sig' in raw) assert.equal(verifySignature(raw as never), false, 'a made-up signature never verifies');
      assert.equal(added, 0);
    }),
    { seed: 1352, numRuns: 400 },
  );
});

test('an announcement with thousands of URLs and mints keeps only the first few', () => {
  const tags = [['d', 'big'], ...Array.from({ length: 3000 }, (_, i) => ['u', `https://n${i}.example`]), ...Array.from({ length: 3000 }, (_, i) => ['mint', `https://m${i}.example`])];
  const a = readAnnouncement(finalizeEvent({ kind: PROVIDER_KIND, created_at: NOW_SEC, tags, content: '' }, KEYS[0]), NOW) as Announcement;
  assert.deepEqual(a.urls, Array.from({ length: MAX_ANNOUNCED_URLS }, (_, i) => `https://n${i}.example`));
  assert.equal(a.mints.length, MAX_ANNOUNCED_MINTS);
});
