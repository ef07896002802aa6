import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { chargeMsat, createProviderState, requiredMsat } from '../provider.ts';
import { keyHashOf } from './balance-auth.ts';
import {
  CHAT,
  chat,
  createKey,
  detail,
  EMBED,
  eventually,
  frames,
  Gate,
  info,
  provider,
  QUESTION,
  refund,
  startClient,
  TINY,
  tokensFor,
  type Client,
} from './balance-fixture.ts';

let client: Client;
before(async () => {
  client = await startClient();
});
after(() => client?.stop());

const body = { model: CHAT.id, messages: [{ role: 'user', content: QUESTION }], max_tokens: 100 };
const RESERVE = requiredMsat(CHAT, body);
const T = tokensFor('sim-b');
const COST = chargeMsat(CHAT, T.prompt, T.completion, 0.001).totalMsat;

describe('paying from a balance (Bearer sk-...)', () => {
  test('a chat request is charged tokens x price from the balance and reports the cost and what is left', async (t) => {
    const p = await provider(t, client);
    const key = await createKey(p, await client.pay(20));
    assert.equal(key.balance, 20_000);
    const res = await chat(p, key.api_key);
    assert.equal(res.status, 200);
    const raw = await res.text();
    assert.match(raw, /"usage": \{"prompt_tokens": /, 'the node re-serialises with json.dumps spacing');
    const out = JSON.parse(raw) as { usage: Record<string, unknown>; metadata: { routstr: { cost: Record<string, number> } }; cost: Record<string, number>; provider: string };
    assert.equal(out.usage.prompt_tokens, T.prompt);
    assert.equal(out.usage.completion_tokens, T.completion);
    assert.equal((out.usage.cost as { total_msats: number }).total_msats, COST);
    assert.equal(out.usage.remaining_balance_msats, 20_000 - COST);
    assert.equal(out.metadata.routstr.cost.total_msats, COST);
    assert.equal(out.cost.sats_cost, Math.floor(COST / 1000));
    assert.equal(res.headers.get('x-routstr-cost-msats'), String(COST));
    assert.equal(res.headers.get('x-cashu'), null, 'no change header in the balance mode');
    assert.deepEqual(await info(p, key.api_key), {
      api_key: key.api_key,
      balance: 20_000 - COST,
      reserved: 0,
      is_child: false,
      total_requests: 1,
      total_spent: COST,
      balance_limit: null,
      balance_limit_reset: null,
      validity_date: null,
    });
  });

  test('a cashu token as the bearer becomes a balance keyed sk-sha256(token), used again on the next request', async (t) => {
    const p = await provider(t, client);
    const token = await client.pay(10);
    assert.equal((await chat(p, token)).status, 200);
    assert.equal((await chat(p, token)).status, 200, 'the same token is the same key, not a spent token');
    const apiKey = `sk-${keyHashOf(token)}`;
    const i = await info(p, apiKey);
    assert.equal(i.balance, 10_000 - 2 * COST);
    assert.equal(i.total_requests, 2);
    assert.ok(client.mint.isSpent(client.sats.decodeToken(token).proofs[0].secret), 'the token was swapped at the mint');
    assert.equal((await createKey(p, token)).api_key, apiKey, 'create with the same token finds the same key');
  });

  test('too small a balance gets the insufficient_quota 402 and nothing is reserved', async (t) => {
    const p = await provider(t, client);
    const key = await createKey(p, await client.pay(2));
    const res = await chat(p, key.api_key, { max_tokens: 1000 });
    assert.equal(res.status, 402);
    const need = requiredMsat(CHAT, { ...body, max_tokens: 1000 });
    const fmt = (m: number) => `${(m / 1000).toFixed(3).replace(/0+$/, '').replace(/\.$/, '')} sats (${m} msats)`;
    assert.deepEqual(await detail(res), {
      error: { message: `Insufficient balance: ${fmt(need)} required for this model; 2 sats (2000 msats) available.`, type: 'insufficient_quota', code: 'insufficient_balance' },
    });
    const i = await info(p, key.api_key);
    assert.deepEqual([i.balance, i.reserved, i.total_requests], [2000, 0, 0]);
  });

  test('a new cashu bearer too small for the model is still redeemed into a key, then refused with 402', async (t) => {
    const p = await provider(t, client);
    const token = await client.pay(1);
    const res = await chat(p, token);
    assert.equal(res.status, 402);
    assert.match(((await detail(res)) as { error: { message: string } }).error.message, new RegExp(`^Insufficient balance: ${RESERVE} mSats required\\. 1000 available\\. \\(reserved: 0\\)$`));
    assert.equal((await info(p, `sk-${keyHashOf(token)}`)).balance, 1000);
  });

  test('an unknown sk- key is refused with 401 invalid_api_key', async (t) => {
    const p = await provider(t, client);
    const res = await chat(p, `sk-${'0'.repeat(64)}`);
    assert.equal(res.status, 401);
    assert.equal(((await detail(res)) as { error: { code: string } }).error.code, 'invalid_api_key');
  });

  test('20 concurrent requests against one balance never overdraw it', async (t) => {
    const gate = new Gate();
    const state = createProviderState();
    const p = await provider(t, client, { delay: gate.delay, state, knobs: { ttfbMs: 1 } });
    const key = await createKey(p, await client.pay(12));
    const fits = Math.floor(12_000 / RESERVE);
    assert.ok(fits >= 2 && fits < 20, `the balance covers ${fits} reservations`);
    let refused = 0;
    const calls = Array.from({ length: 20 }, (_, i) =>
      chat(p, key.api_key, { stream: i % 2 === 0 }).then(async (res) => {
        if (res.status === 402) refused += 1;
        return { status: res.status, text: await res.text() };
      }),
    );
    await eventually(() => gate.pending + refused === 20, 'every request reserved or refused');
    assert.equal(gate.pending, fits, 'exactly as many requests as the balance covers were admitted');
    const held = await info(p, key.api_key);
    assert.deepEqual([held.balance, held.reserved], [12_000 - fits * RESERVE, fits * RESERVE]);
    gate.open();
    const results = await Promise.all(calls);
    assert.equal(results.filter((r) => r.status === 200).length, fits);
    const end = await info(p, key.api_key);
    assert.deepEqual([end.balance, end.reserved, end.total_requests, end.total_spent], [12_000 - fits * COST, 0, fits, fits * COST]);
    assert.ok(state.balances.all().every((k) => k.balanceMsat >= 0 && k.reservedMsat === 0));
  });

  test('embeddings are paid from the balance; a model without a completion price bills its reservation', async (t) => {
    const p = await provider(t, client);
    const key = await createKey(p, await client.pay(5));
    const res = await fetch(`${p.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${key.api_key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: EMBED.id, input: ['hello'] }) });
    assert.equal(res.status, 200);
    const out = (await res.json()) as { data: { embedding: number[] }[]; usage: { cost: { total_msats: number } } };
    assert.equal(out.data[0].embedding.length, 8);
    const reserve = requiredMsat(EMBED, { model: EMBED.id, input: ['hello'] });
    assert.equal(out.usage.cost.total_msats, reserve);
    assert.equal((await info(p, key.api_key)).balance, 5000 - reserve);
  });
});

describe('live streaming from a balance', () => {
  test('the first chunk arrives one chunk-delay after the request, long before the stream ends', async (t) => {
    const gate = new Gate();
    const p = await provider(t, client, { delay: gate.delay, knobs: { chunkDelayMs: 50 } });
    const key = await createKey(p, await client.pay(10));
    const res = await chat(p, key.api_key, { stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const sse = frames(res);
    await gate.until(1);
    gate.releaseOne();
    const first = await sse.next();
    assert.match(first ?? '', /^data: \{"id": "chatcmpl-[^"]+", "object": "chat.completion.chunk"/);
    assert.equal((JSON.parse(first!.slice(6)) as { choices: { delta: { content: string } }[] }).choices[0].delta.content, 'sim-b heard: Wha');
    await gate.until(1);
    assert.equal(gate.now, 50, 'the first chunk came after one chunk delay');
    assert.equal((await info(p, key.api_key)).reserved, RESERVE, 'the request is still running');

    gate.open();
    const rest = await sse.rest();
    assert.equal(rest[rest.length - 1], 'data: [DONE]');
    const last = JSON.parse(rest[rest.length - 2].slice(6)) as { choices: unknown[]; usage: Record<string, unknown>; cost: Record<string, number> };
    assert.deepEqual(last.choices, []);
    assert.equal((last.usage.cost as { total_msats: number }).total_msats, COST);
    assert.equal(last.usage.remaining_balance_msats, 10_000 - COST);
    const pieces = [first!, ...rest.slice(0, -3)].map((f) => (JSON.parse(f.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0].delta.content).join('');
    assert.equal(pieces, `sim-b heard: ${QUESTION}`);
    const chunks = Math.ceil(`sim-b heard: ${QUESTION}`.length / 16);
    // content chunks, the finish chunk, the upstream's usage chunk and its [DONE]: one delay each.
    assert.equal(gate.now, (chunks + 3) * 50, 'the end came after every chunk delay');
    assert.equal((await info(p, key.api_key)).balance, 10_000 - COST);
  });

  test('/v1/messages streams Anthropic events live and ends with event: cost', async (t) => {
    const p = await provider(t, client);
    const key = await createKey(p, await client.pay(10));
    const res = await chat(p, key.api_key, { stream: true }, {}, '/v1/messages');
    assert.equal(res.status, 200);
    const all = await frames(res).rest();
    assert.deepEqual(all.slice(0, 2).map((f) => f.split('\n')[0]), ['event: message_start', 'event: content_block_start']);
    const last = all[all.length - 1].split('\n');
    assert.equal(last[0], 'event: cost');
    assert.equal(all[all.length - 2].split('\n')[0], 'event: message_stop');
    const cost = JSON.parse(last[1].slice(6)) as { usage: { input_tokens: number; output_tokens: number; cost: { total_msats: number } }; cost: { total_msats: number } };
    // routstr adds message_start's output_tokens (1) to message_delta's cumulative count.
    assert.deepEqual([cost.usage.input_tokens, cost.usage.output_tokens], [T.prompt, T.completion + 1]);
    const want = chargeMsat(CHAT, T.prompt, T.completion + 1, 0.001).totalMsat;
    assert.equal(cost.usage.cost.total_msats, want);
    assert.equal(cost.cost.total_msats, want);
    assert.equal((await info(p, key.api_key)).balance, 10_000 - want);
  });

  test('without stream the whole answer comes at once, after the time the upstream takes for every chunk', async (t) => {
    const gate = new Gate();
    gate.open();
    const p = await provider(t, client, { delay: gate.delay, knobs: { chunkDelayMs: 50 } });
    const key = await createKey(p, await client.pay(10));
    const res = await chat(p, key.api_key, {}, {}, '/v1/messages');
    assert.equal(res.status, 200);
    const pieces = Math.ceil(`sim-b heard: ${QUESTION}`.length / 16);
    assert.equal(gate.now, (pieces + 1) * 50);
    const out = (await res.json()) as { type: string; content: { text: string }[]; usage: { input_tokens: number; output_tokens: number; cost: { total_msats: number } } };
    assert.equal(out.type, 'message');
    assert.equal(out.content[0].text, `sim-b heard: ${QUESTION}`);
    assert.deepEqual([out.usage.input_tokens, out.usage.output_tokens, out.usage.cost.total_msats], [T.prompt, T.completion, COST]);
    assert.equal(res.headers.get('x-routstr-cost-msats'), String(COST));
  });

  test('a client that goes away mid-stream is not charged', async (t) => {
    const gate = new Gate();
    const state = createProviderState();
    const p = await provider(t, client, { delay: gate.delay, state, knobs: { chunkDelayMs: 10 } });
    const key = await createKey(p, await client.pay(10));
    const abort = new AbortController();
    const res = await chat(p, key.api_key, { stream: true }, { signal: abort.signal });
    const sse = frames(res);
    await gate.until(1);
    gate.releaseOne();
    assert.ok(await sse.next());
    abort.abort();
    await eventually(() => state.balances.all()[0].reservedMsat === 0, 'the reservation is settled');
    gate.open();
    const i = await info(p, key.api_key);
    assert.deepEqual([i.balance, i.reserved, i.total_spent], [10_000, 0, 0]);
  });

  test('midStreamDrop breaks the stream after some chunks and the node charges nothing', async (t) => {
    const gate = new Gate();
    const p = await provider(t, client, { delay: gate.delay, knobs: { midStreamDrop: 2, chunkDelayMs: 10 } });
    const key = await createKey(p, await client.pay(10));
    const res = await chat(p, key.api_key, { stream: true });
    const sse = frames(res);
    for (let i = 0; i < 2; i++) {
      await gate.until(1);
      gate.releaseOne();
      assert.match((await sse.next()) ?? '', /^data: /);
    }
    await gate.until(1);
    gate.open();
    await assert.rejects(sse.next());
    await eventually(async () => (await info(p, key.api_key)).reserved === 0, 'the reservation is settled');
    assert.equal((await info(p, key.api_key)).balance, 10_000);
  });

  test('noUsage: a stream with no usage is charged nothing and ends with a zero-cost usage chunk', async (t) => {
    const p = await provider(t, client, { knobs: { noUsage: true } });
    const key = await createKey(p, await client.pay(10));
    const all = await frames(await chat(p, key.api_key, { stream: true })).rest();
    const last = JSON.parse(all[all.length - 2].slice(6)) as { usage: { cost: { total_msats: number } } };
    assert.equal(last.usage.cost.total_msats, 0);
    assert.equal((await info(p, key.api_key)).balance, 10_000);
  });
});

describe('upstream failures in the balance mode', () => {
  test('a 5xx from the upstream releases the reservation and answers upstream_error', async (t) => {
    const p = await provider(t, client, { knobs: { failureRate: 1, failureStatus: 503 } });
    const key = await createKey(p, await client.pay(5));
    const res = await chat(p, key.api_key);
    assert.equal(res.status, 503);
    const out = (await res.json()) as { error: { type: string; code: number; message: string } };
    assert.deepEqual([out.error.type, out.error.code], ['upstream_error', 503]);
    assert.match(out.error.message, /^Upstream sim-b returned 503 for model sim\/chat/);
    const i = await info(p, key.api_key);
    assert.deepEqual([i.balance, i.reserved, i.total_requests], [5000, 0, 0]);
  });

  test('an upstream 429 passes through with Retry-After and UPSTREAM_RATE_LIMIT, nothing charged', async (t) => {
    const p = await provider(t, client, { knobs: { rateLimit: { retryAfterSec: 7 } } });
    const key = await createKey(p, await client.pay(5));
    const res = await chat(p, key.api_key);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '7');
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UPSTREAM_RATE_LIMIT');
    assert.equal((await info(p, key.api_key)).balance, 5000);
  });

  test('a request that sub-sat costs leaves a balance too small to refund', async (t) => {
    const p = await provider(t, client);
    const key = await createKey(p, await client.pay(1));
    const res = await chat(p, key.api_key, { model: TINY.id });
    assert.equal(res.status, 200);
    const r = await refund(p, key.api_key);
    assert.equal(r.status, 400);
    assert.equal(await detail(r), 'Balance too small to refund');
  });
});
