import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseNodeJson } from '../../protocol/json.ts';

test("Python's bare NaN and infinities are read as those numbers, so the rest of the answer survives", () => {
  const text = '{"choices": [{"message": {"content": "NaN is not Infinity"}}], "usage": {"prompt_tokens": NaN, "completion_tokens": Infinity, "cost": {"total_msats": -Infinity}}}';
  const v = parseNodeJson(text) as { choices: { message: { content: string } }[]; usage: Record<string, unknown> & { cost: { total_msats: number } } };
  assert.equal(v.choices[0].message.content, 'NaN is not Infinity', 'strings are left alone');
  assert.ok(Number.isNaN(v.usage.prompt_tokens));
  assert.equal(v.usage.completion_tokens, Number.POSITIVE_INFINITY);
  assert.equal(v.usage.cost.total_msats, Number.NEGATIVE_INFINITY);
  assert.deepEqual(parseNodeJson('[NaN, "a\\"NaN", -5, -Infinity]'), [Number.NaN, 'a"NaN', -5, Number.NEGATIVE_INFINITY]);
});

test('what is not JSON even so is refused, and standard JSON reads exactly as JSON.parse does', () => {
  for (const bad of ['', 'NaNa', '{"a": nan}', '{"a": NaN', 'upstream said <html>', '{"a": Infinityy}']) assert.equal(parseNodeJson(bad), undefined, bad);
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const text = JSON.stringify(v);
      assert.deepEqual(parseNodeJson(text), JSON.parse(text));
    }),
    { numRuns: 300 },
  );
});

test('a key named __proto__ holding a bare NaN stays a plain property', () => {
  const v = parseNodeJson('{"__proto__": NaN, "a": 1}') as Record<string, unknown>;
  assert.ok(Object.prototype.hasOwnProperty.call(v, '__proto__'));
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.equal(v.a, 1);
});
