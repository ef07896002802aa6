// The daemon keeps serving under hostile input: the real daemon on a real relay with one good
// provider, while a burst of signed announcements with junk content and tags arrives, a second
// relay sends forged and malformed events and frames, and a provider answers /v1/info and
// /v1/models with junk (wrong shapes, absurd prices, an endless body, a body that stalls).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { sha256 } from '@noble/hashes/sha2.js';
import { finalizeEvent, getPublicKey, type Event } from 'nostr-tools/pure';
import { WebSocketServer } from 'ws';
import { loadConfig } from '../../daemon/config.ts';
import { callDaemon } from '../../daemon/control/server.ts';
import { startDaemon } from '../../daemon/daemon.ts';
import { startRelay } from '../world/relay.ts';
import { startProvider } from '../world/provider.ts';
import { publishAnnouncement } from '../world/provider/announce.ts';
import { Relay } from 'nostr-tools/relay';

const SEED = 1411;
const nowSec = () => Math.floor(Date.now() / 1000);
const key = (s: string) => sha256(new TextEncoder().encode(s));

/** A port nothing listens on (probes to it are refused at once, never leave the machine). */
async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A provider whose /v1/info and /v1/models answer junk, a different kind on each call. */
async function junkProvider(t: TestContext) {
  let calls = 0;
  const answers: ((res: http.ServerResponse) => void)[] = [
    (res) => res.end('{"data": [{"id": '),
    (res) => res.end(JSON.stringify({ data: 'not a list', mints: 42 })),
    (res) => res.end(JSON.stringify({ data: [{ id: 'm1', sats_pricing: { prompt: 1e300, completion: 'NaN', max_cost: -1 } }, { id: '', sats_pricing: null }, 7, null] })),
    (res) => {
      // endless body: the size limit ends it
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    },
    (res) => res.write('{"data": ['), // stalls: the probe timeout ends it
    (res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100000' });
      res.end('{"data": []}'); // shorter than it says
    },
  ];
  const server = http.createServer((req, res) => {
    if (!res.headersSent && calls % answers.length !== 5) res.writeHead(200, { 'content-type': 'application/json' });
    answers[calls++ % answers.length](res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls: () => calls };
}

/** A relay that answers every subscription with junk frames and forged events, then EOSE. */
async function hostileRelay(t: TestContext, frames: () => string[]) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  let sent = 0;
  wss.on('connection', (ws) => {
    ws.on('message', (data) => {
      let msg: unknown;
      try {
        msg = JSON.parse(String(data));
      } catch {
        return;
      }
      if (!Array.isArray(msg) || msg[0] !== 'REQ') return;
      const subId = String(msg[1]);
      const backfill = msg.slice(2).some((f) => typeof f === 'object' && f !== null && 'until' in f);
      if (!backfill) for (const f of frames()) { ws.send(f.replaceAll('$SUB', subId)); sent++; }
      ws.send(JSON.stringify(['EOSE', subId]));
    });
  });
  t.after(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, sent: () => sent };
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the daemon keeps answering /healthz and keeps its good provider through hostile Nostr events and a provider answering junk', { timeout: 120_000 }, async (t) => {
  // nostr-tools would print a stack trace per junk frame on stderr, the daemon's JSON log.
  const warned: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void warned.push(String(args[0]));
  t.after(() => void (console.warn = warn));
  const relay = await startRelay();
  t.after(() => relay.stop());
  const dead = await closedPort();
  const good = await startProvider({ name: 'good', relays: [relay.url], mints: ['http://mint.test'], models: [{ id: 'm1', promptSatsPerToken: 0.00001, completionSatsPerToken: 0.00003 }] });
  t.after(() => good.stop());
  const junk = await junkProvider(t);

  // A burst of signed announcements: junk content and tags, URLs that are refused or dead.
  const urlish = fc.oneof(fc.constantFrom(`http://127.0.0.1:${dead}`, `http://127.0.0.1:${dead}/x/`, 'ftp://x', 'a b', '', 'zzzzzzzzzzzzzzzz.onion', 'javascript:alert(1)'), fc.string({ maxLength: 8 }).map((s) => `http://[${s}`));
  const tag = fc.oneof(fc.tuple(fc.constant('u'), urlish), fc.tuple(fc.constantFrom('d', 'mint', 'version'), fc.string({ maxLength: 300 })), fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }));
  const burst = fc.sample(
    fc.record({ k: fc.nat({ max: 40 }), tags: fc.array(tag, { maxLength: 30 }), content: fc.oneof(fc.string({ maxLength: 200 }), fc.jsonValue().map((v) => JSON.stringify(v))), age: fc.nat({ max: 3600 }) }),
    { seed: SEED, numRuns: 120 },
  ).map((e) => finalizeEvent({ kind: 38421, created_at: nowSec() - e.age, tags: e.tags.map((x) => [...x].map(String)), content: e.content }, key(`burst ${e.k}`)));

  // The junk provider announces itself properly; the hostile relay tries to take over the good one's address.
  const junkKey = key('junk provider');
  const forged = (ev: Event): Event => ({ ...ev, sig: ev.sig.replace(/^./, (c) => (c === '0' ? '1' : '0')) });
  const impostor = finalizeEvent({ kind: 38421, created_at: nowSec() + 60, tags: [['d', good.providerId], ['u', junk.url]], content: '{"name":"good"}' }, junkKey);
  const hostile = await hostileRelay(t, () => [
    'not json',
    '["EVENT"]',
    '["EVENT", "$SUB", null]',
    '["EVENT", "$SUB", {"kind": 38421}]',
    JSON.stringify(['EVENT', '$SUB', { ...impostor, pubkey: getPublicKey(key('someone')) }]),
    JSON.stringify(['EVENT', '$SUB', forged(finalizeEvent({ kind: 38421, created_at: nowSec(), tags: [['d', 'x'], ['u', junk.url]], content: '' }, junkKey))]),
    JSON.stringify(['EVENT', '$SUB', { id: 'f'.repeat(64), pubkey: good.pubkey, created_at: nowSec() + 30, kind: 38421, tags: [['d', good.providerId], ['u', junk.url]], content: '', sig: '0'.repeat(128) }]),
    JSON.stringify(['EVENT', '$SUB', finalizeEvent({ kind: 38421, created_at: nowSec(), tags: [['d', 'big'], ['u', `http://127.0.0.1:${dead}`]], content: 'x'.repeat(512 * 1024) }, key('big'))]),
    ...burst.slice(0, 40).map((e) => JSON.stringify(['EVENT', '$SUB', forged(e)])),
    '["NOTICE", "' + 'n'.repeat(10_000) + '"]',
    '["CLOSED", "other", "x"]',
  ]);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-serving-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'satroute.json'), JSON.stringify({ probe: { timeoutMs: 1500, concurrency: 8, refreshIntervalMs: 600_000 } }));
  const daemon = await startDaemon(loadConfig({ SATROUTE_DATA_DIR: dir, SATROUTE_RELAYS: `${relay.url},${hostile.url}`, SATROUTE_LISTEN: '127.0.0.1:0', SATROUTE_MINTS: '' }));
  t.after(() => daemon.stop());
  const healthz = async () => {
    const res = await fetch(`http://${daemon.info.listen}/healthz`);
    return res.status === 200 && ((await res.json()) as { ok?: boolean }).ok === true;
  };
  const goodListed = () => daemon.market.providers().some((p) => p.url === good.url && p.status === 'reachable' && p.models >= 1);

  await waitFor('the good provider to be listed', goodListed);
  assert.ok(await healthz());

  // The burst, and the junk provider's own (genuine) announcement, while the daemon runs.
  const publishing = (async () => {
    const conn = await Relay.connect(relay.url);
    await Promise.all(burst.map((ev) => conn.publish(ev).catch(() => undefined))); // the relay may refuse some: fine
    conn.close();
    await publishAnnouncement({ kind: 38421, created_at: nowSec(), tags: [['d', 'junk'], ['u', junk.url]], content: '{"name":"junk"}' }, junkKey, [relay.url]);
  })();
  const during: boolean[] = [];
  let stopPolling = false;
  const polling = (async () => {
    while (!stopPolling) {
      during.push(await healthz());
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await publishing;
  // Probe the junk provider until it has served every kind of junk (a failing provider is otherwise retried after 15 s, 30 s, ...).
  const junkId = `${getPublicKey(junkKey)}:junk`;
  await waitFor('the junk provider to be known', () => daemon.market.provider(junkId) !== undefined);
  // Bounded: a probe that stopped calling (the daemon stopping after a timeout) must not spin forever.
  for (let probes = 0; junk.calls() < 8; probes++) {
    assert.ok(probes < 40, `the junk provider was called ${junk.calls()} times in ${probes} probes`);
    await daemon.market.probe(junkId);
  }
  stopPolling = true;
  await polling;
  assert.ok(during.length >= 3 && during.every(Boolean), `/healthz answered all along (${during.length} checks)`);

  // Still serving, still listing the good provider under its own URL; nothing forged got in.
  assert.ok(await healthz());
  assert.ok(goodListed(), 'the good provider is still listed and reachable');
  const views = daemon.market.providers();
  const goodView = views.find((p) => p.url === good.url)!;
  assert.deepEqual(goodView.urls, [good.url], 'the forged takeover of its address did not change its URL');
  assert.ok(views.every((p) => p.status !== 'reachable' || p.url === good.url), 'no junk provider counts as reachable');
  assert.ok(hostile.sent() > 0);
  const rejected = daemon.market.rejectedEvents();
  assert.ok((rejected.bad_signature ?? 0) > 0 && (rejected.malformed ?? 0) > 0, JSON.stringify(rejected));
  assert.deepEqual(warned.filter((w) => w.includes('[nostr]')), [], 'junk frames leave no stack traces on stderr');
  const status = await callDaemon<{ providers: number }>(dir, 'daemon.status');
  assert.ok(status.providers >= 2, 'the control socket answers too');
});
