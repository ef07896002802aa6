import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { finalizeEvent, generateSecretKey, getEventHash, getPublicKey } from 'nostr-tools/pure';
import { npubEncode } from 'nostr-tools/nip19';
import { Market, PROBE_BACKOFF_MS, type MarketChange, type MarketOptions } from '../../daemon/market.ts';
import { MARKET_MIGRATIONS, MarketStore } from '../../daemon/market-store.ts';
import { normalizePrice, reservationMsat, satsPerTokenToNmsat } from '../../protocol/pricing.ts';
import { migrate, openDatabase, type DB } from '../../db/sqlite.ts';
import { startRelay, type TestRelay } from '../world/relay.ts';
import { startProvider, type ModelSpec, type ProviderOptions, type TestProvider } from '../world/provider.ts';
import { publishAnnouncement } from '../world/provider/announce.ts';
import { startSocksProxy } from '../protocol/socks-server.ts';

const MINT = 'http://127.0.0.1:3338';
const ROGUE_MINT = 'http://127.0.0.1:3339';
const GPT: ModelSpec = { id: 'gpt-x', aliasIds: ['openai/gpt-x'], promptSatsPerToken: 0.00002, completionSatsPerToken: 0.00006, maxCostSats: 40 };
const LLAMA: ModelSpec = { id: 'llama-3', promptSatsPerToken: 0.000004, completionSatsPerToken: 0.000008, maxCostSats: 10 };

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

class FakeClock {
  constructor(public ms = Date.now()) {}
  now = () => this.ms;
  advance(ms: number) {
    this.ms += ms;
  }
}

interface World {
  relay: TestRelay;
  clock: FakeClock;
  db: DB;
  market: Market;
  provider(o: Partial<ProviderOptions> & { name: string }): Promise<TestProvider>;
}

async function world(t: TestContext, config: Partial<MarketOptions['config']> = {}, dbFile = ':memory:'): Promise<World> {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const clock = new FakeClock();
  const db = openDatabase(dbFile);
  const market = new Market({
    db,
    config: { relays: [relay.url], providers: [], ...config },
    clock: clock.now,
    random: () => 0.5, // jitter at the middle of its band: delays are exactly the table's
    autoSchedule: false,
    relayOptions: { backoffMs: [20, 40] },
  });
  t.after(async () => {
    await market.stop();
    db.close();
  });
  await market.start();
  return {
    relay,
    clock,
    db,
    market,
    async provider(o) {
      const p = await startProvider({ relays: [relay.url], mints: [MINT], models: [GPT, LLAMA], clock: clock.now, ...o });
      t.after(() => p.stop());
      return p;
    },
  };
}

const idOf = (p: TestProvider) => `${p.pubkey}:${p.providerId}`;

async function discovered(w: World, p: TestProvider): Promise<void> {
  await waitFor(`${p.name} to be discovered`, () => w.market.provider(idOf(p)) !== undefined);
}

test('an announced provider is probed: its models, prices and mints appear, found by id and alias', async (t) => {
  const w = await world(t);
  const p = await w.provider({ name: 'Alpha' });
  await discovered(w, p);
  assert.equal(w.market.provider(idOf(p))?.status, 'announced');
  assert.deepEqual(w.market.providersFor('gpt-x'), []);
  await w.market.tick();
  const [offer] = w.market.providersFor('gpt-x');
  assert.equal(offer.provider.url, p.url);
  assert.equal(offer.price.promptNmsat, satsPerTokenToNmsat(0.00002));
  assert.equal(offer.price.completionNmsat, satsPerTokenToNmsat(0.00006));
  assert.equal(offer.price.maxCostMsat, 40_000);
  assert.deepEqual(offer.mints, [MINT]);
  assert.equal(w.market.providersFor('openai/gpt-x')[0], offer);
  assert.deepEqual(w.market.providersFor('no-such-model'), []);
  const [view] = w.market.providers();
  assert.equal(view.name, 'Alpha');
  assert.equal(view.status, 'reachable');
  assert.equal(view.models, 2);
  assert.equal(view.cheapest?.model, 'llama-3');
  assert.deepEqual(
    w.market.models().map((m) => [m.id, m.providers, m.cheapest?.provider_name]),
    [
      ['gpt-x', 1, 'Alpha'],
      ['llama-3', 1, 'Alpha'],
    ],
  );
  assert.deepEqual(w.market.models()[0].aliases, ['openai/gpt-x']);
});

