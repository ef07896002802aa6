import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomLiveOrder, routstrClientDepositSat, routstrClientEstimateMsat, routstrClientOrder, RoutstrClientRule } from '../../../daemon/route/baseline.ts';
import { normalizePrice } from '../../../protocol/pricing.ts';
import { gpt, MINT, routeWorld } from './fixture.ts';

const specs = [
  { name: 'Sum-cheapest', models: [gpt(0.00001, 0.00009)] }, // 0.0001 together, the dearest completion
  { name: 'Completion-cheap', models: [gpt(0.0001, 0.00001)] }, // 0.00011 together
  { name: 'Middle', models: [gpt(0.00006, 0.00005)] }, // 0.00011 together
  { name: 'Other-mint', models: [gpt(0.000001, 0.000001)], mints: ['https://elsewhere.example'] },
];

function market(reviewed = true) {
  const w = routeWorld(specs);
  if (reviewed) for (const v of w.market.providers()) w.market.provider(v.id)!.review = 'good';
  return w;
}
const wallet = new Set([MINT]);

test("the Routstr client's rule: first the lowest prompt+completion, then by completion price alone; shared mints only", () => {
  const w = market();
  const order = routstrClientOrder(w.market.providersFor('gpt-x'), wallet).map((o) => o.provider.name);
  assert.deepEqual(order, ['Sum-cheapest', 'Completion-cheap', 'Middle']);
  assert.deepEqual(routstrClientOrder(w.market.providersFor('gpt-x'), wallet, { cooling: (o) => o.provider.name === 'Sum-cheapest' }).map((o) => o.provider.name), ['Completion-cheap', 'Middle'], 'equal sums: the lower URL');
});

test('ties on the list price go to the lower base URL', () => {
  const w = routeWorld([
    { name: 'Zed', models: [gpt(0.00002, 0.00002)] },
    { name: 'Ann', models: [gpt(0.00002, 0.00002)] },
  ]);
  for (const v of w.market.providers()) w.market.provider(v.id)!.review = 'good';
  assert.deepEqual(new RoutstrClientRule().order(w.market.providersFor('gpt-x'), wallet, 'gpt-x', 0).map((o) => o.provider.name), ['Ann', 'Zed']);
});

test('providers without a positive review are disabled (fails closed), unless told otherwise', () => {
  const w = market(false);
  assert.deepEqual(new RoutstrClientRule().order(w.market.providersFor('gpt-x'), wallet, 'gpt-x', 0), []);
  assert.equal(new RoutstrClientRule({ requirePositiveReview: false }).order(w.market.providersFor('gpt-x'), wallet, 'gpt-x', 0).length, 3);
});

test('cooldowns: a route 10 s doubling to 10 min, reset on success; a provider 210 s after two failures within 210 s', () => {
  const w = market();
  const rule = new RoutstrClientRule();
  const offers = w.market.providersFor('gpt-x');
  const first = (now: number, model = 'gpt-x') => rule.order(offers, wallet, model, now)[0]?.provider.name;
  const id = offers.find((o) => o.provider.name === 'Sum-cheapest')!.provider.id;
  rule.failure(id, 'gpt-x', 0);
  assert.equal(first(9_999), 'Completion-cheap');
  assert.equal(first(10_000), 'Sum-cheapest');
  rule.failure(id, 'gpt-x', 1_000_000); // second route failure, long after: 20 s, provider not cooled
  assert.equal(first(1_019_999), 'Completion-cheap');
  assert.equal(first(1_019_999, 'another-model'), 'Sum-cheapest', 'a route cooldown is per model');
  assert.equal(first(1_020_000), 'Sum-cheapest');
  rule.success(id, 'gpt-x');
  rule.failure(id, 'gpt-x', 1_100_000); // within 210 s of the last failure: the whole provider cools 210 s
  assert.equal(first(1_110_000), 'Completion-cheap', 'route reset by the success: 10 s, but...');
  assert.equal(first(1_309_999, 'another-model'), 'Completion-cheap', '...the whole provider cools for 210 s');
  assert.equal(first(1_310_000), 'Sum-cheapest');
});

test("the client's estimate and first deposit", () => {
  const price = normalizePrice({ sats_pricing: { prompt: 0.00001, completion: 0.00003, request: 0.001, max_cost: 50 } })!;
  const body = { messages: [{ role: 'user', content: 'x'.repeat(284) }], max_tokens: 100 };
  // (0.00001 x 100 + 0.00003 x 100 + 0.001) x 1.05 sats = 0.00525 sats = 5.25 msat
  assert.equal(routstrClientEstimateMsat(body, price), 6);
  assert.equal(routstrClientEstimateMsat({ messages: [] }, price), Math.ceil((0.00003 * 8192 + 0.001) * 1.05 * 1000));
  assert.equal(routstrClientDepositSat(6), 7);
  assert.equal(routstrClientDepositSat(10_000), 14);
});

test('the random baseline picks among providers sharing a mint, in an order set by the injected random', () => {
  const w = market();
  const offers = w.market.providersFor('gpt-x');
  const seq = [0.9, 0.1];
  const order = randomLiveOrder(offers, wallet, () => seq.shift() ?? 0).map((o) => o.provider.name);
  assert.equal(order.length, 3);
  assert.ok(!order.includes('Other-mint'));
  assert.deepEqual(new Set(order), new Set(['Sum-cheapest', 'Completion-cheap', 'Middle']));
});
