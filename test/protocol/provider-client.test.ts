import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProbeError, ProviderClient } from '../../protocol/provider-client.ts';
import { satsPerTokenToNmsat } from '../../protocol/pricing.ts';
import { startProvider, type ModelSpec } from '../world/provider.ts';
import { startSocksProxy } from './socks-server.ts';

const MINT = 'http://127.0.0.1:3338';

async function provider(t: TestContext, models: ModelSpec[] = [{ id: 'gpt-x', aliasIds: ['openai/gpt-x'], promptSatsPerToken: 0.0000123, completionSatsPerToken: 0.00005, maxCostSats: 50 }]) {
  const p = await startProvider({ name: 'Alpha', relays: [], mints: [MINT], models, noAnnounce: true });
  t.after(() => p.stop());
  return p;
}

/** A plain HTTP server answering every request with this body. */
async function serve(t: TestContext, body: string, status = 200): Promise<string> {
  const server = http.createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function rejectsWith(p: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof ProbeError && err.reason === reason);
}

test('models and info are read from a provider, prices normalized, aliases kept', async (t) => {
  const p = await provider(t);
  const client = new ProviderClient();
  const models = await client.models(p.url);
  assert.equal(models.length, 1);
  assert.equal(models[0].id, 'gpt-x');
  assert.deepEqual(models[0].aliasIds, ['openai/gpt-x']);
  assert.equal(models[0].price?.promptNmsat, satsPerTokenToNmsat(0.0000123));
  assert.equal(models[0].price?.completionNmsat, satsPerTokenToNmsat(0.00005));
  assert.equal(models[0].price?.maxCostMsat, 50_000);
  assert.equal(models[0].price?.source, 'sats_pricing');
  const info = await client.info(p.url);
  assert.equal(info.name, 'Alpha');
  assert.deepEqual(info.mints, [MINT]);
});

test('a provider that does not answer in time fails with a timeout', async (t) => {
  const p = await provider(t);
  p.knobs.latencyMs = 5_000;
  await rejectsWith(new ProviderClient({ timeoutMs: 100 }).models(p.url), 'timeout');
});

test('a provider whose port is closed is unreachable', async (t) => {
  const p = await provider(t);
  await p.setDead(true);
  await rejectsWith(new ProviderClient().models(p.url), 'unreachable');
});

test('a body over the size limit is refused without reading it all', async (t) => {
  const many = Array.from({ length: 200 }, (_, i) => ({ id: `m${i}`, promptSatsPerToken: 0.00001, completionSatsPerToken: 0.00002 }));
  const p = await provider(t, many);
  await rejectsWith(new ProviderClient({ maxModelsBytes: 10_000 }).models(p.url), 'too_large');
  assert.equal((await new ProviderClient().models(p.url)).length, 200);
});

test('answers that are not JSON, not a model list, or an HTTP error are told apart', async (t) => {
  const client = new ProviderClient();
  await rejectsWith(client.models(await serve(t, '<html>hi</html>')), 'invalid_response');
  await rejectsWith(client.models(await serve(t, '{"models": []}')), 'invalid_response');
  await rejectsWith(client.models(await serve(t, '{"detail":"x"}', 503)), 'http_status');
});

test('one malformed or disabled model is skipped and the rest kept; unpriced models are listed without a price', async (t) => {
  const body = JSON.stringify({
    data: [
      { id: 'good', sats_pricing: { prompt: 0.00001, completion: 0.00002, max_cost: 1 }, alias_ids: null },
      { name: 'no id' },
      { id: 'off', enabled: false, sats_pricing: { prompt: 1, completion: 1 } },
      { id: 'usd-only', pricing: { prompt: 0.000001, completion: 0.000002 } },
      'garbage',
    ],
  });
  const url = await serve(t, body);
  const models = await new ProviderClient().models(url);
  assert.deepEqual(
    models.map((m) => [m.id, m.price === null]),
    [
      ['good', false],
      ['usd-only', true],
    ],
  );
  // with a configured USD rate the USD-only model gets a price
  const withRate = await new ProviderClient({ usdPerSat: 0.001 }).models(url);
  assert.equal(withRate[1].price?.source, 'usd_pricing');
  assert.equal(withRate[1].price?.promptNmsat, satsPerTokenToNmsat(0.001));
});

test('.onion providers are refused without a SOCKS proxy and reached through one', async (t) => {
  const p = await provider(t);
  const onion = 'http://routstrabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqr.onion';
  const plain = new ProviderClient();
  assert.equal(plain.canReach(onion), false);
  await rejectsWith(plain.models(onion), 'onion_without_proxy');

  const target = new URL(p.url);
  const proxy = await startSocksProxy({ host: target.hostname, port: Number(target.port) });
  t.after(() => proxy.stop());
  const viaTor = new ProviderClient({ socksProxy: proxy.url, timeoutMs: 5000 });
  assert.equal(viaTor.canReach(onion), true);
  const models = await viaTor.models(onion);
  assert.equal(models[0].id, 'gpt-x');
  assert.deepEqual(proxy.asked, [new URL(onion).hostname]);
});
