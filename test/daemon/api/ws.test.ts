// The WebSocket API as a program using it sees it: authentication, many requests on one
// connection, cancel, subscriptions, ping, and bad input that never kills the connection. The
// request lifecycle is a stand-in (ws-fixture.ts) whose pace the tests control; the same API
// end to end against the real daemon and test/world is ws-daemon.e2e.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocket } from 'ws';
import { Client, chat, MSAT_PER_CHUNK, startApi, untilAborted, type Msg } from './ws-fixture.ts';
import type { ProviderEvent } from '../../../daemon/requests/contract.ts';
import { findSecrets } from '../../log-secrets.ts';

const isEnd = (m: Msg) => m.type === 'done' || m.type === 'error';

test('a hundred concurrent streams on one connection each end with their own done and cost', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  const ids = Array.from({ length: 100 }, (_, i) => `r${i}`);
  ids.forEach((id, i) => c.send(chat(id, { chunks: 1 + (i % 7) })));
  await Promise.all(ids.map((id) => c.next((m) => m.id === id && isEnd(m))));
  for (const [i, id] of ids.entries()) {
    const msgs = c.of(id);
    const chunks = 1 + (i % 7);
    assert.deepEqual(msgs.map((m) => m.type), ['accepted', ...Array<string>(chunks).fill('chunk'), 'done'], id);
    const [accepted, done] = [msgs[0], msgs.at(-1)!];
    assert.equal(done.request_id, accepted.request_id);
    assert.deepEqual(Object.keys(done).sort(), ['cost', 'flags', 'id', 'provider', 'request_id', 'type', 'usage']);
    assert.deepEqual(done.cost, { sent_sats: 10, change_sats: 10 - Math.ceil((chunks * MSAT_PER_CHUNK) / 1000), charged_msat: chunks * MSAT_PER_CHUNK, expected_msat: chunks * MSAT_PER_CHUNK, reported_msat: chunks * MSAT_PER_CHUNK });
    assert.deepEqual(done.usage, { prompt_tokens: 5, completion_tokens: chunks, total_tokens: 5 + chunks });
    assert.deepEqual(accepted, { type: 'accepted', id, provider: 'alpha', model: 'gpt-test', reserved_sats: 10, request_id: accepted.request_id });
    assert.equal((msgs[1].data as { object: string }).object, 'chat.completion.chunk');
  }
  // the streams really ran side by side, not one after another
  const order = c.messages.filter((m) => m.type === 'chunk').map((m) => m.id);
  assert.notDeepEqual(order, [...order].sort((a, b) => ids.indexOf(a!) - ids.indexOf(b!)));
  await h.lifecycle.until(() => [...h.lifecycle.seen.values()].every((s) => s.settled));
  assert.equal(h.api.stats().requestsInFlight, 0);
  assert.equal(h.api.stats().connections, 1);
});

test('a non-streaming request gets its response, then done with the cost', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  c.send(chat('once', { stream: false, chunks: 4 }));
  await c.next((m) => m.id === 'once' && isEnd(m));
  const msgs = c.of('once');
  assert.deepEqual(msgs.map((m) => m.type), ['accepted', 'response', 'done']);
  assert.equal((msgs[1].data as { object: string }).object, 'chat.completion');
  assert.equal((msgs[2].cost as { charged_msat: number }).charged_msat, 4 * MSAT_PER_CHUNK);
  assert.equal(h.lifecycle.seen.get('once')!.req.stream, false);
});

test("the request's options reach the lifecycle as the HTTP headers would", async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  c.send({ ...chat('opts'), max_sats: 21, policy: 'balanced', provider: 'alpha', payment: 'session' });
  await c.next((m) => m.id === 'opts' && isEnd(m));
  const { req } = h.lifecycle.seen.get('opts')!;
  assert.deepEqual(
    { client: req.client.name, endpoint: req.endpoint, stream: req.stream, maxSats: req.maxSats, policy: req.policy, provider: req.provider, payment: req.payment },
    { client: 'laptop', endpoint: '/v1/chat/completions', stream: true, maxSats: 21, policy: 'balanced', provider: 'alpha', payment: 'session' },
  );
});

