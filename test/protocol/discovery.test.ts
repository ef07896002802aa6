import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event, type EventTemplate } from 'nostr-tools/pure';
import { AnnouncementBook, Discovery, normalizeProviderUrl, readAnnouncement, type Announcement } from '../../protocol/discovery.ts';
import { startRelay } from '../world/relay.ts';
import { publishAnnouncement } from '../world/provider/announce.ts';

const NOW = 1_800_000_000_000;
const nowSec = Math.floor(NOW / 1000);

function template(over: Partial<EventTemplate> & { d?: string; urls?: string[] } = {}): EventTemplate {
  return {
    kind: 38421,
    created_at: over.created_at ?? nowSec - 60,
    tags: over.tags ?? [['d', over.d ?? 'node1'], ...(over.urls ?? ['https://node.example']).map((u) => ['u', u]), ['mint', 'https://mint.example/'], ['version', '0.4.5']],
    content: over.content ?? JSON.stringify({ name: 'Node One', about: 'a node' }),
  };
}

/** A copy of a signed event with one field changed and the signature kept. */
function forge(ev: Event, patch: Partial<Event>): Event {
  return { ...(JSON.parse(JSON.stringify(ev)) as Event), ...patch };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('provider URLs are compared in one spelling; non-http URLs are refused', () => {
  assert.equal(normalizeProviderUrl('https://API.Example.com/'), 'https://api.example.com');
  assert.equal(normalizeProviderUrl('api.example.com'), 'https://api.example.com');
  assert.equal(normalizeProviderUrl('abcdefghijklmnop.onion'), 'http://abcdefghijklmnop.onion');
  assert.equal(normalizeProviderUrl('http://127.0.0.1:8000/routstr/'), 'http://127.0.0.1:8000/routstr');
  assert.equal(normalizeProviderUrl('ftp://example.com'), undefined);
  assert.equal(normalizeProviderUrl('javascript:alert(1)'), undefined);
  assert.equal(normalizeProviderUrl('https://user:pw@example.com'), undefined);
  assert.equal(normalizeProviderUrl('   '), undefined);
});

test('an announcement is read from its tags; invalid content leaves the name unknown', () => {
  const sk = generateSecretKey();
  const ok = readAnnouncement(finalizeEvent(template({ urls: ['https://a.example/', 'http://x.onion'] }), sk), NOW) as Announcement;
  assert.equal(ok.address, `${getPublicKey(sk)}:node1`);
  assert.deepEqual(ok.urls, ['https://a.example', 'http://x.onion']);
  assert.deepEqual(ok.mints, ['https://mint.example/'], 'mint spelled exactly as announced (a node compares mint URLs as exact strings)');
  assert.equal(ok.name, 'Node One');
  assert.equal(ok.version, '0.4.5');
  for (const content of ['', 'not json {', '[1,2]', '{"name": 5}']) {
    const a = readAnnouncement(finalizeEvent(template({ content }), sk), NOW);
    assert.equal(typeof a, 'object', `content ${JSON.stringify(content)}`);
    assert.equal((a as Announcement).name, undefined);
  }
});

test('events without a u tag, dated over 15 minutes ahead, or malformed are dropped', () => {
  const sk = generateSecretKey();
  assert.equal(readAnnouncement(finalizeEvent(template({ tags: [['d', 'x'], ['mint', 'https://m.example']] }), sk), NOW), 'no_url');
  assert.equal(readAnnouncement(finalizeEvent(template({ tags: [['d', 'x'], ['u', 'ftp://nope']] }), sk), NOW), 'no_url');
  assert.equal(readAnnouncement(finalizeEvent(template({ created_at: nowSec + 16 * 60 }), sk), NOW), 'future');
  assert.equal(typeof readAnnouncement(finalizeEvent(template({ created_at: nowSec + 14 * 60 }), sk), NOW), 'object');
  assert.equal(readAnnouncement({ kind: 38421, tags: 'x' }, NOW), 'malformed');
  assert.equal(readAnnouncement(finalizeEvent({ ...template(), kind: 1 }, sk), NOW), 'wrong_kind');
});

test('the book keeps the newest announcement per (pubkey, d) and ignores forgeries', () => {
  const book = new AnnouncementBook();
  const sk = generateSecretKey();
  const v1 = finalizeEvent(template({ created_at: nowSec - 100, urls: ['https://one.example'] }), sk);
  const v2 = finalizeEvent(template({ created_at: nowSec - 50, urls: ['https://two.example'] }), sk);
  const other = finalizeEvent(template({ d: 'node2', created_at: nowSec - 200 }), sk);
  assert.equal(book.ingest(v2, NOW).outcome, 'added');
  assert.equal(book.ingest(v1, NOW).outcome, 'stale');
  assert.equal(book.ingest(v2, NOW).outcome, 'duplicate');
  assert.equal(book.ingest(other, NOW).outcome, 'added');
  assert.equal(book.size, 2);
  assert.deepEqual(book.get(`${getPublicKey(sk)}:node1`)?.urls, ['https://two.example']);

  // someone else's key cannot take over the address: a newer event with a tampered URL fails
  const forgedUrl = forge(finalizeEvent(template({ created_at: nowSec - 10, urls: ['https://three.example'] }), sk), {
    tags: [['d', 'node1'], ['u', 'https://evil.example']],
  });
  assert.deepEqual(book.ingest(forgedUrl, NOW), { outcome: 'rejected', reason: 'bad_signature' });
  const forgedKey = forge(finalizeEvent(template({ created_at: nowSec - 10 }), generateSecretKey()), { pubkey: getPublicKey(sk) });
  assert.deepEqual(book.ingest(forgedKey, NOW), { outcome: 'rejected', reason: 'bad_signature' });
  assert.deepEqual(book.get(`${getPublicKey(sk)}:node1`)?.urls, ['https://two.example']);

  // same second: the lower id wins, whatever the order of arrival (NIP-01)
  const a = finalizeEvent(template({ created_at: nowSec, urls: ['https://a.example'] }), sk);
  const b = finalizeEvent(template({ created_at: nowSec, urls: ['https://b.example'] }), sk);
  const [low, high] = a.id < b.id ? [a, b] : [b, a];
  book.ingest(high, NOW);
  book.ingest(low, NOW);
  book.ingest(high, NOW);
  assert.equal(book.get(`${getPublicKey(sk)}:node1`)?.eventId, low.id);
});

test('discovery over real relays keeps the newest announcement whichever relay has it', async (t) => {
  const relayA = await startRelay();
  const relayB = await startRelay();
  t.after(() => relayA.stop());
  t.after(() => relayB.stop());
  const sk = generateSecretKey();
  const created = Math.floor(Date.now() / 1000);
  await publishAnnouncement(template({ created_at: created - 100, urls: ['https://old.example'] }), sk, [relayB.url]);
  await publishAnnouncement(template({ created_at: created - 10, urls: ['https://new.example'] }), sk, [relayA.url]);
  const seen: Announcement[] = [];
  const eose = new Set<string>();
  const discovery = new Discovery({ relays: [relayA.url, relayB.url], onAnnouncement: (a) => seen.push(a), onEose: (u) => eose.add(u) });
  t.after(() => discovery.stop());
  discovery.start();
  await waitFor('both relays', () => eose.size === 2);
  assert.equal(discovery.announcements.size, 1);
  assert.deepEqual(discovery.announcements.all()[0].urls, ['https://new.example']);
  assert.deepEqual(seen.at(-1)?.urls, ['https://new.example']);
});

test('future-dated and url-less announcements on a real relay never reach the book; the valid one does', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const created = Math.floor(Date.now() / 1000);
  await publishAnnouncement(template({ created_at: created + 20 * 60, urls: ['https://future.example'] }), generateSecretKey(), [relay.url]);
  await publishAnnouncement(template({ created_at: created, tags: [['d', 'other-protocol'], ['r', 'wss://x']] }), generateSecretKey(), [relay.url]);
  await publishAnnouncement(template({ created_at: created, content: 'garbage{', urls: ['https://ok.example'] }), generateSecretKey(), [relay.url]);
  let done = false;
  const discovery = new Discovery({ relays: [relay.url], onAnnouncement: () => {}, onEose: () => (done = true) });
  t.after(() => discovery.stop());
  discovery.start();
  await waitFor('EOSE', () => done);
  assert.deepEqual(discovery.announcements.all().map((a) => a.urls[0]), ['https://ok.example']);
  assert.deepEqual(discovery.rejections(), { future: 1, no_url: 1 });
});

