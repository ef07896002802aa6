import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { countValue, headerMsatValue, readReported, ReportReader } from '../../protocol/cost.ts';

const COST = { base_msats: 0, input_msats: 120, output_msats: 281, total_msats: 401, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, cache_read_msats: 0, cache_creation_msats: 0 };
const headers = (h: Record<string, string>) => (name: string) => h[name];

test('the cost comes from usage.cost.total_msats, never from cost_sats which rounds down', () => {
  // upstream/base.py _inject_cost_into_usage: usage["cost"] = cost_obj; usage["cost_sats"] = total_msats // 1000
  const r = readReported({ usage: { prompt_tokens: 12, completion_tokens: 14, total_tokens: 26, cost: COST, cost_sats: 0 } });
  assert.equal(r.costMsat, 401);
  assert.equal(r.costSource, 'usage.cost');
  assert.deepEqual(r.usage, { promptTokens: 12, completionTokens: 14 });
  assert.deepEqual(r.rejected, []);
});

test("an older node's top-level cost or metadata.routstr.cost is read when usage carries none", () => {
  // v0.2.2 upstream/base.py: response_json["cost"] = cost_data
  assert.equal(readReported({ usage: { prompt_tokens: 1, completion_tokens: 2 }, cost: COST }).costSource, 'cost');
  // inject_cost_metadata: response_json["metadata"]["routstr"] = {"cost": cost_dict, "sats_cost": ...}
  const r = readReported({ metadata: { routstr: { cost: COST, sats_cost: 0 } } });
  assert.equal(r.costMsat, 401);
  assert.equal(r.costSource, 'metadata.routstr.cost');
});

test('the X-Routstr-Cost-Msats header is a reading too, and disagreeing readings are all kept', () => {
  const r = readReported({ usage: { prompt_tokens: 1, completion_tokens: 1, cost: COST } }, headers({ 'x-routstr-cost-msats': '999' }));
  assert.equal(r.costMsat, 401);
  assert.deepEqual(r.readings, [
    { source: 'usage.cost', totalMsat: 401 },
    { source: 'header', totalMsat: 999 },
  ]);
  const onlyHeader = readReported({ choices: [] }, headers({ 'x-routstr-cost-msats': '1500' }));
  assert.equal(onlyHeader.costMsat, 1500);
  assert.equal(onlyHeader.costSource, 'header');
  assert.equal(onlyHeader.usage, null);
});

test('negative, fractional, string, NaN-like and huge costs are refused with a reason, never used', () => {
  const cases: [unknown, string][] = [
    [-5, 'negative'],
    [1.5, 'not_integer'],
    ['401', 'string'],
    [1e300, 'too_large'],
    [null, 'missing'],
    [true, 'not_a_number'],
  ];
  for (const [value, problem] of cases) {
    const r = readReported({ usage: { prompt_tokens: 1, completion_tokens: 1, cost: { ...COST, total_msats: value } } });
    assert.equal(r.costMsat, null, String(value));
    assert.deepEqual(r.rejected.map((x) => [x.field, x.problem]), [['usage.cost.total_msats', problem]]);
  }
  const h = readReported({}, headers({ 'x-routstr-cost-msats': 'NaN' }));
  assert.equal(h.costMsat, null);
  assert.deepEqual(h.rejected[0], { field: 'X-Routstr-Cost-Msats', problem: 'not_a_number', raw: 'NaN' });
});

test("OpenRouter's USD cost number passed through in usage.cost is not mistaken for msat", () => {
  const r = readReported({ usage: { prompt_tokens: 10, completion_tokens: 5, cost: 0.00012 } });
  assert.equal(r.costMsat, null);
  assert.equal(r.rejected[0].problem, 'bare_number');
  assert.deepEqual(r.usage, { promptTokens: 10, completionTokens: 5 });
});