test('offers are listed cheapest first across providers', async (t) => {
  const w = await world(t);
  const dear = await w.provider({ name: 'Dear', models: [{ ...GPT, promptSatsPerToken: 0.0001 }] });
  const cheap = await w.provider({ name: 'Cheap', models: [{ ...GPT, promptSatsPerToken: 0.00001 }] });
  await discovered(w, dear);
  await discovered(w, cheap);
  await w.market.tick();
  assert.deepEqual(
    w.market.providersFor('openai/gpt-x').map((o) => o.provider.name),
    ['Cheap', 'Dear'],
  );
  assert.equal(w.market.models()[0].cheapest?.provider_name, 'Cheap');
  assert.equal(w.market.models()[0].providers, 2);
});

test('a forged announcement cannot move a known provider to another URL', async (t) => {
  const w = await world(t);
  const p = await w.provider({ name: 'Alpha' });
  await discovered(w, p);
  const genuine = (await p.publish({ createdAtSec: Math.floor(w.clock.ms / 1000) + 1 })).event;
  await waitFor('the republished event', () => w.market.provider(idOf(p))?.eventId === genuine.id);
  // newer, another URL, a correct id for the new content, but the old signature
  const forged = { ...(JSON.parse(JSON.stringify(genuine)) as typeof genuine), created_at: genuine.created_at + 5, tags: [['d', p.providerId], ['u', 'https://attacker.example']] };
  forged.id = getEventHash(forged);
  w.market.ingestEvent(forged);
  assert.deepEqual(w.market.provider(idOf(p))?.urls, [p.url]);
  assert.equal(w.market.rejectedEvents().bad_signature, 1);
});

test('a newer announcement replaces the older one: the provider is probed at its new address', async (t) => {
  const w = await world(t);
  // The same node on a new host: same key, so its /v1/info there names it (daemon/market-claims.ts).
  const secretKey = generateSecretKey();
  const p = await w.provider({ name: 'Mover', secretKey });
  const newHome = await w.provider({ name: 'Mover (new host)', noAnnounce: true, secretKey });
  await discovered(w, p);
  await w.market.tick();
  assert.equal(w.market.provider(idOf(p))?.url, p.url);
  await p.publish({ urls: [newHome.url], createdAtSec: Math.floor(w.clock.ms / 1000) + 10 });
  await waitFor('the new URL', () => w.market.provider(idOf(p))?.urls[0] === newHome.url);
  assert.ok((w.market.provider(idOf(p))?.nextProbeAt ?? Infinity) <= w.clock.ms, 'a moved provider is due for a probe at once');
  await w.market.tick();
  assert.equal(w.market.provider(idOf(p))?.url, newHome.url);
  assert.equal(w.market.providers().length, 1);
});

test("an impostor announcing another provider's URL gets none of its offers; the owner its /v1/info names keeps them", async (t) => {
  const w = await world(t);
  const owner = await w.provider({ name: 'Owner' });
  // Cheaper on paper, its own mint: what routing would pick if the URL were credited to it.
  const impostor = await w.provider({ name: 'Mallory', mints: [ROGUE_MINT], models: [{ ...GPT, promptSatsPerToken: 0.000001 }], noAnnounce: true, knobs: { impersonate: owner.url } });
  await impostor.publish();
  await discovered(w, owner);
  await discovered(w, impostor);
  assert.deepEqual(w.market.provider(idOf(impostor))?.urls, [owner.url]);
  await w.market.tick();
  assert.deepEqual(w.market.providersFor('gpt-x').map((o) => [o.provider.id, o.mints]), [[idOf(owner), [MINT]]]);
  const fake = w.market.provider(idOf(impostor))!;
  assert.equal(fake.status, 'unreachable');
  assert.match(fake.lastError ?? '', /belongs to another provider/);
  assert.ok(fake.nextProbeAt - w.clock.ms >= 60 * 60_000, 'not re-probed for an hour');
  assert.equal(w.market.providers().find((v) => v.id === idOf(owner))?.status, 'reachable');
});

