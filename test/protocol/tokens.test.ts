import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { PromptTokenizer, promptParts } from '../../protocol/tokens.ts';

const chat = (...contents: string[]) => ({ model: 'm', messages: contents.map((content) => ({ role: 'user', content })) });

test('short prompts are counted by the real tokenizer, with OpenAI chat framing', async () => {
  const t = new PromptTokenizer();
  assert.equal(t.estimate(chat('Hello there, how are you?')).exact, false, 'estimated until the tokenizer is loaded');
  await t.load();
  assert.equal(t.loaded, true);
  const text = 'What is the capital of France? Answer briefly, please.';
  const e = t.estimate(chat(text, 'And of Italy?'));
  assert.equal(e.exact, true);
  assert.equal(e.tokens, countTokens(text) + countTokens('And of Italy?') + 2 * 3 + 3);
});

test('long prompts are estimated from characters, calibrated by the exact counts made before', async () => {
  const t = new PromptTokenizer({ maxExactChars: 1000 });
  await t.load();
  const sample = 'The quick brown fox jumps over the lazy dog, again and again. ';
  for (let i = 0; i < 20; i++) t.estimate(chat(sample.repeat(10)));
  const perToken = sample.repeat(10).length / countTokens(sample.repeat(10));
  assert.ok(Math.abs(t.charsPerToken - perToken) < 0.01, `${t.charsPerToken} ~ ${perToken}`);
  const long = sample.repeat(200);
  const e = t.estimate(chat(long));
  assert.equal(e.exact, false);
  const truth = countTokens(long) + 6;
  assert.ok(Math.abs(e.tokens - truth) / truth < 0.02, `${e.tokens} vs ${truth}`);
});

test('the prompt text of chat, tool calls, embeddings and responses bodies is found', () => {
  assert.deepEqual(promptParts({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: { url: 'x' } }] }, { role: 'assistant', content: null, tool_calls: [{ function: { name: 'f', arguments: '{"x":1}' } }] }] }), { parts: ['a', 'f', '{"x":1}'], messages: 2 });
  assert.deepEqual(promptParts({ input: ['one', 'two'] }).parts, ['one', 'two']);
  assert.deepEqual(promptParts({ input: 'text' }).parts, ['text']);
  assert.deepEqual(promptParts({ instructions: 'sys', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }] }), { parts: ['sys', 'hi'], messages: 1 });
  assert.deepEqual(promptParts(null), { parts: [], messages: 0 });
});

test('a text counted before is not counted again, and the counts stay the tokenizer\'s', async () => {
  let calls = 0;
  const t = new PromptTokenizer({ countTokens: (text) => (calls++, countTokens(text)) });
  const system = 'You are a careful assistant. Answer in one sentence.';
  const turns = ['What is the capital of France?', 'Paris.', 'And of Italy?'];
  for (let i = 1; i <= turns.length; i++) {
    const e = t.estimate(chat(system, ...turns.slice(0, i)));
    const truth = [system, ...turns.slice(0, i)].reduce((a, s) => a + countTokens(s), 0) + (i + 1) * 3 + 3;
    assert.equal(e.tokens, truth, `turn ${i}`);
  }
  assert.equal(calls, 1 + turns.length, 'each text counted once across the conversation');
  // Many other texts later, the first ones are forgotten (memory stays bounded) and counted again, still right.
  for (let i = 0; i < 300; i++) t.estimate(chat(`filler ${i}`));
  const before = calls;
  assert.equal(t.estimate(chat(system)).tokens, countTokens(system) + 3 + 3);
  assert.equal(calls, before + 1);
});
