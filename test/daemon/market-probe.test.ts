import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orderUrls } from '../../daemon/market-probe.ts';

test('a provider is asked first at the URL that answered last, then at its clearnet URLs, and over .onion last', () => {
  const onion = 'http://abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv.onion';
  const a = 'https://a.example';
  const b = 'https://b.example';
  assert.deepEqual(orderUrls([onion, a, b], undefined), [a, b, onion]);
  assert.deepEqual(orderUrls([onion, a, b], b), [b, a, onion]);
  assert.deepEqual(orderUrls([a, onion], onion), [onion, a], 'the .onion URL that answered last is tried first');
  assert.deepEqual(orderUrls([a, b], 'https://gone.example'), [a, b], 'a last URL no longer announced is not tried');
});
