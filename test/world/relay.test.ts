import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event, type EventTemplate } from 'nostr-tools/pure';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import type { Filter } from 'nostr-tools/filter';
import { startRelay } from './relay.ts';

useWebSocketImplementation(WebSocket);

function announcement(d: string, createdAt: number, url: string): EventTemplate {
  return {
    kind: 38421,
    created_at: createdAt,
    tags: [['d', d], ['u', url], ['mint', 'http://127.0.0.1:1'], ['version', '0.4.5']],
    content: JSON.stringify({ name: d, about: 'test provider' }),
  };
}

async function query(relay: Relay, filter: Filter): Promise<Event[]> {
  return await new Promise((resolve) => {
    const events: Event[] = [];
    const sub = relay.subscribe([filter], {
      onevent: (e) => events.push(e),
      oneose: () => {
        sub.close();
        resolve(events);
      },
    });
  });
}

test('an event published to the relay can be queried back', async (t) => {
  const server = await startRelay();
  t.after(() => server.stop());
  const client = await Relay.connect(server.url);
  t.after(() => client.close());
  const sk = generateSecretKey();
  const event = finalizeEvent(announcement('alpha', 1_700_000_000, 'http://127.0.0.1:9'), sk);
  await client.publish(event);
  const found = await query(client, { kinds: [38421], authors: [getPublicKey(sk)] });
  assert.equal(found.length, 1);
  assert.equal(found[0].id, event.id);
  assert.deepEqual(found[0].tags, event.tags);
  assert.equal(server.connections(), 1);
});

test('a newer provider announcement replaces the older one with the same d tag', async (t) => {
  const server = await startRelay();
  t.after(() => server.stop());
  const client = await Relay.connect(server.url);
  t.after(() => client.close());
  const sk = generateSecretKey();
  const older = finalizeEvent(announcement('alpha', 1_700_000_000, 'http://old.example'), sk);
  const newer = finalizeEvent(announcement('alpha', 1_700_000_100, 'http://new.example'), sk);
  const other = finalizeEvent(announcement('beta', 1_700_000_000, 'http://beta.example'), sk);
  await client.publish(older);
  await client.publish(newer);
  await client.publish(other);
  // Publishing the older one again afterwards must not bring it back.
  await client.publish(older).catch(() => undefined);
  const found = await query(client, { kinds: [38421], authors: [getPublicKey(sk)] });
  const byD = new Map(found.map((e) => [e.tags.find((tag) => tag[0] === 'd')![1], e]));
  assert.equal(found.length, 2);
  assert.equal(byD.get('alpha')!.id, newer.id);
  assert.equal(byD.get('beta')!.id, other.id);
});

test('the relay rejects a forged event and does not store it', async (t) => {
  const server = await startRelay();
  t.after(() => server.stop());
  const client = await Relay.connect(server.url);
  t.after(() => client.close());
  const sk = generateSecretKey();
  const genuine = finalizeEvent(announcement('alpha', 1_700_000_000, 'http://honest.example'), sk);
  // Tamper with a JSON copy: nostr-tools caches its verdict on the original object.
  const forgedContent = JSON.parse(JSON.stringify(genuine)) as Event;
  forgedContent.tags = [['d', 'alpha'], ['u', 'http://evil.example']];
  await assert.rejects(client.publish(forgedContent), /invalid/);
  // Same id and content, signature from someone else's key.
  const forgedSig = JSON.parse(JSON.stringify(genuine)) as Event;
  forgedSig.sig = finalizeEvent(announcement('alpha', 1_700_000_000, 'http://x'), generateSecretKey()).sig;
  await assert.rejects(client.publish(forgedSig), /invalid/);
  const found = await query(client, { kinds: [38421] });
  assert.equal(found.length, 0);
  await client.publish(genuine);
  assert.equal((await query(client, { kinds: [38421] })).length, 1);
});

test('an open subscription receives events published after it started', async (t) => {
  const server = await startRelay();
  t.after(() => server.stop());
  const listener = await Relay.connect(server.url);
  const publisher = await Relay.connect(server.url);
  t.after(() => {
    listener.close();
    publisher.close();
  });
  const received: Event[] = [];
  let gotOne!: () => void;
  const arrived = new Promise<void>((r) => (gotOne = r));
  await new Promise<void>((eose) => {
    listener.subscribe([{ kinds: [38421] }], {
      onevent: (e) => {
        received.push(e);
        gotOne();
      },
      oneose: eose,
    });
  });
  assert.equal(received.length, 0);
  const event = finalizeEvent(announcement('live', Math.floor(Date.now() / 1000), 'http://live.example'), generateSecretKey());
  await publisher.publish(event);
  await arrived;
  assert.equal(received[0].id, event.id);
});

test('a relay taken down drops its clients and comes back on the same port with its events', async (t) => {
  const server = await startRelay();
  t.after(() => server.stop());
  const sk = generateSecretKey();
  const event = finalizeEvent(announcement('alpha', 1_700_000_000, 'http://127.0.0.1:9'), sk);
  const client = await Relay.connect(server.url, { enableReconnect: false });
  await client.publish(event);
  const closed = new Promise<void>((r) => (client.onclose = () => r()));
  const { port, url } = server;

  await server.down();
  await closed;
  assert.equal(client.connected, false);
  assert.equal(server.connections(), 0);
  assert.equal(server.isUp(), false);
  await assert.rejects(Relay.connect(url, { enableReconnect: false }));

  await server.up();
  assert.equal(server.port, port);
  const again = await Relay.connect(url);
  t.after(() => again.close());
  const found = await query(again, { kinds: [38421], authors: [getPublicKey(sk)] });
  assert.deepEqual(found.map((e) => e.id), [event.id]);
});

test('the relay answers NIP-11 information over plain HTTP', async (t) => {
  const server = await startRelay();
  t.after(() => server.stop());
  const res = await fetch(server.url.replace('ws://', 'http://'), { headers: { accept: 'application/nostr+json' } });
  assert.equal(res.status, 200);
  const info = (await res.json()) as { supported_nips: number[] };
  assert.ok(info.supported_nips.includes(1));
});
