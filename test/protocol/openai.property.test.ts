// Hostile input for a client's request body (HTTP bytes, or a WebSocket message's parsed
// `body`): any bytes, any JSON, any size. A body comes back fit for everything done with it
// before paying (size the reservation, estimate tokens, serialise it for the provider), or a
// RequestBodyError with a stable code - nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkRequestBody, MAX_BODY_DEPTH, PAID_ENDPOINTS, parseRequestBody, RequestBodyError, withUsageRequested, type PaidEndpoint } from '../../protocol/openai.ts';
import { reservationMsatFor, reserveInputOf, type ReserveTerms } from '../../protocol/reservation.ts';
import { promptParts } from '../../protocol/tokens.ts';
import { assertProperty } from '../property.ts';
import { numberish } from './arbitraries.ts';

const CODES = new Set(['too_large', 'invalid_json', 'invalid_body']);
const TERMS: ReserveTerms = { promptSats: 0.00001, completionSats: 0.00003, maxCostSats: 50, maxPromptCostSats: 10, maxCompletionCostSats: 40, topContextLength: 128_000, topMaxCompletionTokens: 16_000 };
const endpointArb = fc.constantFrom(...PAID_ENDPOINTS);
const any = fc.oneof({ weight: 2, arbitrary: numberish }, { weight: 2, arbitrary: fc.string({ maxLength: 20 }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) });
const content = fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.record({ type: fc.constantFrom('text', 'image_url', 'input_image'), text: any, image_url: any }, { requiredKeys: [] }), { maxLength: 3 }), any);
const message = fc.oneof(fc.record({ role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool'), any), content, name: any, tool_calls: any }, { requiredKeys: [] }), any);
/** Bodies close to what each endpoint takes, with every field sometimes of the wrong type. */
const nearBody = fc.record(
  {
    model: fc.oneof(fc.constantFrom('gpt-4o-mini', ''), fc.string({ minLength: 250, maxLength: 260 }), any),
    messages: fc.oneof(fc.array(message, { maxLength: 4 }), any),
    input: fc.oneof(fc.string({ maxLength: 20 }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), fc.array(fc.double(), { maxLength: 3 }), any),
    stream: fc.oneof(fc.boolean(), fc.constant(null), any),
    stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), any) }, { requiredKeys: [] }), any),
    max_tokens: fc.oneof(fc.nat({ max: 200_000_000 }), any),
    max_completion_tokens: fc.oneof(fc.nat(), any),
    max_output_tokens: fc.oneof(fc.nat(), any),
    tools: fc.oneof(fc.array(fc.jsonValue({ maxDepth: 4 }), { maxLength: 2 }), any),
    temperature: any,
    system: any,
    instructions: any,
    prompt: any,
  },
  { requiredKeys: [] },
);
/** The JSON text of a value nested `depth` levels deep in arrays and objects (too deep for JSON.stringify to write). */
const deep = (depth: number, key: string): string => {
  const open: string[] = [];
  const close: string[] = [];
  for (let i = 0; i < depth; i++) {
    open.push(i % 2 ? '[' : `{"${key}":`);
    close.push(i % 2 ? ']' : '}');
  }
  return `${open.join('')}1${close.reverse().join('')}`;
};
const rawArb = fc.oneof(
  { weight: 5, arbitrary: nearBody.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: nearBody.map((b) => JSON.stringify(b)).chain((s) => fc.nat({ max: s.length }).map((n) => s.slice(0, n))) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_BODY_DEPTH - 3, max: 20_000 }).chain((d) => nearBody.map((b) => JSON.stringify({ ...b, tools: null }).replace('"tools":null', `"tools":${deep(d, 'x')}`))) },
);
const bytesArb = fc.oneof(rawArb.map((s) => Buffer.from(s)), fc.uint8Array({ maxLength: 300 }));

/** Everything done with an accepted body before it is paid for. */
function useBody(endpoint: PaidEndpoint, body: Record<string, unknown>): void {
  const sent = JSON.stringify(withUsageRequested(endpoint, body));
  assert.equal(typeof sent, 'string');
  const input = reserveInputOf(body as { messages?: unknown; max_tokens?: unknown });
  const reserved = reservationMsatFor(TERMS, input);
  assert.ok(Number.isSafeInteger(reserved) && reserved >= 1 && reserved <= TERMS.maxCostSats * 1000, `reservation ${reserved} msat`);
  promptParts(body);
  const limits = { '/v1/chat/completions': ['max_tokens', 'max_completion_tokens'], '/v1/responses': ['max_output_tokens'], '/v1/messages': ['max_tokens'], '/v1/embeddings': [] }[endpoint];
  for (const k of limits) {
    const v = body[k];
    assert.ok(v === undefined || v === null || (Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 100_000_000), `${k} = ${String(v)}`);
  }
  assert.ok(typeof body.model === 'string' && body.model.length >= 1 && body.model.length <= 256);
}

function expectOutcome(endpoint: PaidEndpoint, run: () => unknown): void {
  let body: unknown;
  try {
    body = run();
  } catch (err) {
    assert.ok(err instanceof RequestBodyError, `not a RequestBodyError: ${(err as Error)?.stack ?? String(err)}`);
    assert.ok(CODES.has(err.code));
    assert.ok(err.message.length > 0 && err.message.length < 2000);
    return;
  }
  useBody(endpoint, body as Record<string, unknown>);
}

test('any bytes as a request body give a body that can be sized, estimated and sent, or a RequestBodyError', () => {
  assertProperty(
    fc.property(endpointArb, bytesArb, (endpoint, bytes) => {
      expectOutcome(endpoint, () => parseRequestBody(endpoint, bytes));
      expectOutcome(endpoint, () => parseRequestBody(endpoint, bytes.toString()));
    }),
    { seed: 1341, numRuns: 300 },
  );
});

test('any parsed JSON (a WebSocket message body) gives a usable body or a RequestBodyError', () => {
  assertProperty(
    fc.property(endpointArb, fc.oneof(nearBody, fc.anything()), (endpoint, value) => {
      expectOutcome(endpoint, () => checkRequestBody(endpoint, value));
    }),
    { seed: 1342, numRuns: 600 },
  );
});

test('the size limit is exact: a body over it is too_large before it is read, a body within it never is', () => {
  assertProperty(
    fc.property(endpointArb, fc.string({ maxLength: 300 }), fc.nat({ max: 400 }), (endpoint, text, limit) => {
      const size = Buffer.byteLength(text);
      try {
        parseRequestBody(endpoint, text, { maxBytes: limit });
        assert.ok(size <= limit);
      } catch (err) {
        assert.ok(err instanceof RequestBodyError);
        assert.equal(err.code === 'too_large', size > limit);
      }
    }),
    { seed: 1343, numRuns: 400 },
  );
});

test('a body nested deeper than the limit is refused as invalid_body; one at the limit is read', () => {
  const chat = (tools: string) => `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[${tools}]}`;
  // the body (1), its tools array (2), then the deep value: MAX_BODY_DEPTH - 2 more levels fit.
  assert.ok(parseRequestBody('/v1/chat/completions', chat(deep(MAX_BODY_DEPTH - 2, 'p'))));
  for (const depth of [MAX_BODY_DEPTH - 1, 10_000, 100_000]) {
    assert.throws(() => parseRequestBody('/v1/chat/completions', chat(deep(depth, 'p'))), (err: unknown) => err instanceof RequestBodyError && err.code === 'invalid_body');
  }
});