test('a relay that serves forged announcements cannot plant a provider', async (t) => {
  // A hostile relay (a plain WebSocket server) answers every REQ with a forged copy of a
  // real announcement pointing at its own URL, and with the genuine event of another node.
  const sk = generateSecretKey();
  const genuine = finalizeEvent(template({ created_at: Math.floor(Date.now() / 1000) - 60, urls: ['https://genuine.example'] }), sk);
  const forged = forge(genuine, { tags: [['d', 'node1'], ['u', 'https://attacker.example']], created_at: genuine.created_at + 1 });
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  t.after(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  );
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as unknown[];
      if (msg[0] !== 'REQ') return;
      ws.send(JSON.stringify(['EVENT', msg[1], forged]));
      ws.send(JSON.stringify(['EVENT', msg[1], genuine]));
      ws.send(JSON.stringify(['EOSE', msg[1]]));
    });
  });
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  let done = false;
  const discovery = new Discovery({ relays: [url], onAnnouncement: () => {}, onEose: () => (done = true) });
  t.after(() => discovery.stop());
  discovery.start();
  await waitFor('EOSE', () => done);
  assert.deepEqual(discovery.announcements.all().map((a) => a.urls), [['https://genuine.example']]);
  assert.equal(discovery.rejections().bad_signature, 1);
});

test('a dead relay in the list does not hold up discovery from a live one', async (t) => {
  const live = await startRelay();
  const dead = await startRelay();
  t.after(() => live.stop());
  t.after(() => dead.stop());
  await dead.down();
  await publishAnnouncement(template({ created_at: Math.floor(Date.now() / 1000), urls: ['https://alive.example'] }), generateSecretKey(), [live.url]);
  const seen: Announcement[] = [];
  const discovery = new Discovery({ relays: [dead.url, live.url], onAnnouncement: (a) => seen.push(a), relayOptions: { backoffMs: [60_000] } });
  t.after(() => discovery.stop());
  discovery.start();
  await waitFor('the live relay announcement', () => seen.length === 1);
  const statuses = discovery.relayStatuses();
  assert.equal(statuses.find((s) => s.url === dead.url)?.state, 'waiting');
  assert.equal(statuses.find((s) => s.url === live.url)?.state, 'open');
});
