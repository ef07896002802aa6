// Streamed answers as routstr-core writes them in its two payment modes, from a local server:
// the X-Cashu replay (buffered, single-\n lines), the balance mode's live stream with
// `event: cost`, the Responses API's named events, and the ways a stream can end.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { callProvider, type CallRequest, type OkStream } from '../../protocol/provider-call.ts';
import { ProviderCallCanceledError, ProviderMalformedError } from '../../protocol/call-errors.ts';
import type { StreamItem } from '../../protocol/provider-stream.ts';

const BODY = { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true };
const COST = { base_msats: 0, input_msats: 10, output_msats: 20, total_msats: 30 };

async function streaming(t: TestContext, write: (res: http.ServerResponse) => void, headers: Record<string, string> = {}) {
  const closed: boolean[] = [];
  const s = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream', ...headers });
      res.on('close', () => closed.push(res.writableFinished));
      write(res);
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, closed };
}

async function open(url: string, over: Partial<CallRequest> = {}): Promise<OkStream> {
  const r = await callProvider({ providerUrl: url, endpoint: '/v1/chat/completions', body: BODY, payment: { kind: 'bearer', apiKey: 'sk-x' }, ...over });
  assert.ok(r.kind === 'ok' && r.stream, `expected a stream, got ${r.kind}`);
  return r as OkStream;
}

async function drain(s: OkStream): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  for await (const e of s.events) out.push(e);
  return out;
}

test("the balance mode's live stream ends with an `event: cost` after [DONE], and its cost is read", async (t) => {
  // upstream/base.py (Messages API): f"event: cost\ndata: {json.dumps({'cost': cost_data})}\n\n" after the stream
  const s = await streaming(t, (res) => {
    res.write('data: {"choices":[{"delta":{"content":"a"}}]}\n\n');
    res.write('data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n');
    res.write('data: [DONE]\n\n');
    res.end(`event: cost\ndata: ${JSON.stringify({ cost: COST })}\n\n`);
  });
  const st = await open(s.url);
  const items = await drain(st);
  assert.deepEqual(items.map((i) => i.kind), ['data', 'data', 'cost']);
  assert.equal(items[2].event, 'cost');
  assert.equal(st.events.sawDone, true);
  assert.equal(st.events.reported().costMsat, 30);
  assert.equal(st.events.reported().costSource, 'event:cost');
  assert.deepEqual(st.events.reported().usage, { promptTokens: 3, completionTokens: 1 });
});

test('non-JSON data lines are skipped and CRLF line ends are read', async (t) => {
  const s = await streaming(t, (res) => {
    res.end('data: keep-alive\r\n\r\n: comment\r\n\r\ndata: {"choices":[]}\r\n\r\ndata: [DONE]\r\n\r\n');
  });
  const st = await open(s.url);
  const items = await drain(st);
  assert.equal(items.length, 1);
  assert.equal(st.events.skipped, 1);
  assert.equal(st.events.sawDone, true);
});

test('data lines written without blank lines between them are still read one by one', async (t) => {
  const s = await streaming(t, (res) => res.end('data: {"choices":[{"delta":{"content":"a"}}]}\ndata: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":5}}\ndata: [DONE]\n'));
  const st = await open(s.url);
  const items = await drain(st);
  assert.equal(items.length, 2);
  assert.equal(st.events.sawDone, true);
  assert.deepEqual(st.events.reported().usage, { promptTokens: 2, completionTokens: 5 });
});

test('a chunk of the wrong shape in a chat stream is not handed over, but counted, and its usage still read', async (t) => {
  const s = await streaming(t, (res) =>
    res.end('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [1, 2]\n\ndata: {"delta":"no choices"}\n\ndata: {"usage":{"prompt_tokens":4,"completion_tokens":2}}\n\ndata: [DONE]\n\n'),
  );
  const st = await open(s.url);
  const items = await drain(st);
  assert.equal(items.length, 1);
  assert.equal(st.events.malformed, 3);
  assert.equal(st.events.skipped, 0);
  assert.deepEqual(st.events.reported().usage, { promptTokens: 4, completionTokens: 2 });
});