test('cancel mid-stream aborts the request and ends it with a canceled error naming the request', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const h = await startApi(t, { standIn: { pace: (_s, i) => (i === 2 ? gate : Promise.resolve()) } });
  const c = await Client.open(h);
  c.send({ type: 'subscribe', topics: ['payments'] });
  c.send(chat('long', { chunks: 50 }));
  c.send(chat('other', { chunks: 5 }));
  await c.next((m) => m.id === 'long' && m.type === 'chunk' && c.of('long').filter((x) => x.type === 'chunk').length === 2);
  c.send({ type: 'cancel', id: 'long' });
  await h.lifecycle.until(() => h.lifecycle.seen.get('long')!.aborted);
  release();
  const end = await c.next((m) => m.id === 'long' && isEnd(m));
  assert.equal(end.type, 'error');
  assert.equal(end.code, 'canceled');
  assert.equal(end.retryable, false);
  assert.equal(end.request_id, h.lifecycle.seen.get('long')!.requestId);
  assert.deepEqual(c.of('long').map((m) => m.type), ['accepted', 'chunk', 'chunk', 'error']);
  // what the canceled request cost is settled and published
  const payment = await c.next((m) => m.type === 'event' && m.request_id === end.request_id);
  assert.equal(payment.status, 'canceled');
  assert.equal((payment.cost as { charged_msat: number }).charged_msat, 2 * MSAT_PER_CHUNK);
  // the other request on the connection was not touched; a second cancel is harmless
  assert.equal((await c.next((m) => m.id === 'other' && isEnd(m))).type, 'done');
  c.send({ type: 'cancel', id: 'long' });
  await c.sync();
  assert.equal(c.of('long').length, 4);
});

test('a client that disconnects mid-request has all its requests canceled and settled', async (t) => {
  const h = await startApi(t, { standIn: { pace: (s, i) => (i === 1 ? untilAborted(s) : Promise.resolve()) } });
  const c = await Client.open(h);
  for (const id of ['a', 'b', 'c']) c.send(chat(id, { chunks: 10 }));
  await Promise.all(['a', 'b', 'c'].map((id) => c.next((m) => m.id === id && m.type === 'chunk')));
  assert.equal(h.api.stats().requestsInFlight, 3);
  c.ws.terminate();
  await h.lifecycle.until(() => ['a', 'b', 'c'].every((id) => h.lifecycle.seen.get(id)!.aborted));
  const reason = h.lifecycle.seen.get('a')!.req.signal.reason as Error;
  assert.equal(reason.name, 'CanceledError');
  assert.match(reason.message, /disconnected/);
});

test('a disconnected client whose stand-in lifecycle finishes settling leaves nothing running', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const h = await startApi(t, { standIn: { pace: (_s, i) => (i === 1 ? gate : Promise.resolve()) } });
  const c = await Client.open(h);
  c.send(chat('x', { chunks: 5 }));
  await c.next((m) => m.id === 'x' && m.type === 'chunk');
  c.ws.terminate();
  await h.lifecycle.until(() => h.lifecycle.seen.get('x')!.aborted);
  release();
  await h.lifecycle.until(() => h.lifecycle.seen.get('x')!.settled);
  await new Promise<void>((r) => setImmediate(r));
  assert.deepEqual({ connections: h.api.stats().connections, requestsInFlight: h.api.stats().requestsInFlight }, { connections: 0, requestsInFlight: 0 });
});

