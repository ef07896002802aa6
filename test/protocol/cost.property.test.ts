// Hostile input for the cost and usage a node reports: whatever bodies, stream events and
// headers say, a reading is a safe non-negative integer or refused with a reason, token
// counts are bounded, and the evidence kept is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { COST_SOURCE_ORDER, headerMsatValue, MAX_REPORTED_TOKENS, ReportReader } from '../../protocol/cost.ts';
import { assertProperty } from '../property.ts';
import { isSafeAmount, numberish } from './arbitraries.ts';

const value = fc.oneof({ weight: 3, arbitrary: numberish }, { weight: 1, arbitrary: fc.anything() });
const costObj = fc.oneof(
  fc.record({ total_msats: value, base_msats: value, input_msats: value, output_msats: value, total_usd: value }, { requiredKeys: [] }),
  value,
);
const usageObj = fc.oneof(
  fc.record({ prompt_tokens: value, completion_tokens: value, input_tokens: value, output_tokens: value, total_tokens: value, cost: costObj, cost_sats: value }, { requiredKeys: [] }),
  value,
);
/** A body or stream event in any of the places routstr versions put usage and cost. */
const bodyArb = fc.oneof(
  fc.record({ usage: usageObj, cost: costObj, metadata: fc.oneof(fc.record({ routstr: fc.oneof(fc.record({ cost: costObj }, { requiredKeys: [] }), value) }, { requiredKeys: [] }), value), response: fc.oneof(fc.record({ usage: usageObj }, { requiredKeys: [] }), value), message: fc.oneof(fc.record({ usage: usageObj }, { requiredKeys: [] }), value) }, { requiredKeys: [] }),
  fc.jsonValue(),
  fc.anything(),
);
const header = fc.oneof(fc.nat().map(String), fc.double().map(String), fc.string(), fc.stringMatching(/^\s*-?\d{0,30}(\.\d{0,5})?\s*$/), fc.constantFrom('1.' + '1'.repeat(16_000) + 'x', '9'.repeat(400)));

test('no reported body, stream event or header ever yields a cost or a token count that is not a safe bounded integer', () => {
  assertProperty(
    fc.property(fc.array(fc.tuple(bodyArb, fc.option(fc.constantFrom('cost', 'message', 'response.completed', ''), { nil: undefined })), { maxLength: 6 }), fc.option(header, { nil: undefined }), (events, h) => {
      const r = new ReportReader();
      for (const [body, event] of events) r.addBody(body, event);
      r.addHeaders((name) => (name === 'x-routstr-cost-msats' ? h : undefined));
      const out = r.result();
      for (const reading of out.readings) assert.ok(isSafeAmount(reading.totalMsat), `reading ${reading.totalMsat}`);
      const sources = out.readings.map((x) => x.source);
      assert.deepEqual(sources, COST_SOURCE_ORDER.filter((s) => sources.includes(s)), 'readings in preference order');
      assert.equal(out.costMsat, out.readings[0]?.totalMsat ?? null);
      assert.equal(out.costSource, out.readings[0]?.source ?? null);
      if (out.usage) {
        for (const n of [out.usage.promptTokens, out.usage.completionTokens]) assert.ok(isSafeAmount(n) && n <= MAX_REPORTED_TOKENS, `tokens ${n}`);
      }
      assert.ok(out.rejected.length <= 32);
      for (const x of out.rejected) assert.ok(x.raw.length <= 64 && typeof x.field === 'string' && typeof x.problem === 'string');
    }),
    { seed: 1321, numRuns: 600 },
  );
});

test('the cost header gives back exactly the decimal integer it carries, and refuses everything else', () => {
  assertProperty(
    fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.nat({ max: 4 }), fc.constantFrom('', ' ', '\t'), (n, zeros, pad) => {
      assert.equal(headerMsatValue(`${pad}${n}${pad}`), n);
      assert.equal(headerMsatValue(`${n}.${'0'.repeat(zeros)}`), n);
      if (n > 0) assert.equal(headerMsatValue(`-${n}`), 'negative');
      assert.equal(headerMsatValue(`${n}.${'0'.repeat(zeros)}5`), 'not_integer');
    }),
    { seed: 1322, numRuns: 300 },
  );
  assertProperty(
    fc.property(header, (h) => {
      const v = headerMsatValue(h);
      if (typeof v === 'number') {
        assert.ok(isSafeAmount(v));
        assert.match(h.trim(), /^\d+(\.0*)?$/);
      }
    }),
    { seed: 1323, numRuns: 300 },
  );
});
