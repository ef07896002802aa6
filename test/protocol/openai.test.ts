import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  answerShapeProblem,
  checkRequestBody,
  chunkShapeProblem,
  isPaidEndpoint,
  parseRequestBody,
  RequestBodyError,
  withUsageRequested,
} from '../../protocol/openai.ts';

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };

function refused(fn: () => unknown, code: string, path?: string) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RequestBodyError);
    assert.equal(err.code, code);
    if (path !== undefined) assert.equal(err.path, path);
    return true;
  });
}

test('a chat body with fields satroute does not know keeps them all, to pass on to the provider', () => {
  const body = parseRequestBody('/v1/chat/completions', JSON.stringify({ ...chat, temperature: 0.2, tools: [{ type: 'function' }], messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }], name: 'x' }] }));
  assert.equal(body.model, 'gpt-4o-mini');
  assert.equal((body as Record<string, unknown>).temperature, 0.2);
  assert.deepEqual((body as Record<string, unknown>).tools, [{ type: 'function' }]);
  assert.deepEqual((body as { messages: unknown[] }).messages[0], { role: 'user', content: [{ type: 'text', text: 'hi' }], name: 'x' });
});

test('a body the node would refuse after we paid is refused before: no model, no messages, a non-integer max_tokens', () => {
  refused(() => checkRequestBody('/v1/chat/completions', { messages: chat.messages }), 'invalid_body', 'model');
  refused(() => checkRequestBody('/v1/chat/completions', { model: 'm', messages: [] }), 'invalid_body', 'messages');
  refused(() => checkRequestBody('/v1/chat/completions', { ...chat, max_tokens: 10.5 }), 'invalid_body', 'max_tokens');
  refused(() => checkRequestBody('/v1/chat/completions', { ...chat, max_tokens: '10' }), 'invalid_body', 'max_tokens');
  refused(() => checkRequestBody('/v1/chat/completions', { ...chat, stream: 'yes' }), 'invalid_body', 'stream');
  refused(() => checkRequestBody('/v1/chat/completions', [chat]), 'invalid_body');
  assert.equal(checkRequestBody('/v1/chat/completions', { ...chat, max_tokens: null }).model, 'gpt-4o-mini');
});

test('bodies that are not JSON or are too big are refused with their own codes', () => {
  refused(() => parseRequestBody('/v1/chat/completions', '{"model":'), 'invalid_json');
  refused(() => parseRequestBody('/v1/chat/completions', JSON.stringify({ ...chat, pad: 'x'.repeat(2000) }), { maxBytes: 1000 }), 'too_large');
  assert.equal(parseRequestBody('/v1/chat/completions', new TextEncoder().encode(JSON.stringify(chat))).model, 'gpt-4o-mini');
});

test('embeddings, responses and messages bodies are checked by their own shapes', () => {
  assert.equal(checkRequestBody('/v1/embeddings', { model: 'e', input: ['a', 'b'] }).model, 'e');
  assert.equal(checkRequestBody('/v1/embeddings', { model: 'e', input: [[1, 2]] }).model, 'e');
  refused(() => checkRequestBody('/v1/embeddings', { model: 'e' }), 'invalid_body', 'input');
  assert.equal(checkRequestBody('/v1/responses', { model: 'r', input: 'hi', max_output_tokens: 5 }).model, 'r');
  refused(() => checkRequestBody('/v1/messages', { model: 'c', messages: chat.messages }), 'invalid_body', 'max_tokens');
  assert.ok(isPaidEndpoint('/v1/responses'));
  assert.ok(!isPaidEndpoint('/v1/models'));
});

test('a streamed chat always asks for usage, keeping other stream options; other requests are untouched', () => {
  assert.deepEqual(withUsageRequested('/v1/chat/completions', { ...chat, stream: true }), { ...chat, stream: true, stream_options: { include_usage: true } });
  assert.deepEqual(withUsageRequested('/v1/chat/completions', { ...chat, stream: true, stream_options: { include_usage: false, x: 1 } }).stream_options, { include_usage: true, x: 1 });
  const plain = { ...chat };
  assert.equal(withUsageRequested('/v1/chat/completions', plain), plain);
  const resp = { model: 'r', input: 'hi', stream: true };
  assert.equal(withUsageRequested('/v1/responses', resp), resp);
});

test('a 200 answer is checked for the field its endpoint depends on', () => {
  assert.equal(answerShapeProblem('/v1/chat/completions', { choices: [], extra: 1 }), null);
  assert.match(answerShapeProblem('/v1/chat/completions', { object: 'chat.completion' }) ?? '', /choices/);
  assert.equal(answerShapeProblem('/v1/embeddings', { data: [{ embedding: [0.1] }] }), null);
  assert.equal(answerShapeProblem('/v1/responses', { object: 'response', output: [] }), null);
  assert.equal(answerShapeProblem('/v1/messages', { type: 'message', content: [] }), null);
});

test('a stream chunk is told apart from JSON of another shape, per endpoint', () => {
  assert.equal(chunkShapeProblem('/v1/chat/completions', { choices: [] }), null, 'the usage chunk has an empty choices list');
  assert.equal(chunkShapeProblem('/v1/chat/completions', { usage: {} }), 'choices: not an array');
  assert.equal(chunkShapeProblem('/v1/chat/completions', { choices: {} }), 'choices: not an array');
  for (const v of [[{ choices: [] }], 'text', 7, null]) assert.equal(chunkShapeProblem('/v1/chat/completions', v), 'not an object');
  assert.equal(chunkShapeProblem('/v1/messages', { type: 'ping' }), null);
  assert.equal(chunkShapeProblem('/v1/responses', { sequence_number: 1 }), 'type: not a string');
});