test('the payments subscription receives every event published, and only subscribed topics arrive', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  const quiet = await Client.open(h);
  c.send({ type: 'subscribe', topics: ['payments'] });
  await c.sync();
  for (let i = 0; i < 20; i++) c.send(chat(`p${i}`, { chunks: 2 }));
  const provider: ProviderEvent = { topic: 'providers', time: new Date(0).toISOString(), provider: 'alpha', url: 'http://alpha.invalid', kind: 'breaker', state: 'open', model: null };
  h.events.publish(provider);
  await Promise.all(Array.from({ length: 20 }, (_, i) => c.next((m) => m.id === `p${i}` && isEnd(m))));
  await c.sync();
  const payments = c.messages.filter((m) => m.type === 'event');
  assert.equal(payments.length, 20);
  assert.ok(payments.every((m) => m.topic === 'payments'));
  assert.deepEqual(new Set(payments.map((m) => m.request_id)), new Set(c.messages.filter((m) => m.type === 'done').map((m) => m.request_id)));
  assert.deepEqual(Object.keys(payments[0]).sort(), ['attempts', 'client', 'cost', 'endpoint', 'flags', 'late', 'model', 'payment', 'provider', 'request_id', 'status', 'time', 'topic', 'type', 'usage']);

  c.send({ type: 'subscribe', topics: ['providers'] });
  await c.sync();
  h.events.publish(provider);
  await c.next((m) => m.type === 'event' && m.topic === 'providers');
  assert.deepEqual(c.messages.filter((m) => m.topic === 'providers'), [{ type: 'event', ...provider }]);
  await quiet.sync();
  assert.equal(quiet.messages.filter((m) => m.type === 'event').length, 0);
});

test('ping gets pong', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  c.send({ type: 'ping' });
  assert.deepEqual(await c.next(() => true), { type: 'pong' });
});

test('malformed JSON, an unknown type and bad requests each get an error and the connection lives', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  c.send('{"type": "request", ');
  c.send({ type: 'frobnicate', id: 'f' });
  c.send({ type: 'request', id: 'nobody', endpoint: '/v1/chat/completions', body: { model: 'm' } });
  c.send({ ...chat('typo'), max_sat: 5 });
  c.send({ type: 'request', id: 'where', endpoint: '/v1/images', body: {} });
  c.send({ type: 'cancel' });
  await c.sync();
  const errors = c.messages.filter((m) => m.type === 'error');
  assert.equal(errors.length, 6);
  assert.ok(errors.every((e) => e.code === 'bad_request' && e.retryable === false && typeof e.message === 'string'));
  assert.deepEqual(errors.map((e) => e.id), [null, null, 'nobody', 'typo', 'where', null]);
  assert.match(errors[0].message as string, /not valid JSON/);
  assert.match(errors[1].message as string, /unknown message type "frobnicate"/);
  assert.match(errors[2].message as string, /messages/);
  assert.match(errors[3].message as string, /max_sat/);
  // still alive: a real request goes through
  c.send(chat('fine'));
  assert.equal((await c.next((m) => m.id === 'fine' && isEnd(m))).type, 'done');
});

test('a second request with a live id is refused without disturbing the first', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const h = await startApi(t, { standIn: { pace: (_s, i) => (i === 1 ? gate : Promise.resolve()) } });
  const c = await Client.open(h);
  c.send(chat('dup', { chunks: 3, tag: 'first' }));
  await c.next((m) => m.id === 'dup' && m.type === 'chunk');
  c.send(chat('dup', { chunks: 3, tag: 'second' }));
  const err = await c.next((m) => m.type === 'error');
  assert.equal(err.id, null);
  assert.match(err.message as string, /"dup" is already in flight/);
  release();
  await c.next((m) => m.id === 'dup' && isEnd(m));
  assert.deepEqual(c.of('dup').map((m) => m.type), ['accepted', 'chunk', 'chunk', 'chunk', 'done']);
  assert.equal(h.lifecycle.seen.has('second'), false);
  // once it ended, the id may be used again
  c.send(chat('dup', { chunks: 1, tag: 'third' }));
  await c.next((m) => m.id === 'dup' && m.type === 'done' && m.request_id === h.lifecycle.seen.get('third')?.requestId);
});

