import { test } from 'node:test';
import assert from 'node:assert/strict';
import { finalizeEvent, generateSecretKey } from 'nostr-tools/pure';
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay';
import { WebSocket } from 'ws';
import { RelayPool } from '../../protocol/relays.ts';
import { startRelay } from '../world/relay.ts';
import { publishAnnouncement } from '../world/provider/announce.ts';

useWebSocketImplementation(WebSocket);

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const note = (text: string) => ({ kind: 38421, created_at: Math.floor(Date.now() / 1000), tags: [['d', text], ['u', `https://${text}.example`]], content: '' });

test('a relay that dies and comes back is resubscribed, and new events flow again', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const ids: string[] = [];
  let eoses = 0;
  const pool = new RelayPool({
    urls: [relay.url],
    filters: [{ kinds: [38421] }],
    onEvent: (ev) => ids.push((ev as { id: string }).id),
    onEose: () => eoses++,
    backoffMs: [20, 40, 80],
    random: () => 0.5,
  });
  t.after(() => pool.stop());
  pool.start();
  await waitFor('first EOSE', () => eoses === 1);
  const first = await publishAnnouncement(note('one'), generateSecretKey(), [relay.url]);
  await waitFor('live event', () => ids.includes(first.event.id));

  await relay.down();
  await waitFor('the pool to notice', () => pool.statuses()[0].state !== 'open');
  // while down, reconnect attempts fail and back off without giving up
  await waitFor('a few failed attempts', () => pool.statuses()[0].attempts >= 3);
  assert.equal(pool.statuses()[0].state === 'waiting' || pool.statuses()[0].state === 'connecting', true);
  await relay.up();
  await waitFor('resubscribed', () => eoses === 2);
  assert.equal(pool.statuses()[0].state, 'open');
  assert.equal(pool.statuses()[0].attempts, 0);
  const second = await publishAnnouncement(note('two'), generateSecretKey(), [relay.url]);
  await waitFor('event after reconnect', () => ids.includes(second.event.id));
});

test('reconnect delays follow the table, capped at its last entry, with jitter', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  await relay.down();
  const waits: number[] = [];
  let now = 1_000_000;
  const pool = new RelayPool({
    urls: [relay.url],
    filters: [{ kinds: [38421] }],
    onEvent: () => {},
    backoffMs: [10, 20, 30],
    random: () => 1, // the top of the +/-25% jitter band
    clock: () => now,
  });
  t.after(() => pool.stop());
  pool.start();
  let last = -1;
  await waitFor('five attempts', () => {
    const s = pool.statuses()[0];
    if (s.state === 'waiting' && s.attempts !== last && s.retryAt !== undefined) {
      last = s.attempts;
      waits.push(s.retryAt - now);
    }
    return waits.length >= 5;
  });
  assert.deepEqual(waits, [13, 25, 38, 38, 38]);
});

test('a relay URL where nothing listens keeps being retried while the others serve', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  let eoses = 0;
  const pool = new RelayPool({ urls: [relay.url, 'ws://127.0.0.1:1'], filters: [{ kinds: [38421] }], onEvent: () => {}, onEose: () => eoses++, backoffMs: [10] });
  t.after(() => pool.stop());
  pool.start();
  await waitFor('EOSE from the good relay', () => eoses >= 1);
  const bad = pool.statuses().find((s) => s.url.includes(':1'));
  assert.ok(bad && bad.state !== 'open');
  await waitFor('retries', () => (pool.statuses().find((s) => s.url.includes(':1'))?.attempts ?? 0) >= 2);
});

test('a relay that returns stored events in capped batches is read page by page to the end', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const client = await Relay.connect(relay.url);
  const now = Math.floor(Date.now() / 1000);
  // 230 events, two of them in the same second at a page boundary
  const events = Array.from({ length: 230 }, (_, i) =>
    finalizeEvent({ kind: 38421, created_at: now - 1000 + Math.min(i, 228), tags: [['d', `n${i}`], ['u', `https://n${i}.example`]], content: '' }, generateSecretKey()),
  );
  await Promise.all(events.map((e) => client.publish(e)));
  client.close();
  const ids = new Set<string>();
  let eose = false;
  const pool = new RelayPool({ urls: [relay.url], filters: [{ kinds: [38421] }], onEvent: (e) => ids.add((e as { id: string }).id), onEose: () => (eose = true), pageLimit: 50 });
  t.after(() => pool.stop());
  pool.start();
  await waitFor('EOSE after all pages', () => eose);
  assert.equal(ids.size, 230);
});

test('stopping while a relay connection is still being set up does not crash the daemon', async () => {
  // A TCP server that accepts and never answers the WebSocket handshake.
  const net = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  const port = (silent.address() as import('node:net').AddressInfo).port;
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);
  process.on('uncaughtException', onCrash);
  try {
    const pool = new RelayPool({ urls: [`ws://127.0.0.1:${port}`], filters: [{ kinds: [38421] }], onEvent: () => {}, backoffMs: [20], random: () => 0.5 });
    pool.start();
    await waitFor('the handshake to be under way', () => sockets.length === 1);
    pool.stop();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(crashes, []);
  } finally {
    process.off('uncaughtException', onCrash);
    for (const s of sockets) s.destroy();
    silent.close();
  }
});
