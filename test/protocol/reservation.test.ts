// protocol/pricing.ts reservationMsat against the node's own arithmetic: routstr-core v0.4.5's
// Python run on 600 models x bodies (fixtures/gen-reservation.py), and the world provider's
// requiredMsat on many random bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fc from 'fast-check';
import { nodePromptTokens, reservationMsat, reserveTermsFrom } from '../../protocol/reservation.ts';
import { satsToMsatCeil } from '../../protocol/pricing.ts';
import { modelListing, requiredMsat } from '../world/provider/pricing.ts';
import type { ModelSpec } from '../world/provider/types.ts';

interface Case {
  model: unknown;
  body: Record<string, unknown>;
  required_msat: number;
}
const fixture = JSON.parse(fs.readFileSync(new URL('./fixtures/reservation-v0.4.5.json', import.meta.url), 'utf8')) as { cases: Case[] };

test('the token is sized to exactly what routstr-core v0.4.5 requires, on 600 models and bodies run through its Python', () => {
  assert.ok(fixture.cases.length >= 600);
  let interesting = 0;
  for (const [i, c] of fixture.cases.entries()) {
    const terms = reserveTermsFrom(c.model);
    assert.ok(terms, `case ${i}: terms`);
    assert.equal(reservationMsat(terms, c.body), c.required_msat, `case ${i}: ${JSON.stringify(c)}`);
    if (c.required_msat > 1) interesting++;
  }
  assert.ok(interesting > 300, 'most cases are above the 1 msat floor');
});

const spec = fc.record({
  id: fc.constant('m'),
  promptSatsPerToken: fc.oneof(fc.constantFrom(0.00001, 0.0000123, 0.00002, 0.0003), fc.double({ min: 1e-7, max: 0.001, noNaN: true })),
  completionSatsPerToken: fc.oneof(fc.constantFrom(0.00003, 0.00005, 0.0006), fc.double({ min: 1e-7, max: 0.003, noNaN: true })),
  contextLength: fc.option(fc.integer({ min: 512, max: 200_000 }), { nil: undefined }),
  maxCompletionTokens: fc.option(fc.integer({ min: 16, max: 32_000 }), { nil: undefined }),
  maxCostSats: fc.option(fc.double({ min: 0.001, max: 500, noNaN: true }), { nil: undefined }),
}) as fc.Arbitrary<ModelSpec>;

// BMP text only: the world counts UTF-16 units where the node counts code points (see the next test).
const bmpText = fc.string({ unit: fc.oneof(fc.constantFrom('a', ' ', 'é', '語', '\n'), fc.string({ minLength: 1, maxLength: 1 })), maxLength: 3000 });
const message = fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: fc.oneof(bmpText, fc.array(fc.record({ type: fc.constant('text'), text: bmpText }), { maxLength: 3 })) });
const body = fc.record(
  {
    model: fc.constant('m'),
    messages: fc.array(message, { maxLength: 5 }),
    max_tokens: fc.oneof(fc.integer({ min: 0, max: 50_000 }), fc.constant(null)),
  },
  { requiredKeys: ['model'] },
);

test("the token is sized to the world provider's requiredMsat on random models and bodies", () => {
  fc.assert(
    fc.property(spec, body, (m, b) => {
      const terms = reserveTermsFrom(modelListing(m, 0.001, 0));
      assert.equal(reservationMsat(terms, b), requiredMsat(m, b));
    }),
    { numRuns: 2000, seed: 42 },
  );
});

test('the reservation never exceeds the listed max_cost, whatever the body', () => {
  fc.assert(
    fc.property(spec, body, (m, b) => {
      const listing = modelListing(m, 0.001, 0) as { sats_pricing: { max_cost: number } };
      const r = reservationMsat(reserveTermsFrom(listing), b);
      assert.ok(r >= 1);
      assert.ok(r <= Math.max(1, satsToMsatCeil(listing.sats_pricing.max_cost)), `${r} > max_cost ${listing.sats_pricing.max_cost} sat`);
    }),
    { numRuns: 1000, seed: 7 },
  );
});

test('characters are counted as the node counts them (code points), so emoji never shrink the token below its check', () => {
  assert.equal(nodePromptTokens([{ role: 'user', content: '😀😀😀' }]), 1); // Python len 3; UTF-16 length 6 would say 2
  assert.equal(nodePromptTokens([{ role: 'user', content: [{ type: 'text', text: 'abcdef' }, { type: 'image_url', image_url: { url: 'https://x/y.png' } }] }]), 2 + 85);
  assert.equal(nodePromptTokens('not a list'), 0);
});

test('without sats pricing the whole listed ceiling is reserved', () => {
  assert.equal(reserveTermsFrom({ pricing: { prompt: 1e-6, completion: 2e-6 } }), null);
  assert.equal(reservationMsat(null, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }, 50_000), 49_500);
  assert.equal(reservationMsat(null, {}, 0), 1);
});