test('future-dated and url-less announcements are dropped; invalid content is tolerated', async (t) => {
  const w = await world(t);
  const future = await w.provider({ name: 'Future', noAnnounce: true });
  await future.publish({ createdAtSec: Math.floor(w.clock.ms / 1000) + 16 * 60 });
  const noUrl = await w.provider({ name: 'NoUrl', noAnnounce: true });
  await noUrl.publish({ tags: [['d', noUrl.providerId], ['mint', MINT]] });
  const garbled = await w.provider({ name: 'Garbled', noAnnounce: true });
  await garbled.publish({ content: '{not json' });
  await discovered(w, garbled);
  await waitFor('both drops', () => w.market.rejectedEvents().future === 1 && w.market.rejectedEvents().no_url === 1);
  assert.deepEqual(
    w.market.providers().map((v) => v.id),
    [idOf(garbled)],
  );
  await w.market.tick();
  // with no name in the content, the name comes from /v1/info
  assert.equal(w.market.providers()[0].name, 'Garbled');
  assert.equal(w.market.providers()[0].status, 'reachable');
});

test('a provider that announces but does not answer is marked unreachable and retried with growing backoff', async (t) => {
  const w = await world(t);
  const p = await w.provider({ name: 'Ghost', knobs: { dead: true } });
  await discovered(w, p);
  const id = idOf(p);
  const t0 = w.clock.ms;
  await w.market.tick();
  let v = w.market.provider(id)!;
  assert.equal(v.status, 'unreachable');
  assert.equal(v.statusSince, t0);
  assert.equal(v.failures, 1);
  assert.equal(v.nextProbeAt, t0 + PROBE_BACKOFF_MS[0]);
  assert.ok(v.lastError);

  const probes = w.market.probes;
  w.clock.advance(PROBE_BACKOFF_MS[0] - 1);
  await w.market.tick();
  assert.equal(w.market.probes, probes, 'not retried before its backoff is over');
  w.clock.advance(1);
  await w.market.tick();
  v = w.market.provider(id)!;
  assert.equal(w.market.probes, probes + 1);
  assert.equal(v.failures, 2);
  assert.equal(v.nextProbeAt, w.clock.ms + PROBE_BACKOFF_MS[1]);
  assert.equal(v.statusSince, t0, 'unreachable since the first failure');

  await p.setDead(false);
  w.clock.advance(PROBE_BACKOFF_MS[1]);
  await w.market.tick();
  v = w.market.provider(id)!;
  assert.equal(v.status, 'reachable');
  assert.equal(v.failures, 0);
  assert.equal(w.market.providersFor('gpt-x').length, 1);
});

