import { test } from 'node:test';
import assert from 'node:assert/strict';
import { insertTop, listFloor, type Ranked } from '../../../daemon/route/shortlist.ts';
import type { Offer } from '../../../daemon/market-index.ts';

const ranked = (name: string, score: number, busy = false) => ({ offer: { name } as unknown as Offer, score, busy }) as unknown as Ranked;
const names = (top: Ranked[]) => top.map((r) => (r.offer as unknown as { name: string }).name);

test('the plan keeps the three cheapest; on a tie the provider with the cheaper list price (seen first) stays ahead', () => {
  const top: Ranked[] = [];
  for (const r of [ranked('a', 30), ranked('b', 10), ranked('c', 20), ranked('d', 10), ranked('e', 5)]) insertTop(top, r, 3);
  assert.deepEqual(names(top), ['e', 'b', 'd']);
});

test('a new provider already on trial in another request goes after every other candidate, however cheap', () => {
  const top: Ranked[] = [];
  for (const r of [ranked('new', 1, true), ranked('x', 40), ranked('y', 50)]) insertTop(top, r, 3);
  assert.deepEqual(names(top), ['x', 'y', 'new']);
  insertTop(top, ranked('z', 60), 3);
  assert.deepEqual(names(top), ['x', 'y', 'z'], 'a full plan drops the busy one first');
});

test('the cheapest prompt and completion prices of a model list bound the scan; an empty list has none', () => {
  const o = (model: string, promptNmsat: number, completionNmsat: number) => ({ model: { id: model }, price: { promptNmsat, completionNmsat } }) as unknown as Offer;
  const list = [o('m', 30, 90), o('m', 50, 60), o('m-alias', 40, 70)];
  assert.deepEqual(listFloor(list), { a: 30, b: 60, models: ['m', 'm-alias'] });
  assert.equal(listFloor(list), listFloor(list), 'computed once per list');
  assert.deepEqual(listFloor([]), { a: 0, b: 0, models: [] });
});