test('an oversized message is refused and the connection lives; past the payload limit it is closed', async (t) => {
  const h = await startApi(t, { limits: { maxMessageBytes: 4096, maxPayloadBytes: 16384 } });
  const c = await Client.open(h);
  const big = chat('big');
  (big.body as { messages: { content: string }[] }).messages[0].content = 'y'.repeat(8000);
  c.send(big);
  const err = await c.next((m) => m.type === 'error');
  assert.deepEqual({ id: err.id, code: err.code }, { id: 'big', code: 'bad_request' });
  assert.match(err.message as string, /over the 4096-byte limit/);
  assert.equal(h.lifecycle.seen.size, 0);
  c.send(chat('small'));
  assert.equal((await c.next((m) => m.id === 'small' && isEnd(m))).type, 'done');
  c.send('z'.repeat(20000));
  assert.equal((await c.closed).code, 1009);
});

test('errors from the lifecycle reach the client with their code; a crash or silence ends the request as internal', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  c.send(chat('nobody-serves', { model: 'unserved' }));
  c.send(chat('crash', { model: 'throws' }));
  c.send(chat('mute', { model: 'silent' }));
  const [a, b, s] = await Promise.all(['nobody-serves', 'crash', 'mute'].map((id) => c.next((m) => m.id === id && isEnd(m))));
  assert.deepEqual({ type: a.type, code: a.code, retryable: a.retryable }, { type: 'error', code: 'no_provider', retryable: false });
  assert.deepEqual({ type: b.type, code: b.code }, { type: 'error', code: 'internal' });
  assert.doesNotMatch(b.message as string, /boom/);
  assert.deepEqual({ type: s.type, code: s.code }, { type: 'error', code: 'internal' });
  assert.ok(h.logs.some((l) => l.includes('request handler failed') && l.includes('boom')));
  await c.sync();
});

test('too many requests at once on one connection: the extra ones are refused, retryable', async (t) => {
  const h = await startApi(t, { limits: { maxRequestsPerConnection: 2 }, standIn: { pace: (s) => untilAborted(s) } });
  const c = await Client.open(h);
  for (const id of ['1', '2', '3']) c.send(chat(id));
  const err = await c.next((m) => m.id === '3');
  assert.deepEqual({ type: err.type, code: err.code, retryable: err.retryable }, { type: 'error', code: 'bad_request', retryable: true });
  assert.equal(h.api.stats().requestsInFlight, 2);
});

// ---- auth ------------------------------------------------------------------------------------

test('a key in the Authorization header or in a first auth message opens the connection', async (t) => {
  const h = await startApi(t);
  for (const how of ['header', 'message'] as const) {
    const c = await Client.open(h, how);
    c.send(chat(`via-${how}`, { chunks: 1 }));
    assert.equal((await c.next((m) => isEnd(m))).type, 'done', how);
    assert.equal(h.lifecycle.seen.get(`via-${how}`)!.req.client.name, 'laptop');
  }
  assert.equal(h.api.stats().authenticated, 2);
});

test('a wrong key, in the header or the first message, gets unauthorized and the socket closes', async (t) => {
  const h = await startApi(t);
  const wrong = `sr_${'A'.repeat(32)}`;
  for (const how of ['header', 'message'] as const) {
    const c = await Client.open(h, how, wrong);
    c.send(chat('sneaky'));
    const closed = await c.closed;
    assert.equal(closed.code, 1008, how);
    assert.deepEqual(c.messages.map((m) => [m.type, m.code]), [['error', 'unauthorized']], how);
  }
  assert.equal(h.lifecycle.seen.size, 0);
  assert.ok(h.logs.length > 0);
  assert.deepEqual(findSecrets(h.logs.join(''), [wrong, h.key]), []);
});

test('a first message other than auth is refused', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h, 'none');
  c.send(chat('early'));
  assert.equal((await c.closed).code, 1008);
  assert.equal(c.messages[0].code, 'unauthorized');
  assert.equal(h.lifecycle.seen.size, 0);
});