test('a price change is picked up on refresh and recorded, so the old price is still known for its time', async (t) => {
  const w = await world(t, { probe: { refreshIntervalMs: 120_000 } });
  const p = await w.provider({ name: 'Drifter' });
  await discovered(w, p);
  await w.market.tick();
  const before = w.clock.ms;
  const changes: MarketChange[] = [];
  w.market.on('change', (c) => changes.push(c));

  p.setPrice('gpt-x', { promptSatsPerToken: 0.00003 });
  w.clock.advance(60_000);
  await w.market.tick();
  assert.equal(w.market.providersFor('gpt-x')[0].price.promptNmsat, satsPerTokenToNmsat(0.00002), 'not refreshed before its interval');

  w.clock.advance(60_000);
  await w.market.tick();
  const after = w.clock.ms;
  assert.equal(w.market.providersFor('gpt-x')[0].price.promptNmsat, satsPerTokenToNmsat(0.00003));
  const id = idOf(p);
  assert.equal(w.market.priceAt(id, 'gpt-x', before)?.promptNmsat, satsPerTokenToNmsat(0.00002));
  assert.equal(w.market.priceAt(id, 'gpt-x', after - 1)?.promptNmsat, satsPerTokenToNmsat(0.00002));
  assert.equal(w.market.priceAt(id, 'gpt-x', after)?.promptNmsat, satsPerTokenToNmsat(0.00003));
  assert.equal(w.market.priceAt(id, 'gpt-x', before - 1), undefined);
  assert.deepEqual(
    w.market.priceHistory(id, 'gpt-x').map((h) => h.validFrom),
    [before, after],
  );
  assert.equal(w.market.priceHistory(id, 'llama-3').length, 1, 'unchanged prices add no history');
  const priceEvents = changes.filter((c) => c.type === 'prices');
  assert.equal(priceEvents.length, 1);
  assert.deepEqual(
    priceEvents[0].type === 'prices' && priceEvents[0].changes.map((c) => [c.modelId, c.before?.promptNmsat, c.price?.promptNmsat]),
    [['gpt-x', satsPerTokenToNmsat(0.00002), satsPerTokenToNmsat(0.00003)]],
  );
});

async function publishReview(relay: TestRelay, curator: Uint8Array, node: string, label: string, createdAt: number) {
  const ev = finalizeEvent({ kind: 38425, created_at: createdAt, tags: [['d', node.slice(0, 12)], ['node', node], ['t', label]], content: '' }, curator);
  await publishAnnouncement(ev, curator, [relay.url]);
}

test("a curator's bad review excludes a provider; a good one is kept as a hint", async (t) => {
  const curator = generateSecretKey();
  const w = await world(t, { curator: getPublicKey(curator) });
  const bad = await w.provider({ name: 'Shady' });
  const good = await w.provider({ name: 'Trusted' });
  await discovered(w, bad);
  await discovered(w, good);
  await w.market.tick();
  assert.equal(w.market.providersFor('gpt-x').length, 2);
  const sec = Math.floor(w.clock.ms / 1000);
  await publishReview(w.relay, curator, bad.pubkey, 'avoid', sec);
  await publishReview(w.relay, curator, good.pubkey, 'lgtm', sec);
  // a stranger's review means nothing
  await publishReview(w.relay, generateSecretKey(), good.pubkey, 'blacklisted', sec + 1);
  await waitFor('the reviews', () => w.market.provider(idOf(bad))?.review === 'bad' && w.market.provider(idOf(good))?.review === 'good');
  assert.deepEqual(
    w.market.providersFor('gpt-x').map((o) => [o.provider.name, o.provider.review]),
    [['Trusted', 'good']],
  );
  const shady = w.market.providers().find((v) => v.name === 'Shady');
  assert.equal(shady?.excluded, true);
  assert.equal(shady?.review_label, 'avoid');
  // excluded providers are not probed
  w.clock.advance(3_600_000);
  const probes = w.market.probes;
  await w.market.tick();
  assert.equal(w.market.probes, probes + 1);
});

test('with excludeBadReviews off, a badly reviewed provider stays offered but labelled (curator given as npub)', async (t) => {
  const curator = generateSecretKey();
  const w = await world(t, { curator: npubEncode(getPublicKey(curator)), excludeBadReviews: false });
  const p = await w.provider({ name: 'Shady' });
  await discovered(w, p);
  await w.market.tick();
  await publishReview(w.relay, curator, p.pubkey, 'suspicious', Math.floor(w.clock.ms / 1000));
  await waitFor('the review', () => w.market.provider(idOf(p))?.review === 'bad');
  assert.equal(w.market.providersFor('gpt-x')[0]?.provider.reviewLabel, 'suspicious');
  assert.equal(w.market.providers()[0].excluded, false);
});

