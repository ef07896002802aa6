// The WebSocket messages as DESIGN.md fixes them: what a client may send, what it is told when a
// message cannot be used (and which request that ends), and the exact fields the daemon sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toApiError } from '../../../daemon/api/errors.ts';
import { acceptedMessage, doneMessage, droppedMessage, errorMessage, parseClientMessage, requestIdOf } from '../../../daemon/api/ws-messages.ts';

const chatBody = { model: 'gpt-test', messages: [{ role: 'user', content: 'hi' }], stream: true };

test('every client message of the contract parses, a request with all its options', () => {
  const r = parseClientMessage(JSON.stringify({ type: 'request', id: 'a1', endpoint: '/v1/chat/completions', body: chatBody, max_sats: 50, policy: 'cheapest', provider: 'alpha', payment: 'xcashu' }));
  assert.ok(r.ok);
  assert.deepEqual(r.message, { type: 'request', id: 'a1', endpoint: '/v1/chat/completions', body: chatBody, maxSats: 50, policy: 'cheapest', provider: 'alpha', payment: 'xcashu' });
  const others = [
    { type: 'auth', key: 'sr_x' },
    { type: 'cancel', id: 'a1' },
    { type: 'subscribe', topics: ['payments', 'providers'] },
    { type: 'ping' },
  ];
  for (const m of others) assert.deepEqual(parseClientMessage(JSON.stringify(m)), { ok: true, message: m });
  const emb = parseClientMessage(JSON.stringify({ type: 'request', id: 'e', endpoint: '/v1/embeddings', body: { model: 'emb', input: 'text' } }));
  assert.ok(emb.ok);
});

test('a request the daemon cannot use is refused under its id; other bad messages under none', () => {
  const bad = (m: unknown) => {
    const r = parseClientMessage(typeof m === 'string' ? m : JSON.stringify(m));
    assert.equal(r.ok, false);
    return r as Extract<typeof r, { ok: false }>;
  };
  const cases: [unknown, string | null, RegExp][] = [
    ['[1,2]', null, /JSON object with a "type"/],
    ['"ping"', null, /JSON object/],
    [{ id: 'x' }, null, /no "type"/],
    [{ type: 'request', id: 'r1', endpoint: '/v1/chat/completions', body: { model: 'm', messages: [] } }, 'r1', /invalid body for \/v1\/chat\/completions: messages/],
    [{ type: 'request', id: 'r2', endpoint: '/v1/chat/completions', body: chatBody, max_sats: 1.5 }, 'r2', /max_sats/],
    [{ type: 'request', id: 'r3', endpoint: '/v1/chat/completions', body: chatBody, max_sats: -1 }, 'r3', /max_sats/],
    [{ type: 'request', id: 'r4', endpoint: '/v1/chat/completions', body: chatBody, policy: 'fastest' }, 'r4', /policy/],
    [{ type: 'request', id: 'r5', endpoint: '/v1/chat/completions', body: chatBody, maxSats: 5 }, 'r5', /maxSats/],
    [{ type: 'request', id: '', endpoint: '/v1/chat/completions', body: chatBody }, null, /id/],
    [{ type: 'request', id: 'x'.repeat(129), endpoint: '/v1/chat/completions', body: chatBody }, null, /id/],
    [{ type: 'request', id: 7, endpoint: '/v1/chat/completions', body: chatBody }, null, /id/],
    [{ type: 'subscribe', topics: ['gossip'] }, null, /topics/],
    [{ type: 'subscribe', topics: [] }, null, /topics/],
    [{ type: 'ping', extra: 1 }, null, /extra/],
  ];
  for (const [m, id, message] of cases) {
    const r = bad(m);
    assert.equal(r.id, id, JSON.stringify(m));
    const e = toApiError(r.error);
    assert.equal(e.code, 'bad_request', JSON.stringify(m));
    assert.match(e.message, message, JSON.stringify(m));
  }
});

test("an oversized request's id is still found, so that request can end", () => {
  assert.equal(requestIdOf(JSON.stringify({ type: 'request', id: 'huge', body: { x: 'y'.repeat(1000) } })), 'huge');
  assert.equal(requestIdOf(JSON.stringify({ type: 'cancel', id: 'huge' })), null);
  assert.equal(requestIdOf('{"type":"request","id":"cut'), null);
});

test('the daemon sends exactly the fields of the contract', () => {
  const cost = { sent_sats: 3, change_sats: 1, charged_msat: 1900, expected_msat: 1850, reported_msat: 1900 };
  const usage = { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 };
  assert.deepEqual(JSON.parse(doneMessage('c1', { requestId: 'rq', provider: 'alpha', model: 'm', usage, cost, flags: ['overcharged'], overheadMs: 3 })), {
    type: 'done', id: 'c1', request_id: 'rq', provider: 'alpha', usage, cost, flags: ['overcharged'],
  });
  assert.deepEqual(JSON.parse(acceptedMessage('c1', { requestId: 'rq', provider: 'alpha', providerUrl: 'http://a', model: 'm', reservedSats: 4, payment: 'xcashu', failedAttempts: 1 })), {
    type: 'accepted', id: 'c1', provider: 'alpha', model: 'm', reserved_sats: 4, request_id: 'rq',
  });
  const e = toApiError(new Error('with sr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA inside'));
  assert.deepEqual(JSON.parse(errorMessage('c1', e)), { type: 'error', id: 'c1', code: 'internal', message: e.message, retryable: false });
  assert.deepEqual(JSON.parse(droppedMessage('providers', 7)), { type: 'event', topic: 'providers', dropped: 7 });
});
