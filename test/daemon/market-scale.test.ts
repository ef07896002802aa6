import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Market } from '../../daemon/market.ts';
import { openDatabase } from '../../db/sqlite.ts';
import { startRelay } from '../world/relay.ts';
import { startFleet } from './fleet.ts';

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('200 providers on the relay are discovered and probed, never more than 8 at once', async (t) => {
  const relay = await startRelay();
  t.after(() => relay.stop());
  const fleet = await startFleet({ providers: 200, modelsPerProvider: 5, delayMs: 5 });
  t.after(() => fleet.stop());
  await fleet.announce(relay.url);
  const db = openDatabase(':memory:');
  t.after(() => db.close());
  const market = new Market({ db, config: { relays: [relay.url], providers: [], probe: { concurrency: 8 } }, autoSchedule: false });
  t.after(() => market.stop());
  await market.start();
  await waitFor('200 announcements', () => market.providers().length === 200);
  await market.tick();
  const views = market.providers();
  assert.equal(views.filter((v) => v.status === 'reachable').length, 200);
  assert.ok(views.every((v) => v.models === 5));
  assert.equal(market.providersFor('vendor/model-3').length, 200);
  assert.ok(fleet.maxActiveProviders() <= 8, `at most 8 providers probed at once, saw ${fleet.maxActiveProviders()}`);
  assert.ok(market.peakConcurrency <= 8);
  assert.ok(fleet.maxActiveProviders() >= 2, 'probes do run in parallel');
  assert.equal(fleet.requests(), 400, 'one /v1/models and one /v1/info per provider');
});
