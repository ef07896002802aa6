import { test } from 'node:test';
import assert from 'node:assert/strict';
import { autoConfigFrom, qualifyingModels } from '../../../daemon/route/auto.ts';
import { RouteConfigError } from '../../../daemon/route/errors.ts';

test('the auto section of satroute.json lists the qualifying models, best first', () => {
  const auto = autoConfigFrom({ auto: { minQuality: 60, quality: { small: 40, medium: 70, large: 90, 'vendor/alt': 70 } } });
  assert.ok(auto);
  assert.deepEqual(qualifyingModels(auto), ['large', 'medium', 'vendor/alt']);
  assert.equal(autoConfigFrom({}), undefined);
});

test('an invalid auto section is refused with the field named', () => {
  assert.throws(() => autoConfigFrom({ auto: { quality: { a: 'high' } } }), (err: unknown) => err instanceof RouteConfigError && /minQuality/.test(err.message) && /quality\.a/.test(err.message));
});
