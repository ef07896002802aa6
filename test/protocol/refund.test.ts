import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { requestRefund, pollRefund, notFoundPendingMs, NOT_FOUND_PENDING_MS, RefundUnavailableError, RefundProtocolError, type FetchLike } from '../../protocol/refund.ts';
import { startProvider } from '../world/provider.ts';

const TOKEN = 'cashuBexampletoken';
const CHANGE = 'cashuBchangetoken';

type Handler = (path: string, xCashu: string | undefined) => { status: number; body?: unknown };

/** A stand-in for a Routstr node's refund routes, answering like a given node version. */
async function node(t: { after(fn: () => unknown): void }, handler: Handler) {
  const calls: string[] = [];
  const server = http.createServer((req, res) => {
    calls.push(`${req.method} ${req.url}`);
    const { status, body } = handler(req.url ?? '', req.headers['x-cashu'] as string | undefined);
    res.writeHead(status, { 'content-type': 'application/json', ...(status === 200 ? { 'x-cashu': CHANGE } : {}) });
    res.end(body === undefined ? '' : JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, calls };
}

const fetchLike: FetchLike = (url, init) => fetch(url, init);

test('lost change comes back as the token the node minted, with its amount', async (t) => {
  const n = await node(t, (path, x) => (path === '/v1/balance/refund' && x === TOKEN ? { status: 200, body: { token: CHANGE, sats: '21' } } : { status: 404, body: { detail: 'Refund not found' } }));
  assert.deepEqual(await requestRefund(n.url, TOKEN, { fetch: fetchLike }), { kind: 'refunded', token: CHANGE, amount: 21, unit: 'sat' });
  assert.deepEqual(n.calls, ['POST /v1/balance/refund']);
});

test('an msat refund is reported in msat', async (t) => {
  const n = await node(t, () => ({ status: 200, body: { token: CHANGE, msats: '21500' } }));
  assert.deepEqual(await requestRefund(n.url, TOKEN, { fetch: fetchLike }), { kind: 'refunded', token: CHANGE, amount: 21500, unit: 'msat' });
});

test('a node older than v0.4.3 cannot refund by token: its route wants Authorization (FastAPI 422), so the answer is final, not an error to retry', async (t) => {
  // The world's pre-0.4.3 node: refund_wallet_endpoint takes only `authorization: Header(...)`.
  const p = await startProvider({ name: 'old', relays: [], mints: ['http://127.0.0.1:9'], models: [], noAnnounce: true, version: '0.4.2' });
  t.after(() => p.stop());
  assert.deepEqual(await requestRefund(p.url, TOKEN, { fetch: fetchLike }), { kind: 'unsupported', status: 422 });
  // Polling does not ask again: nothing will change.
  let asked = 0;
  const counting: FetchLike = (url, init) => { asked++; return fetch(url, init); };
  assert.deepEqual(await pollRefund(p.url, TOKEN, { fetch: counting, maxAttempts: 3, sleep: async () => {} }), { kind: 'unsupported', status: 422 });
  assert.equal(asked, 1);
});

test('a current node that never saw the token says "Refund not found" (404), told apart from a missing route', async (t) => {
  const p = await startProvider({ name: 'new', relays: [], mints: ['http://127.0.0.1:9'], models: [], noAnnounce: true });
  t.after(() => p.stop());
  assert.deepEqual(await requestRefund(p.url, TOKEN, { fetch: fetchLike }), { kind: 'not_found' });
  // Something that is not a Routstr node (no such route at all) is a protocol error, not "not found".
  const other = await node(t, () => ({ status: 404, body: { detail: 'Not Found' } }));
  await assert.rejects(requestRefund(other.url, TOKEN, { fetch: fetchLike }), RefundProtocolError);
  assert.deepEqual(other.calls, ['POST /v1/balance/refund']);
});

test('refund not found, swept, and still pending are told apart', async (t) => {
  let status = 404;
  const n = await node(t, () => ({ status, body: { detail: status === 404 ? 'Refund not found' : status === 410 ? 'Refund has been swept' : 'Refund is pending; retry shortly.' } }));
  assert.deepEqual(await requestRefund(n.url, TOKEN, { fetch: fetchLike }), { kind: 'not_found' });
  status = 410;
  assert.deepEqual(await requestRefund(n.url, TOKEN, { fetch: fetchLike }), { kind: 'swept' });
  status = 425;
  assert.deepEqual(await requestRefund(n.url, TOKEN, { fetch: fetchLike }), { kind: 'pending' });
});

test('a refund that stays pending is retried a bounded number of times, then reported pending', async (t) => {
  const n = await node(t, () => ({ status: 425, body: { detail: 'Refund is pending; retry shortly.' } }));
  const waits: number[] = [];
  const answer = await pollRefund(n.url, TOKEN, { fetch: fetchLike, maxAttempts: 3, delayMs: 2000, sleep: async (ms) => { waits.push(ms); } });
  assert.deepEqual(answer, { kind: 'pending' });
  assert.equal(n.calls.length, 3);
  assert.deepEqual(waits, [2000, 2000]);
});

test('a refund that turns up while polling is returned', async (t) => {
  let calls = 0;
  const n = await node(t, () => (++calls < 3 ? { status: 425 } : { status: 200, body: { token: CHANGE, sats: '5' } }));
  const answer = await pollRefund(n.url, TOKEN, { fetch: fetchLike, maxAttempts: 5, sleep: async () => {} });
  assert.equal(answer.kind, 'refunded');
  assert.equal(calls, 3);
});

test('a pre-v0.4.4 node saying 404 while the request runs can be polled as pending', async (t) => {
  let calls = 0;
  const n = await node(t, () => (++calls < 2 ? { status: 404, body: { detail: 'Refund not found' } } : { status: 200, body: { token: CHANGE, sats: '5' } }));
  const answer = await pollRefund(n.url, TOKEN, { fetch: fetchLike, notFoundMeansPending: true, sleep: async () => {} });
  assert.equal(answer.kind, 'refunded');
});

test('a malformed refund body, an unexpected status, and a dead provider are typed errors', async (t) => {
  let reply: { status: number; body?: unknown } = { status: 200, body: { token: 'not-a-token', sats: '5' } };
  const n = await node(t, () => reply);
  await assert.rejects(requestRefund(n.url, TOKEN, { fetch: fetchLike }), RefundProtocolError);
  reply = { status: 200, body: { token: CHANGE, sats: '-1' } };
  await assert.rejects(requestRefund(n.url, TOKEN, { fetch: fetchLike }), RefundProtocolError);
  reply = { status: 401, body: { detail: 'Invalid authorization' } };
  await assert.rejects(requestRefund(n.url, TOKEN, { fetch: fetchLike }), RefundProtocolError);
  reply = { status: 502 };
  await assert.rejects(requestRefund(n.url, TOKEN, { fetch: fetchLike }), RefundUnavailableError);
  await assert.rejects(requestRefund('http://127.0.0.1:1', TOKEN, { fetch: fetchLike }), RefundUnavailableError);
});

test('how long a 404 may still mean "not recorded yet" depends on the node version', () => {
  assert.equal(notFoundPendingMs('0.4.5'), NOT_FOUND_PENDING_MS.recording);
  assert.equal(notFoundPendingMs('v0.4.4-beta'), NOT_FOUND_PENDING_MS.recording);
  assert.equal(notFoundPendingMs('1.0'), NOT_FOUND_PENDING_MS.recording);
  assert.equal(notFoundPendingMs('0.4.3'), NOT_FOUND_PENDING_MS.running);
  assert.equal(notFoundPendingMs('0.3.0'), NOT_FOUND_PENDING_MS.running);
  assert.equal(notFoundPendingMs(null), NOT_FOUND_PENDING_MS.running, 'unknown: the longer wait');
  assert.equal(notFoundPendingMs('nightly'), NOT_FOUND_PENDING_MS.running);
  assert.ok(NOT_FOUND_PENDING_MS.recording < NOT_FOUND_PENDING_MS.running);
});
