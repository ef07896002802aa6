// An announcement naming someone else's URL (the world's `impersonate` knob): the market gives
// the URL to the pubkey its /v1/info names, never to the impostor.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { npubEncode } from 'nostr-tools/nip19';
import { Market } from '../../daemon/market.ts';
import { infoPubkey, urlClaim } from '../../daemon/market-claims.ts';
import { openDatabase } from '../../wallet/sqlite.ts';
import { startRelay } from '../world/relay.ts';
import { startProvider, type ModelSpec, type TestProvider } from '../world/provider.ts';

const MINT = 'http://127.0.0.1:3338';
const ROGUE_MINT = 'http://127.0.0.1:3339';
const GPT: ModelSpec = { id: 'gpt-x', promptSatsPerToken: 0.00002, completionSatsPerToken: 0.00006, maxCostSats: 40 };

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('a URL is confirmed by the npub its /v1/info names, refuted by another, unverified without one', () => {
  const owner = getPublicKey(generateSecretKey());
  const other = getPublicKey(generateSecretKey());
  assert.equal(infoPubkey(npubEncode(owner)), owner);
  assert.equal(infoPubkey(owner.toUpperCase()), owner, 'hex is accepted too');
  for (const bad of [undefined, '', 'npub1garbage', 'nsec1xyz', 'abc']) assert.equal(infoPubkey(bad), undefined, String(bad));
  assert.equal(urlClaim(owner, { npub: npubEncode(owner) }), 'confirmed');
  assert.equal(urlClaim(owner, { npub: npubEncode(other) }), 'refuted');
  assert.equal(urlClaim(owner, { npub: 'npub1garbage' }), 'unverified');
  assert.equal(urlClaim(owner, {}), 'unverified', 'an older node without npub');
  assert.equal(urlClaim(owner, undefined), 'unverified', '/v1/info did not answer');
  assert.equal(urlClaim(undefined, { npub: npubEncode(other) }), 'unverified', 'a static provider claims nothing');
});

test("an impostor announcing another provider's URL gets none of its offers; the real owner keeps them", async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const now = { ms: Date.now() };
  const db = openDatabase(':memory:');
  const market = new Market({ db, config: { relays: [relay.url], providers: [] }, clock: () => now.ms, random: () => 0.5, autoSchedule: false, relayOptions: { backoffMs: [20, 40] } });
  t.after(async () => {
    await market.stop();
    db.close();
  });
  await market.start();
  const start = (name: string, mints: string[], models: ModelSpec[], over: Partial<Parameters<typeof startProvider>[0]> = {}) =>
    startProvider({ name, relays: [relay.url], mints, models, clock: () => now.ms, ...over }).then((p) => (t.after(() => p.stop()), p));
  const owner: TestProvider = await start('Owner', [MINT], [GPT]);
  // Cheaper on paper, its own mint: what routing would pick if the URL were credited to it.
  const impostor = await start('Mallory', [ROGUE_MINT], [{ ...GPT, promptSatsPerToken: 0.000001 }], { noAnnounce: true, knobs: { impersonate: owner.url } });
  await impostor.publish();
  const idOf = (p: TestProvider) => `${p.pubkey}:${p.providerId}`;
  await waitFor('both announcements', () => market.provider(idOf(owner)) !== undefined && market.provider(idOf(impostor)) !== undefined);
  assert.deepEqual(market.provider(idOf(impostor))?.urls, [owner.url]);

  await market.tick();
  const offers = market.providersFor('gpt-x');
  assert.deepEqual(offers.map((o) => [o.provider.id, o.mints]), [[idOf(owner), [MINT]]]);
  const fake = market.provider(idOf(impostor))!;
  assert.equal(fake.status, 'unreachable');
  assert.match(fake.lastError ?? '', /belongs to another provider/);
  assert.ok(fake.nextProbeAt - now.ms >= 60 * 60_000, 'not re-probed for an hour');
  const views = market.providers();
  assert.equal(views.find((v) => v.id === idOf(impostor))?.status, 'unreachable');
  assert.equal(views.find((v) => v.id === idOf(owner))?.status, 'reachable');
});