test('a relay that dies and comes back is resubscribed and new providers are found', async (t) => {
  const w = await world(t);
  const first = await w.provider({ name: 'First' });
  await discovered(w, first);
  await w.relay.down();
  await waitFor('the relay to be seen down', () => w.market.relays()[0].state !== 'open');
  await w.relay.up();
  await waitFor('reconnect', () => w.market.relays()[0].state === 'open' && w.market.relays()[0].eose);
  const second = await w.provider({ name: 'Second' });
  await discovered(w, second);
  assert.equal(w.market.providers().length, 2);
});

test('after a restart the stored market is served before any relay answers, then refreshed', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-market-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'satroute.sqlite');
  const relay = await startRelay();
  t.after(() => relay.stop());
  const clock = new FakeClock();
  const p = await startProvider({ name: 'Persisted', relays: [relay.url], mints: [MINT], models: [GPT, LLAMA] });
  t.after(() => p.stop());

  const db1 = openDatabase(file);
  const m1 = new Market({ db: db1, config: { relays: [relay.url], providers: [] }, clock: clock.now, autoSchedule: false, random: () => 0.5 });
  await m1.start();
  await waitFor('discovery', () => m1.providers().length === 1);
  await m1.tick();
  assert.equal(m1.providersFor('openai/gpt-x').length, 1);
  await m1.stop();
  db1.close();

  await relay.down(); // no relay answers after the restart
  clock.advance(30_000);
  const db2 = openDatabase(file);
  t.after(() => db2.close());
  const m2 = new Market({ db: db2, config: { relays: [relay.url], providers: [] }, clock: clock.now, autoSchedule: false, random: () => 0.5, relayOptions: { backoffMs: [60_000] } });
  t.after(() => m2.stop());
  // served at once, before start()
  const [offer] = m2.providersFor('openai/gpt-x');
  assert.equal(offer.provider.url, p.url);
  assert.equal(offer.price.promptNmsat, satsPerTokenToNmsat(0.00002));
  assert.equal(m2.providers()[0].status, 'reachable');
  assert.equal(m2.models().length, 2);
  await m2.start();
  assert.equal(m2.relays()[0].state === 'open', false);
  // and refreshed over HTTP right away, relay or not
  p.setPrice('gpt-x', { promptSatsPerToken: 0.00001 });
  await m2.tick();
  assert.equal(m2.providersFor('gpt-x')[0].price.promptNmsat, satsPerTokenToNmsat(0.00001));
  assert.equal(m2.priceHistory(offer.provider.id, 'gpt-x').length, 2);
});

test('static providers from the config are probed alongside Nostr ones; a static .onion needs a proxy', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const p = await startProvider({ name: 'Static', relays: [], mints: [MINT], models: [LLAMA], noAnnounce: true });
  t.after(() => p.stop());
  const db = openDatabase(':memory:');
  t.after(() => db.close());
  const onion = 'http://staticabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqr.onion';
  const market = new Market({ db, config: { relays: [relay.url], providers: [p.url + '/', onion] }, autoSchedule: false, random: () => 0.5 });
  t.after(() => market.stop());
  await market.start();
  await market.tick();
  const views = market.providers();
  assert.deepEqual(
    views.map((v) => [v.source, v.name, v.status]),
    [
      ['static', 'Static', 'reachable'],
      ['static', new URL(onion).host, 'unreachable'],
    ],
  );
  assert.match(views[1].last_error ?? '', /SOCKS/);
  assert.equal(market.providersFor('llama-3')[0].provider.url, p.url);
});

test('stopping the market cancels probes in flight instead of waiting for them', { timeout: 10_000 }, async (t) => {
  const w = await world(t, { probe: { timeoutMs: 60_000 } });
  const p = await w.provider({ name: 'Slow', knobs: { latencyMs: 30_000 } });
  await discovered(w, p);
  const ticking = w.market.tick();
  await waitFor('the probe to start', () => w.market.probes === 1);
  await w.market.stop();
  await ticking;
  assert.equal(w.market.provider(idOf(p))?.status, 'announced', 'a canceled probe says nothing about the provider');
});