test('token counts must be safe non-negative integers', () => {
  const r = readReported({ usage: { prompt_tokens: -1, completion_tokens: '7' } });
  assert.equal(r.usage, null);
  assert.deepEqual(r.rejected.map((x) => x.problem), ['negative', 'string']);
  const half = readReported({ usage: { prompt_tokens: 3, completion_tokens: 2.5 } });
  assert.deepEqual(half.usage, { promptTokens: 3, completionTokens: 0 });
  assert.equal(half.rejected[0].problem, 'not_integer');
});

test('embeddings usage has no completion tokens; Responses and Anthropic say input/output tokens', () => {
  assert.deepEqual(readReported({ usage: { prompt_tokens: 9, total_tokens: 9 } }).usage, { promptTokens: 9, completionTokens: 0 });
  assert.deepEqual(readReported({ object: 'response', usage: { input_tokens: 4, output_tokens: 6, total_tokens: 10 } }).usage, { promptTokens: 4, completionTokens: 6 });
});

test('a stream: usage null until the last chunk, the cost in the usage line, a Responses completed event, an Anthropic split usage', () => {
  const chat = new ReportReader();
  chat.addBody({ choices: [{ delta: { content: 'hi' } }], usage: null });
  chat.addBody({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 3, cost: COST } });
  assert.deepEqual(chat.result().usage, { promptTokens: 5, completionTokens: 3 });
  assert.equal(chat.result().costMsat, 401);
  assert.deepEqual(chat.result().rejected, []);

  const responses = new ReportReader();
  responses.addBody({ type: 'response.completed', response: { usage: { input_tokens: 7, output_tokens: 8, cost: COST } } });
  assert.deepEqual(responses.result().usage, { promptTokens: 7, completionTokens: 8 });
  assert.equal(responses.result().costMsat, 401);

  // Anthropic: message_start carries input_tokens, message_delta the final output_tokens.
  const messages = new ReportReader();
  messages.addBody({ type: 'message_start', message: { usage: { input_tokens: 25, output_tokens: 1 } } });
  messages.addBody({ type: 'message_delta', usage: { output_tokens: 15 } });
  assert.deepEqual(messages.result().usage, { promptTokens: 25, completionTokens: 15 });
});

test("the balance mode's `event: cost` message is read as its own source", () => {
  // upstream/base.py: f"event: cost\ndata: {json.dumps({'cost': cost_data})}\n\n"
  const r = new ReportReader();
  r.addBody({ cost: COST }, 'cost');
  assert.equal(r.result().costSource, 'event:cost');
  assert.equal(r.result().costMsat, 401);
});

test('the header parser accepts only decimal digits', () => {
  assert.equal(headerMsatValue('401'), 401);
  assert.equal(headerMsatValue(' 401 '), 401);
  assert.equal(headerMsatValue('401.0'), 401);
  assert.equal(headerMsatValue('401.5'), 'not_integer');
  assert.equal(headerMsatValue('-3'), 'negative');
  assert.equal(headerMsatValue('0x10'), 'not_a_number');
  assert.equal(headerMsatValue('1e3'), 'not_a_number');
  assert.equal(headerMsatValue('99999999999999999999'), 'too_large');
});

test('no value that is not a safe non-negative integer ever becomes a cost or a token count', () => {
  fc.assert(
    fc.property(fc.anything(), fc.anything(), fc.string(), (cost, tokens, header) => {
      const r = readReported({ usage: { prompt_tokens: tokens, completion_tokens: tokens, cost: { total_msats: cost } }, cost, metadata: { routstr: { cost } } }, headers({ 'x-routstr-cost-msats': header }));
      for (const reading of r.readings) assert.ok(Number.isSafeInteger(reading.totalMsat) && reading.totalMsat >= 0);
      if (r.usage) {
        assert.ok(Number.isSafeInteger(r.usage.promptTokens) && r.usage.promptTokens >= 0);
        assert.ok(Number.isSafeInteger(r.usage.completionTokens) && r.usage.completionTokens >= 0);
      }
    }),
    { numRuns: 500, seed: 1324 },
  );
  assert.equal(countValue(Number.NaN), 'not_a_number');
  assert.equal(countValue(Number.POSITIVE_INFINITY), 'too_large');
});
