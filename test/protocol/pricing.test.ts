import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  divCeil,
  divFloor,
  divRound,
  msatToSatCeil,
  msatToSatFloor,
  normalizePrice,
  samePrice,
  satsPerTokenToNmsat,
  satsToMsatCeil,
  tokenCostMsat,
  type ModelPrice,
} from '../../protocol/pricing.ts';
import { chargeMsat } from '../world/provider.ts';

const price = (promptSats: number, completionSats: number, extra: Record<string, number> = {}): ModelPrice => {
  const p = normalizePrice({ sats_pricing: { prompt: promptSats, completion: completionSats, ...extra } });
  assert.ok(p);
  return p;
};

test('rounding up never undercounts what must be paid', () => {
  assert.equal(divCeil(10n, 3n), 4n);
  assert.equal(divCeil(9n, 3n), 3n);
  assert.equal(divCeil(0n, 7n), 0n);
  assert.equal(divCeil(-10n, 3n), -3n);
  assert.equal(msatToSatCeil(1001), 2);
  assert.equal(msatToSatCeil(1000), 1);
  assert.equal(msatToSatCeil(1), 1);
  assert.equal(satsToMsatCeil(0.0015), 2);
  assert.equal(satsToMsatCeil(21), 21_000);
  assert.equal(satsToMsatCeil(0.001), 1);
  // float noise just above a whole msat does not add one
  assert.equal(satsToMsatCeil(0.1 + 0.2), 300);
  assert.equal(satsToMsatCeil(0.30000000000000004), 300);
  assert.equal(satsToMsatCeil(0.3001), 301);
});

test('rounding down never credits more than was received', () => {
  assert.equal(divFloor(10n, 3n), 3n);
  assert.equal(divFloor(-10n, 3n), -4n);
  assert.equal(msatToSatFloor(1999), 1);
  assert.equal(msatToSatFloor(999), 0);
  assert.equal(msatToSatFloor(2000), 2);
});

test('nearest rounding sends halves up, as the node rounds its msat to 3 decimals', () => {
  assert.equal(divRound(5n, 10n), 1n);
  assert.equal(divRound(4n, 10n), 0n);
  assert.equal(divRound(15n, 10n), 2n);
  assert.equal(divRound(25n, 10n), 3n);
});

test('tiny per-token prices keep their precision as integer nmsat', () => {
  assert.equal(satsPerTokenToNmsat(0.0000123), 12_300_000);
  assert.equal(satsPerTokenToNmsat(1.2345678901234567e-5), 12_345_679);
  assert.equal(satsPerTokenToNmsat(0.1), 100_000_000_000);
  assert.equal(satsPerTokenToNmsat(0), 0);
  assert.ok(Number.isSafeInteger(satsPerTokenToNmsat(5000)));
  assert.throws(() => satsPerTokenToNmsat(-1));
});

test('a model priced in sats is normalized to integers, max_cost kept in msat', () => {
  const p = normalizePrice({ sats_pricing: { prompt: 0.0000123, completion: '0.00005', request: 0.0015, max_cost: 42.5, input_cache_read: 0.000001 } });
  assert.deepEqual(p, {
    promptNmsat: 12_300_000,
    completionNmsat: 50_000_000,
    cacheReadNmsat: 1_000_000,
    cacheWriteNmsat: 0,
    requestMsat: 2,
    maxCostMsat: 42_500,
    maxPromptCostMsat: 0,
    maxCompletionCostMsat: 0,
    source: 'sats_pricing',
  });
});

test('a model priced only in USD gets a price only when a USD rate is configured', () => {
  const model = { pricing: { prompt: 0.000002, completion: 0.000008, max_cost: 0.5 } };
  assert.equal(normalizePrice(model), null);
  const p = normalizePrice(model, { usdPerSat: 0.001 });
  assert.ok(p);
  assert.equal(p.source, 'usd_pricing');
  assert.equal(p.promptNmsat, satsPerTokenToNmsat(0.002));
  assert.equal(p.maxCostMsat, 500_000);
  // sats_pricing wins when present
  assert.equal(normalizePrice({ ...model, sats_pricing: { prompt: 0.001, completion: 0.002 } }, { usdPerSat: 0.001 })?.source, 'sats_pricing');
});

test('unusable prices give no price instead of a wrong one', () => {
  assert.equal(normalizePrice({ sats_pricing: { prompt: -1, completion: 1 } }), null);
  assert.equal(normalizePrice({ sats_pricing: { prompt: 'abc', completion: 1 } }), null);
  assert.equal(normalizePrice({ sats_pricing: null }), null);
  assert.equal(normalizePrice({}), null);
  // optional fields that are garbage are ignored, not fatal
  assert.equal(normalizePrice({ sats_pricing: { prompt: 0.001, completion: 0.001, max_cost: 'lots' } })?.maxCostMsat, 0);
});

test('the bill matches the node: ceil(sum(round(tokens / 1000 x rate, 3))) msat', () => {
  // 1000 prompt tokens at 0.0000123 sat = 12.3 msat -> 13
  assert.equal(tokenCostMsat({ promptTokens: 1000, completionTokens: 0 }, price(0.0000123, 0)), 13);
  // 7 tokens at 0.0000123: 0.0861 msat -> round3 0.086 -> 1
  assert.equal(tokenCostMsat({ promptTokens: 7, completionTokens: 0 }, price(0.0000123, 0)), 1);
  // each part is rounded to 3 decimals before the sum: 0.0004 + 0.0004 rounds to 0 + 0
  assert.equal(tokenCostMsat({ promptTokens: 1, completionTokens: 1 }, price(0.0000004, 0.0000004)), 0);
  assert.equal(tokenCostMsat({ promptTokens: 0, completionTokens: 0 }, price(0.01, 0.02)), 0);
  // cache reads fall back to the prompt rate when unlisted
  const p = price(0.00001, 0.00003);
  assert.equal(tokenCostMsat({ promptTokens: 0, completionTokens: 0, cacheReadTokens: 1000 }, p), 10);
  assert.equal(tokenCostMsat({ promptTokens: 0, completionTokens: 0, cacheReadTokens: 1000 }, price(0.00001, 0.00003, { input_cache_read: 0.000001 })), 1);
});

test('the bill equals the simulated node and a float reimplementation over many prices and token counts', () => {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  for (let i = 0; i < 5000; i++) {
    const ps = Number((rand() * 0.001).toPrecision(1 + Math.floor(rand() * 6)));
    const cs = Number((rand() * 0.003).toPrecision(1 + Math.floor(rand() * 6)));
    const pt = Math.floor(rand() * 200_000);
    const ct = Math.floor(rand() * 20_000);
    const ours = tokenCostMsat({ promptTokens: pt, completionTokens: ct }, price(ps, cs));
    const float = Math.ceil(round3((pt / 1000) * (ps * 1e6)) + round3((ct / 1000) * (cs * 1e6)) - 1e-9);
    const world = chargeMsat({ id: 'm', promptSatsPerToken: ps, completionSatsPerToken: cs }, pt, ct, 0.001).totalMsat;
    assert.equal(ours, float, `float ${ps} ${cs} ${pt} ${ct}: ${ours} vs ${float}`);
    assert.equal(ours, world, `world ${ps} ${cs} ${pt} ${ct}`);
  }
});

test('two listings with the same integers are the same price', () => {
  assert.ok(samePrice(price(0.001, 0.002), price(0.001, 0.002)));
  assert.ok(!samePrice(price(0.001, 0.002), price(0.001, 0.0021)));
  assert.ok(!samePrice(price(0.001, 0.002), null));
  assert.ok(samePrice(null, null));
});
