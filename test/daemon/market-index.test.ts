import { test } from 'node:test';
import assert from 'node:assert/strict';
import { catalogue, MarketIndex, type MarketProvider } from '../../daemon/market-index.ts';
import type { StoredModel } from '../../daemon/market-store.ts';
import { normalizePrice } from '../../protocol/pricing.ts';

const NOW = 1_800_000_000_000;

function model(providerId: string, id: string, promptSats: number, aliasIds: string[] = []): StoredModel {
  return { providerId, id, aliasIds, price: normalizePrice({ sats_pricing: { prompt: promptSats, completion: 0 } }), reserve: null, firstSeenAt: NOW, priceSince: NOW };
}

function provider(id: string, models: StoredModel[], over: Partial<MarketProvider> = {}): MarketProvider {
  return {
    id,
    source: 'nostr',
    urls: [`https://${id}.example`],
    url: `https://${id}.example`,
    announcedMints: ['https://mint.example'],
    infoMints: [],
    status: 'reachable',
    statusSince: NOW,
    firstSeenAt: NOW,
    nextProbeAt: NOW,
    failures: 0,
    models: new Map(models.map((m) => [m.id, m])),
    ...over,
  };
}

const names = (index: MarketIndex, key: string) => index.offers(key).map((o) => o.provider.id);

test('offers stay sorted cheapest first as providers are re-priced, added and removed', () => {
  const index = new MarketIndex(true);
  index.putAll([provider('b', [model('b', 'm', 0.002)]), provider('a', [model('a', 'm', 0.003)]), provider('c', [model('c', 'm', 0.001)])]);
  assert.deepEqual(names(index, 'm'), ['c', 'b', 'a']);
  const snapshot = index.offers('m');
  const a = index.get('a')!;
  a.models = new Map([['m', model('a', 'm', 0.0005)]]);
  index.reindex('a');
  assert.deepEqual(names(index, 'm'), ['a', 'c', 'b']);
  assert.deepEqual(
    snapshot.map((o) => o.provider.id),
    ['c', 'b', 'a'],
    'a list already handed out does not change under its holder',
  );
  index.put(provider('d', [model('d', 'm', 0.002)]));
  assert.deepEqual(names(index, 'm'), ['a', 'c', 'b', 'd'], 'equal prices are ordered by URL');
  index.remove('c');
  assert.deepEqual(names(index, 'm'), ['a', 'b', 'd']);
});

test('unreachable, excluded and unpriced offers are not listed', () => {
  const index = new MarketIndex(true);
  index.putAll([
    provider('up', [model('up', 'm', 0.001)]),
    provider('down', [model('down', 'm', 0.001)], { status: 'unreachable' }),
    provider('new', [model('new', 'm', 0.001)], { status: 'announced' }),
    provider('bad', [model('bad', 'm', 0.001)], { review: 'bad' }),
    provider('free', [{ ...model('free', 'm', 0), price: null }]),
  ]);
  assert.deepEqual(names(index, 'm'), ['up']);
  const lenient = new MarketIndex(false);
  lenient.putAll([provider('bad', [model('bad', 'm', 0.001)], { review: 'bad' })]);
  assert.deepEqual(names(lenient, 'm'), ['bad']);
  const down = index.get('down')!;
  down.status = 'reachable';
  index.reindex('down');
  assert.deepEqual(names(index, 'm').sort(), ['down', 'up']);
});

test('a model is found by its id or any alias; an id wins over another model alias', () => {
  const index = new MarketIndex(true);
  index.put(provider('p', [model('p', 'openai/gpt-x', 0.001, ['gpt-x', 'gx']), model('p', 'gpt-x', 0.002)]));
  assert.equal(index.offers('gx')[0].model.id, 'openai/gpt-x');
  assert.equal(index.offers('openai/gpt-x')[0].model.id, 'openai/gpt-x');
  assert.equal(index.offers('gpt-x')[0].model.id, 'gpt-x');
  assert.equal(index.offers('gpt-x').length, 1);
  assert.deepEqual(index.offers('nope'), []);
  assert.deepEqual(
    catalogue(index).map((m) => [m.id, m.aliases]),
    [
      ['gpt-x', []],
      ['openai/gpt-x', ['gpt-x', 'gx']],
    ],
  );
});
