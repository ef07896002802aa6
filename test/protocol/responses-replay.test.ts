// A finished Responses object replayed as OpenAI's streaming events: what the official client
// accumulates from them is the answer itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { responseStreamEvents } from '../../protocol/responses-replay.ts';

const answer = {
  id: 'resp_1', object: 'response', created_at: 1, status: 'completed', model: 'm', usage: { input_tokens: 3, output_tokens: 5, total_tokens: 8 },
  output: [
    { type: 'reasoning', id: 'rs_1', summary: [] },
    { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hello there', annotations: [] }, { type: 'refusal', refusal: 'no' }] },
    { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'f', arguments: '{"a":1}', status: 'completed' },
  ],
};

test('a replayed answer streams in OpenAI\'s order, numbered, and its deltas add up to the answer', () => {
  const events = responseStreamEvents(answer);
  assert.deepEqual(events.map((e) => e.event), [
    'response.created', 'response.in_progress',
    'response.output_item.added', 'response.output_item.done',
    'response.output_item.added',
    'response.content_part.added', 'response.output_text.delta', 'response.output_text.done', 'response.content_part.done',
    'response.content_part.added', 'response.refusal.delta', 'response.refusal.done', 'response.content_part.done',
    'response.output_item.done',
    'response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done',
    'response.completed',
  ]);
  assert.deepEqual(events.map((e) => e.data.sequence_number), events.map((_, i) => i));
  assert.ok(events.every((e) => e.data.type === e.event));
  const created = events[0].data.response as { status: string; output: unknown[]; usage: unknown };
  assert.deepEqual([created.status, created.output, created.usage], ['in_progress', [], null]);
  const delta = events.find((e) => e.event === 'response.output_text.delta')!.data;
  assert.deepEqual([delta.item_id, delta.output_index, delta.content_index, delta.delta], ['msg_1', 1, 0, 'Hello there']);
  assert.equal(events.find((e) => e.event === 'response.function_call_arguments.delta')!.data.delta, '{"a":1}');
  assert.deepEqual(events.at(-1)!.data.response, answer, 'the last event carries the whole answer, usage included');
});

test('an answer cut short by max_output_tokens ends with response.incomplete', () => {
  const events = responseStreamEvents({ ...answer, status: 'incomplete', output: [] });
  assert.deepEqual(events.map((e) => e.event), ['response.created', 'response.in_progress', 'response.incomplete']);
});
