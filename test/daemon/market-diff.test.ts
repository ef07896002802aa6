import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffModels, type DiffContext } from '../../daemon/market-diff.ts';
import type { StoredModel } from '../../daemon/market-store.ts';
import { normalizePrice } from '../../protocol/pricing.ts';
import type { ProviderModel } from '../../protocol/provider-client.ts';

const price = (promptSats: number) => normalizePrice({ sats_pricing: { prompt: promptSats, completion: promptSats } });
const listed = (id: string, promptSats: number, over: Partial<ProviderModel> = {}): ProviderModel => ({ id, aliasIds: [], price: price(promptSats), reserve: null, ...over });
const stored = (id: string, promptSats: number, priceSince: number): StoredModel => ({ providerId: 'p', id, aliasIds: [], price: price(promptSats), reserve: null, firstSeenAt: 0, priceSince });
const ctx = (now: number, hot: string[] = [], last: Record<string, number> = {}): DiffContext => ({
  providerId: 'p',
  now,
  isHot: (m) => hot.includes(m.id),
  lastRecorded: (id) => (id in last ? { validFrom: last[id], price: price(0.001) } : undefined),
});

test('new models are written and recorded; an unchanged listing writes nothing', () => {
  const first = diffModels(new Map(), [listed('a', 0.001), listed('b', 0.002)], ctx(100));
  assert.deepEqual(first.upserts.map((m) => m.id), ['a', 'b']);
  assert.deepEqual(first.history.map((h) => [h.modelId, h.validFrom]), [['a', 100], ['b', 100]]);
  assert.equal(first.changes.length, 2);
  const again = diffModels(first.next, [listed('a', 0.001), listed('b', 0.002)], ctx(200, ['a', 'b']));
  assert.deepEqual([again.upserts, again.removed, again.changes, again.history], [[], [], [], []]);
  assert.equal(again.next.get('a')?.priceSince, 100);
});

test('a renamed model is rewritten without a price change', () => {
  const d = diffModels(new Map([['a', stored('a', 0.001, 50)]]), [listed('a', 0.001, { name: 'A', aliasIds: ['x/a'] })], ctx(100));
  assert.deepEqual(d.upserts.map((m) => [m.id, m.name, m.priceSince]), [['a', 'A', 50]]);
  assert.deepEqual(d.changes, []);
});

test('a price change of a cold model is announced but not recorded; of a hot one, recorded with the price it replaces', () => {
  const old = new Map([['a', stored('a', 0.001, 50)], ['b', stored('b', 0.001, 50)]]);
  const d = diffModels(old, [listed('a', 0.002), listed('b', 0.002)], ctx(100, ['b'], { b: 10 }));
  assert.deepEqual(d.changes.map((c) => c.modelId), ['a', 'b']);
  assert.deepEqual(
    d.history.map((h) => [h.modelId, h.validFrom]),
    [
      ['b', 50],
      ['b', 100],
    ],
  );
  // when the history already holds the replaced price from its start, only the new one is added
  const d2 = diffModels(old, [listed('b', 0.002)], ctx(100, ['b'], { b: 50 }));
  assert.deepEqual(d2.history.map((h) => [h.modelId, h.validFrom]), [['b', 100]]);
});

test('a model that is no longer listed is removed, and recorded as withdrawn if hot', () => {
  const d = diffModels(new Map([['a', stored('a', 0.001, 50)], ['b', stored('b', 0.001, 50)]]), [], ctx(100, ['a'], { a: 50 }));
  assert.deepEqual(d.removed, ['a', 'b']);
  assert.deepEqual(d.history, [{ providerId: 'p', modelId: 'a', validFrom: 100, price: null }]);
  assert.equal(d.changes.every((c) => c.removed), true);
});