test('a Responses or Anthropic stream needs a type on every event; a chat stream of nothing but wrong shapes fails as malformed', async (t) => {
  const s = await streaming(t, (res) => res.end('event: response.created\ndata: {"type":"response.created"}\n\ndata: {"no":"type"}\n\n'));
  const st = await open(s.url, { endpoint: '/v1/responses', body: { model: 'm', input: 'hi', stream: true } });
  assert.deepEqual((await drain(st)).map((i) => i.event), ['response.created']);
  assert.equal(st.events.malformed, 1);
  const bad = await streaming(t, (res) => res.end('data: [{"choices":[]}]\n\ndata: "text"\n\ndata: [DONE]\n\n'));
  const b = await open(bad.url);
  await assert.rejects(drain(b), (err: unknown) => err instanceof ProviderMalformedError && err.eventsDelivered === 0 && err.reached === 'yes');
});

test('an error object in the middle of a stream is handed over as an error item', async (t) => {
  const s = await streaming(t, (res) => res.end('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"error":{"message":"upstream overloaded","type":"server_error"}}\n\n'));
  const st = await open(s.url);
  const items = await drain(st);
  assert.deepEqual(items.map((i) => i.kind), ['data', 'error']);
  assert.equal(st.events.sawDone, false);
});

test('the Responses API stream keeps its event names and reports usage from response.completed', async (t) => {
  const s = await streaming(t, (res) => {
    res.write('event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"hi"}\n\n');
    res.end(`event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { usage: { input_tokens: 4, output_tokens: 2, cost: COST } } })}\n\n`);
  });
  const st = await open(s.url, { endpoint: '/v1/responses', body: { model: 'm', input: 'hi', stream: true } });
  const items = await drain(st);
  assert.deepEqual(items.map((i) => i.event), ['response.output_text.delta', 'response.completed']);
  assert.deepEqual(st.events.reported().usage, { promptTokens: 4, completionTokens: 2 });
  assert.equal(st.events.reported().costMsat, 30);
});

test('a node that keeps the connection open after [DONE] has still finished the stream', async (t) => {
  const s = await streaming(t, (res) => res.write('data: {"choices":[]}\n\ndata: [DONE]\n\n'));
  const st = await open(s.url, { timeouts: { idleMs: 80 } });
  const items = await drain(st);
  assert.equal(items.length, 1);
  assert.equal(st.events.sawDone, true);
});

test('the cost header of a buffered X-Cashu stream is read even when the usage line has no cost', async (t) => {
  // handle_x_cashu_streaming_response: _inject_cost_response_headers(response_headers, cost_data)
  const s = await streaming(t, (res) => res.end('data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n'), { 'x-routstr-cost-msats': '42' });
  const st = await open(s.url);
  await drain(st);
  assert.equal(st.events.reported().costMsat, 42);
  assert.equal(st.events.reported().costSource, 'header');
});

test('a reader that stops early drops the connection instead of leaving it half-read', async (t) => {
  const s = await streaming(t, (res) => {
    res.write('data: {"choices":[]}\n\n');
    const more = setInterval(() => res.write('data: {"choices":[]}\n\n'), 5);
    res.on('close', () => clearInterval(more));
  });
  const st = await open(s.url);
  for await (const _ of st.events) break;
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(s.closed, [false]);
});

test('canceling a stream (our client left) ends the reading with a canceled error', async (t) => {
  const s = await streaming(t, (res) => {
    res.write('data: {"choices":[]}\n\n');
    const more = setInterval(() => res.write('data: {"choices":[]}\n\n'), 5);
    res.on('close', () => clearInterval(more));
  });
  const st = await open(s.url);
  let n = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of st.events) {
        n += 1;
        if (n === 2) st.events.cancel();
      }
    })(),
    (err: unknown) => err instanceof ProviderCallCanceledError && err.reached === 'yes' && err.eventsDelivered === 2,
  );
  // an abort signal does the same
  const ac = new AbortController();
  const st2 = await open(s.url, { signal: ac.signal });
  await assert.rejects(
    (async () => {
      for await (const _ of st2.events) ac.abort();
    })(),
    ProviderCallCanceledError,
  );
});

test('a stream is read only once, and cancel before reading closes it', async (t) => {
  const s = await streaming(t, (res) => res.end('data: {"choices":[]}\n\ndata: [DONE]\n\n'));
  const st = await open(s.url);
  await drain(st);
  await assert.rejects(drain(st), /only once/);
  const st2 = await open(s.url);
  st2.events.cancel();
  await assert.rejects(drain(st2), ProviderCallCanceledError);
});
