// Every paid route of routstr-core v0.4.5 in X-Cashu mode: the OpenAI Responses API and the
// Anthropic Messages API, in their own request and response shapes, as the node forwards them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requiredMsat } from '../provider.ts';
import { CHAT, market, post, provider, QUESTION, refund, type ErrorBody } from './fixture.ts';

const responsesBody = (over: Record<string, unknown> = {}) => ({ model: CHAT.id, instructions: 'Be brief.', input: [{ role: 'user', content: [{ type: 'input_text', text: QUESTION }] }], ...over });
const messagesBody = (over: Record<string, unknown> = {}) => ({ model: CHAT.id, max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: QUESTION }], ...over });
const reply = `sim-a heard: ${QUESTION}`;
// Tokens are characters / 4, rounded up: instructions/system plus the user text; the reply.
const inputTokens = Math.ceil(('Be brief.'.length + QUESTION.length) / 4);
const outputTokens = Math.ceil(reply.length / 4);
const costMsat = inputTokens * 10 + outputTokens * 20;

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cost: { total_msats: number };
  cost_sats: number;
}

test('a Responses request reserves (nearly) the whole max_cost: it has no messages and max_output_tokens is not read', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const token = await payer.token(20);
  const res = await post(p, '/v1/responses', token, responsesBody({ max_output_tokens: 50 }));
  assert.equal(res.status, 402);
  assert.equal(((await res.json()) as { detail: { amount_required_msat: number } }).detail.amount_required_msat, requiredMsat(CHAT, {}));
  assert.equal(await payer.redeem(token), 20);
});

test('/v1/responses answers in the Responses shape, with the cost in usage and the change in X-Cashu', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const res = await post(p, '/v1/responses', await payer.token(93), responsesBody());
  assert.equal(res.status, 200);
  const body = (await res.json()) as { object: string; status: string; output: { type: string; content: { type: string; text: string }[] }[]; usage: Usage; provider: string };
  assert.equal(body.object, 'response');
  assert.equal(body.status, 'completed');
  assert.equal(body.output[0].content[0].type, 'output_text');
  assert.equal(body.output[0].content[0].text, reply);
  assert.equal(body.usage.input_tokens, inputTokens);
  assert.equal(body.usage.output_tokens, outputTokens);
  assert.equal(body.usage.cost.total_msats, costMsat);
  assert.equal(body.provider, 'sim-a');
  assert.equal(await payer.redeem(res.headers.get('x-cashu')!), 93 - Math.ceil(costMsat / 1000));
});

test('a streamed /v1/responses keeps the whole token (v0.4.5 finds no usage): no change, no cost, and the refund stays pending', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const token = await payer.token(93);
  const res = await post(p, '/v1/responses', token, responsesBody({ stream: true }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-cashu'), null);
  assert.equal(res.headers.get('x-routstr-cost-msats'), null);
  const text = await res.text();
  assert.ok(text.startsWith('event: response.created\ndata: '));
  assert.ok(text.includes('event: response.completed'), 'the stream itself is intact');
  assert.ok(text.endsWith('}\\n'), 'ends with a literal backslash-n, not a newline');
  assert.equal(p.stats().earnedMsat, 93_000);
  assert.equal((await refund(p, token)).status, 425, 'no refund was ever minted');
});

test('/v1/messages answers in the Anthropic shape, the cost added to its usage', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const res = await post(p, '/v1/messages', await payer.token(10), messagesBody());
  assert.equal(res.status, 200);
  const body = (await res.json()) as { type: string; role: string; content: { type: string; text: string }[]; stop_reason: string; usage: Usage & Record<string, number> };
  assert.equal(body.type, 'message');
  assert.equal(body.role, 'assistant');
  assert.deepEqual(body.content, [{ type: 'text', text: reply }]);
  assert.equal(body.stop_reason, 'end_turn');
  assert.equal(body.usage.input_tokens, inputTokens);
  assert.equal(body.usage.output_tokens, outputTokens);
  assert.equal(body.usage.cache_read_input_tokens, 0);
  assert.equal(body.usage.cost.total_msats, costMsat);
  assert.equal(res.headers.get('x-routstr-cost-msats'), String(costMsat));
  assert.equal(await payer.redeem(res.headers.get('x-cashu')!), 10 - Math.ceil(costMsat / 1000));
});

test('a streamed /v1/messages is replayed as Anthropic events after the change header, the cost in message_delta', async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const res = await post(p, '/v1/messages', await payer.token(10), messagesBody({ stream: true }));
  assert.equal(res.status, 200);
  const change = res.headers.get('x-cashu')!;
  const lines = (await res.text()).split('\n');
  const events = lines.filter((l) => l.startsWith('event: ')).map((l) => l.slice(7));
  assert.deepEqual([events[0], events.at(-2), events.at(-1)], ['message_start', 'message_delta', 'message_stop']);
  const data = lines.filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { type: string; provider: string; usage?: Usage; delta?: { text?: string } });
  assert.ok(data.every((d) => d.provider === 'sim-a'), 'the node stamps provider on every event');
  const delta = data.find((d) => d.type === 'message_delta')!;
  assert.equal(delta.usage!.cost.total_msats, costMsat);
  assert.equal(data.map((d) => d.delta?.text ?? '').join(''), reply);
  assert.equal(await payer.redeem(change), 10 - Math.ceil(costMsat / 1000));
});

test("/v1/messages without max_tokens: Anthropic's 400 comes back after redemption, with a full refund", async (t) => {
  const { payer } = await market(t);
  const p = await provider(t, [payer.mint.url]);
  const token = await payer.token(93);
  const res = await post(p, '/v1/messages', token, messagesBody({ max_tokens: undefined }));
  assert.equal(res.status, 400);
  const body = (await res.json()) as ErrorBody;
  assert.equal(body.error.type, 'upstream_error');
  assert.ok(payer.isSpent(token));
  assert.equal(await payer.redeem(body.error.refund_token!), 93);
});