test('drifting prices of models nobody asks for do not fill the history; asked-for models are recorded exactly', async (t) => {
  const w = await world(t, { probe: { refreshIntervalMs: 60_000 } });
  const p = await w.provider({ name: 'Drifter' });
  await discovered(w, p);
  await w.market.tick();
  const id = idOf(p);
  const t0 = w.clock.ms;
  const nm = satsPerTokenToNmsat;
  w.market.providersFor('openai/gpt-x'); // gpt-x is routed (by its alias); llama-3 is not

  p.setPrice('gpt-x', { promptSatsPerToken: 0.00003 });
  p.setPrice('llama-3', { promptSatsPerToken: 0.000005 });
  w.clock.advance(60_000);
  await w.market.tick();
  const t1 = w.clock.ms;
  assert.equal(w.market.priceHistory(id, 'gpt-x').length, 2);
  assert.equal(w.market.priceHistory(id, 'llama-3').length, 1, 'only the first-seen row');
  assert.equal(w.market.priceAt(id, 'llama-3', t1)?.promptNmsat, nm(0.000005), 'the current price is known from when it took effect');

  // llama-3 starts being routed; its next change records the price it replaces, then the new one
  w.clock.advance(10_000);
  w.market.providersFor('llama-3');
  const routedAt = w.clock.ms;
  p.setPrice('llama-3', { promptSatsPerToken: 0.000006 });
  w.clock.advance(50_000);
  await w.market.tick();
  const t2 = w.clock.ms;
  assert.deepEqual(
    w.market.priceHistory(id, 'llama-3').map((h) => [h.validFrom, h.price?.promptNmsat]),
    [
      [t0, nm(0.000004)],
      [t1, nm(0.000005)],
      [t2, nm(0.000006)],
    ],
  );
  assert.equal(w.market.priceAt(id, 'llama-3', routedAt)?.promptNmsat, nm(0.000005), 'the price a request was routed at');
});

test('superseded price history older than the retention is pruned, the current row is kept', (t) => {
  const db = openDatabase(':memory:');
  t.after(() => db.close());
  const store = new MarketStore(db);
  const prov = { id: 'p', source: 'static' as const, urls: ['https://p.example'], announcedMints: [], infoMints: [], status: 'reachable' as const, statusSince: 0, firstSeenAt: 0, nextProbeAt: 0, failures: 0 };
  const price = (n: number) => ({ promptNmsat: n, completionNmsat: n, cacheReadNmsat: 0, cacheWriteNmsat: 0, requestMsat: 0, maxCostMsat: 0, maxPromptCostMsat: 0, maxCompletionCostMsat: 0, source: 'sats_pricing' as const });
  store.saveProbe(prov, [], [], [
    { providerId: 'p', modelId: 'm', validFrom: 1000, price: price(1) },
    { providerId: 'p', modelId: 'm', validFrom: 2000, price: price(2) },
    { providerId: 'p', modelId: 'm', validFrom: 3000, price: price(3) },
    { providerId: 'p', modelId: 'n', validFrom: 1000, price: price(9) },
  ]);
  assert.equal(store.pruneHistory(2500), 1);
  assert.deepEqual(store.priceHistory('p', 'm').map((h) => h.validFrom), [2000, 3000]);
  assert.equal(store.priceAt('p', 'm', 2400)?.promptNmsat, 2, 'a price still valid at the cutoff survives');
  assert.equal(store.priceHistory('p', 'n').length, 1);
});