test('a connection that never authenticates is closed after 5 s', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h, 'none');
  h.timers.advance(4_999);
  await new Promise<void>((r) => setImmediate(r));
  assert.equal(c.ws.readyState, WebSocket.OPEN);
  h.timers.advance(1);
  const closed = await c.closed;
  assert.equal(closed.code, 1008);
  assert.equal(c.messages[0].code, 'unauthorized');
  assert.match(c.messages[0].message as string, /within 5 s/);
  // an authenticated one is not
  const ok = await Client.open(h, 'message');
  await ok.sync();
  h.timers.advance(60_000);
  await ok.sync();
  assert.equal(ok.ws.readyState, WebSocket.OPEN);
});

test('a key revoked while connected is refused from its next request on', async (t) => {
  const h = await startApi(t);
  const c = await Client.open(h);
  c.send(chat('before', { chunks: 1 }));
  await c.next((m) => m.id === 'before' && isEnd(m));
  h.keys.revoke('laptop');
  c.send(chat('after', { chunks: 1 }));
  const err = await c.next((m) => m.id === 'after');
  assert.deepEqual({ type: err.type, code: err.code }, { type: 'error', code: 'unauthorized' });
  assert.equal((await c.closed).code, 1008);
  assert.equal(h.lifecycle.seen.has('after'), false);
});

test('upgrades on another path are refused with 404', async (t) => {
  const h = await startApi(t);
  const ws = new WebSocket(h.url.replace('/v1/ws', '/v1/other'), { headers: { authorization: `Bearer ${h.key}` } });
  ws.on('error', () => {}); // ws reports the refused upgrade as an error too
  const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (req, res: http.IncomingMessage) => {
    resolve(res.statusCode!);
    req.destroy();
  }));
  assert.equal(status, 404);
});

// ---- liveness and shutdown -------------------------------------------------------------------

test('a client that stops answering pings is dropped and its requests canceled', async (t) => {
  const h = await startApi(t, { limits: { heartbeatMs: 30_000 }, standIn: { pace: (s, i) => (i === 1 ? untilAborted(s) : Promise.resolve()) } });
  const c = await Client.open(h);
  c.send(chat('hung'));
  await c.next((m) => m.type === 'chunk');
  h.timers.advance(30_000); // ping: the client answers
  await new Promise<void>((r) => c.ws.once('ping', () => setImmediate(r)));
  await c.sync();
  c.pauseReading();
  h.timers.advance(30_000); // ping: unanswered
  h.timers.advance(30_000); // dropped
  await h.lifecycle.until(() => h.lifecycle.seen.get('hung')!.aborted);
  assert.equal(h.api.stats().connections, 0);
});

test('drain refuses new requests while running ones finish; close cancels what is left', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const h = await startApi(t, { standIn: { pace: (s, i) => (i === 1 && s.req.body.model === 'gpt-test' ? gate : Promise.resolve()) } });
  const c = await Client.open(h);
  c.send(chat('running', { chunks: 3 }));
  await c.next((m) => m.id === 'running' && m.type === 'chunk');
  let drained = false;
  const draining = h.api.drain().then(() => (drained = true));
  c.send(chat('late'));
  const refused = await c.next((m) => m.id === 'late');
  assert.deepEqual({ type: refused.type, code: refused.code, retryable: refused.retryable }, { type: 'error', code: 'internal', retryable: true });
  assert.equal(drained, false);
  release();
  await draining;
  assert.equal((await c.next((m) => m.id === 'running' && isEnd(m))).type, 'done');

  const h2 = await startApi(t, { standIn: { pace: (s, i) => (i === 1 ? untilAborted(s) : Promise.resolve()) } });
  const c2 = await Client.open(h2);
  c2.send(chat('forever'));
  await c2.next((m) => m.type === 'chunk');
  await h2.api.close();
  assert.equal((await c2.closed).code, 1001);
  assert.equal(h2.lifecycle.seen.get('forever')!.aborted, true);
  assert.equal(h2.api.stats().requestsInFlight, 0);
});
