// fast-check arbitraries for what hostile providers send: numbers in every spelling JSON and
// Python allow, near-miss shapes of the real /v1/models entries, and plain junk.
import fc from 'fast-check';

/** Numbers and number-like values a provider might put where a price or a count belongs. */
export const numberish: fc.Arbitrary<unknown> = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.nat(),
  fc.double({ min: 0, max: 1, noNaN: true }),
  fc.constantFrom(0, -0, 1e-300, 5e-324, 1e21, 1e300, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 2 ** 64, -1, -1e-9, 0.1 + 0.2, 9000, 1e15),
  fc.double().map(String),
  fc.constantFrom('1e400', '-0', ' 5 ', 'NaN', 'Infinity', '', '0x10', '1_000', '1e-7', '.5', '5.', '+3', '--1', '١٢٣', '0.00001 '),
  fc.constantFrom(null, true, false, [], {}, [1], { value: 1 }),
);

/** A value that is sometimes numberish and sometimes anything at all. */
export const priceValue = fc.oneof({ weight: 4, arbitrary: numberish }, { weight: 1, arbitrary: fc.anything() });

const priceKeys = ['prompt', 'completion', 'request', 'image', 'web_search', 'internal_reasoning', 'input_cache_read', 'input_cache_write', 'max_prompt_cost', 'max_completion_cost', 'max_cost'] as const;

/** A `pricing` / `sats_pricing` object with any of the real keys, each any value. */
export const pricingArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.record(Object.fromEntries(priceKeys.map((k) => [k, priceValue])) as Record<(typeof priceKeys)[number], fc.Arbitrary<unknown>>, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.anything() },
);

/** A /v1/models entry: the real field names with values of any shape. */
export const modelArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record(
      {
        id: fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('gpt-x', ''), fc.string({ minLength: 500, maxLength: 600 }), fc.anything()),
        name: fc.oneof(fc.string(), fc.anything()),
        context_length: numberish,
        alias_ids: fc.oneof(fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.constant('gpt-x')), { maxLength: 4 }), fc.anything()),
        enabled: fc.oneof(fc.boolean(), fc.anything()),
        sats_pricing: pricingArb,
        pricing: pricingArb,
        top_provider: fc.oneof(fc.record({ context_length: numberish, max_completion_tokens: numberish }, { requiredKeys: [] }), fc.anything()),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.anything() },
);

/** A /v1/models body: the real `{"data": [...]}`, a bare list, or junk. */
export const modelsBodyArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ data: fc.array(modelArb, { maxLength: 6 }) }) },
  { weight: 1, arbitrary: fc.array(modelArb, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.record({ data: fc.anything() }) },
  { weight: 1, arbitrary: fc.jsonValue() },
);

/** A /v1/info body with the real keys, any values. */
export const infoBodyArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record(
      {
        name: fc.oneof(fc.string(), fc.string({ minLength: 5000, maxLength: 5001 }), fc.anything()),
        description: fc.oneof(fc.string(), fc.anything()),
        version: fc.oneof(fc.constantFrom('0.4.5', '0.1.0'), fc.anything()),
        npub: fc.anything(),
        mints: fc.oneof(fc.array(fc.oneof(fc.webUrl(), fc.string(), fc.constantFrom('https://mint.example.com/', 'ftp://x', 'javascript:alert(1)', 'http://u:p@h')), { maxLength: 5 }), fc.anything()),
        http_url: fc.oneof(fc.webUrl(), fc.anything()),
        onion_url: fc.oneof(fc.constant(null), fc.anything()),
        child_key_cost_msats: numberish,
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue() },
);

/** A body as bytes: the JSON of a value, that JSON cut short, or raw bytes. */
export function bodyBytes(value: fc.Arbitrary<unknown>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 6, arbitrary: value.map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
    { weight: 1, arbitrary: fc.tuple(value, fc.nat()).map(([v, n]) => { const s = Buffer.from(JSON.stringify(v) ?? ''); return s.subarray(0, s.length ? n % s.length : 0); }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
  );
}

/** Whether a value is what every money figure must be. */
export const isSafeAmount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && !Object.is(v, -0);