test('a provider announced only at a .onion address is probed through the configured SOCKS proxy', async (t) => {
  const sk = generateSecretKey();
  const hidden = await startProvider({ name: 'Hidden', relays: [], mints: [MINT], models: [LLAMA], noAnnounce: true, secretKey: sk });
  t.after(() => hidden.stop());
  const target = new URL(hidden.url);
  const proxy = await startSocksProxy({ host: target.hostname, port: Number(target.port) });
  t.after(() => proxy.stop());
  const w = await world(t, { socksProxy: proxy.url });
  const onion = 'http://hiddenabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqr.onion';
  await publishAnnouncement({ kind: 38421, created_at: Math.floor(w.clock.ms / 1000), tags: [['d', 'hidden'], ['u', onion], ['mint', MINT]], content: '{"name":"Hidden"}' }, sk, [w.relay.url]);
  await waitFor('the onion provider', () => w.market.providers().length === 1);
  await w.market.tick();
  const [view] = w.market.providers();
  assert.equal(view.status, 'reachable');
  assert.equal(view.url, onion);
  assert.deepEqual(proxy.asked.sort(), [new URL(onion).hostname, new URL(onion).hostname]);
  assert.equal(w.market.providersFor('llama-3')[0].provider.url, onion);
});

test("each offer keeps the provider's exact mint spelling and the model's top_provider limits, across a restart", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-market-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'satroute.sqlite');
  const relay = await startRelay();
  t.after(() => relay.stop());
  const spelled = 'HTTP://127.0.0.1:3338/'; // the node lists it like this, and compares tokens' mints to it byte for byte
  const p = await startProvider({ name: 'Spelled', relays: [relay.url], mints: [spelled], models: [{ ...GPT, contextLength: 16_000, maxCompletionTokens: 2048 }] });
  t.after(() => p.stop());
  const open = () => {
    const db = openDatabase(file);
    return { db, market: new Market({ db, config: { relays: [relay.url], providers: [] }, autoSchedule: false, random: () => 0.5 }) };
  };
  const first = open();
  await first.market.start();
  await waitFor('discovery', () => first.market.providers().length === 1);
  assert.deepEqual(first.market.provider(idOf(p))?.announcedMints, [spelled]);
  await first.market.tick();
  const check = (m: Market) => {
    const [offer] = m.providersFor('gpt-x');
    assert.deepEqual(offer.mints, [spelled]);
    assert.equal(offer.model.reserve?.topContextLength, 16_000);
    assert.equal(offer.model.reserve?.topMaxCompletionTokens, 2048);
    assert.equal(offer.model.reserve?.promptSats, GPT.promptSatsPerToken);
    assert.equal(offer.model.reserve?.maxCostSats, GPT.maxCostSats);
    assert.deepEqual(m.providers()[0].mints, [spelled]);
  };
  check(first.market);
  await first.market.stop();
  first.db.close();
  const second = open();
  t.after(() => second.db.close());
  check(second.market);
});

test('a data directory from before the reservation terms keeps working: its models reserve the listed max_cost until re-probed', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'satroute-market-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'satroute.sqlite');
  const old = openDatabase(file);
  migrate(old, 'market', MARKET_MIGRATIONS.slice(0, 1));
  old.prepare(`INSERT INTO market_providers (id, source, urls, announced_mints, info_mints, status, status_since, first_seen_at, next_probe_at) VALUES ('url:https://p.example', 'static', '["https://p.example"]', '[]', '["https://mint.example"]', 'reachable', 0, 0, 0)`).run();
  old.prepare(`INSERT INTO market_models (provider_id, model_id, alias_ids, price, first_seen_at, price_since) VALUES ('url:https://p.example', 'gpt-x', '[]', ?, 0, 0)`).run(JSON.stringify(normalizePrice({ sats_pricing: { prompt: 0.00002, completion: 0.00006, max_cost: 40 } })));
  old.close();
  const db = openDatabase(file);
  t.after(() => db.close());
  const market = new Market({ db, config: { relays: [], providers: ['https://p.example'] }, autoSchedule: false });
  const [offer] = market.providersFor('gpt-x');
  assert.equal(offer.model.reserve, null);
  assert.equal(reservationMsat(offer.model.reserve, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }, offer.price.maxCostMsat), 39_600);
});
