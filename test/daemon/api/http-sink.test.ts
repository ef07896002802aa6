import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpSink } from '../../../daemon/api/http-sink.ts';
import { toApiError, ProviderFailedError } from '../../../daemon/api/errors.ts';
import type { Accepted, Done } from '../../../daemon/requests/contract.ts';
import { SseReader } from '../../../protocol/sse.ts';

const accepted: Accepted = { requestId: 'req_1', provider: 'p1', providerUrl: 'http://p1', model: 'm', reservedSats: 12, payment: 'xcashu', failedAttempts: 0 };
const done: Done = {
  requestId: 'req_1', provider: 'p1', model: 'm', usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
  cost: { sent_sats: 12, change_sats: 10, charged_msat: 2000, expected_msat: 1700, reported_msat: 1700 }, flags: [], overheadMs: 0.4321,
};

/** Serve one response written by `write` through a real socket and read it back as SSE events. */
async function roundTrip(write: (sink: HttpSink) => Promise<void> | void): Promise<{ status: number; headers: http.IncomingHttpHeaders; events: { data: string }[] }> {
  const server = http.createServer((_req, res) => void write(new HttpSink(res, '/v1/chat/completions', true)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    const text = await res.text();
    const headers: http.IncomingHttpHeaders = {};
    res.headers.forEach((v, k) => (headers[k] = v));
    const reader = new SseReader();
    return { status: res.status, headers, events: [...reader.push(text), ...reader.end()] };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

test('a stream passes chunks on as they come; the usage chunk is held back and goes out last, with the satroute cost, before [DONE]', async () => {
  const out = await roundTrip(async (sink) => {
    sink.accepted(accepted);
    await sink.chunk({ id: 'c', object: 'chat.completion.chunk', choices: [{ delta: { content: 'Hel' } }], usage: null });
    await sink.chunk({ id: 'c', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, cost: { total_msats: 1700 } } });
    await sink.chunk({ id: 'c', object: 'chat.completion.chunk', choices: [{ delta: {}, finish_reason: 'stop' }] });
    sink.done(done);
  });
  assert.equal(out.status, 200);
  assert.equal(out.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(out.headers['x-satroute-request-id'], 'req_1');
  const data = out.events.map((e) => e.data);
  assert.equal(data.at(-1), '[DONE]');
  const last = JSON.parse(data.at(-2)!) as { usage: { completion_tokens: number }; satroute: { cost_msat: number; charged_msat: number; overhead_ms: number } };
  assert.equal(last.usage.completion_tokens, 7);
  assert.deepEqual([last.satroute.cost_msat, last.satroute.charged_msat, last.satroute.overhead_ms], [2000, 2000, 0.432]);
  assert.equal(data.filter((d) => d.includes('"usage":{')).length, 1, 'usage once');
  assert.match(data[1], /finish_reason/, 'the chunk after the usage chunk is not held back with it');
});

test('a stream without a usage chunk still ends with one carrying the cost', async () => {
  const out = await roundTrip(async (sink) => {
    sink.accepted(accepted);
    await sink.chunk({ id: 'c', object: 'chat.completion.chunk', model: 'm', created: 1, choices: [{ delta: { content: 'x' } }] });
    sink.done({ ...done, usage: null });
  });
  const last = JSON.parse(out.events.at(-2)!.data) as { id: string; choices: unknown[]; usage: unknown; satroute: { request_id: string } };
  assert.deepEqual([last.id, last.choices, last.usage, last.satroute.request_id], ['c', [], null, 'req_1']);
});

test('an error after the first chunk is an explicit error event, then the end; before it, a JSON error with its status', async () => {
  const mid = await roundTrip(async (sink) => {
    sink.accepted(accepted);
    await sink.chunk({ id: 'c', choices: [{ delta: { content: 'x' } }] });
    sink.error(toApiError(new ProviderFailedError('the stream broke')), 'req_1');
  });
  assert.equal(mid.status, 200);
  const err = JSON.parse(mid.events.at(-2)!.data) as { error: { code: string; message: string } };
  assert.deepEqual([err.error.code, err.error.message], ['provider_failed', 'the stream broke']);
  const early = await roundTrip((sink) => sink.error(toApiError(new ProviderFailedError('no provider answered')), 'req_2'));
  assert.equal(early.status, 502);
  assert.equal(early.headers['x-satroute-request-id'], 'req_2');
  assert.equal(early.headers['x-should-retry'], 'true');
});
