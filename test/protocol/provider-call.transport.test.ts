// callProvider's transport edges, against small local servers that answer the way a
// routstr-core node (or the network in front of it) does in cases test/world cannot produce:
// a Content-Length that does not match the body, huge bodies, stalls, the balance mode.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { callProvider, createProviderAgents, type CallDeps, type CallRequest } from '../../protocol/provider-call.ts';
import {
  ProviderBodyTooLargeError,
  ProviderConnectionLostError,
  ProviderMalformedError,
  ProviderTimeoutError,
  ProviderUnreachableError,
} from '../../protocol/call-errors.ts';
import { socksAgentFor } from '../../protocol/socks.ts';
import { startSocksProxy } from './socks-server.ts';

const TOKEN = 'cashuBtokentokentokentoken';
const CHANGE = 'cashuBchangechangechange';
const BODY = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 };
const ANSWER = { id: 'c1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, cost: { total_msats: 30 } } };

interface Seen {
  method?: string;
  url?: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

async function server(t: TestContext, handler: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void) {
  let connections = 0;
  const seen: Seen[] = [];
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const one = { method: req.method, url: req.url, headers: req.headers, body };
      seen.push(one);
      handler(req, res, one);
    });
  });
  s.on('connection', () => (connections += 1));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen, connections: () => connections };
}

/** A server that writes raw bytes: what a broken or half-written answer looks like on the wire. */
async function rawServer(t: TestContext, onRequest: (socket: net.Socket) => void) {
  const sockets = new Set<net.Socket>();
  const s = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString();
      const head = buf.indexOf('\r\n\r\n');
      if (head === -1) return;
      const len = Number(/content-length: (\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
      if (buf.length >= head + 4 + len) {
        buf = '';
        onRequest(socket);
      }
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const so of sockets) so.destroy();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

function call(url: string, over: Partial<CallRequest> = {}, deps: CallDeps = {}) {
  return callProvider({ providerUrl: url, endpoint: '/v1/chat/completions', body: BODY, payment: { kind: 'xcashu', token: TOKEN }, ...over }, deps);
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

test('the request carries the token in X-Cashu, the JSON body, and a streamed chat asks for usage', async (t) => {
  const s = await server(t, (_req, res) => json(res, 200, ANSWER));
  await call(`${s.url}/prefix/`, { body: { ...BODY, stream: true, stream_options: { foo: 1 } } }).catch(() => undefined);
  const seen = s.seen[0];
  assert.equal(seen.method, 'POST');
  assert.equal(seen.url, '/prefix/v1/chat/completions');
  assert.equal(seen.headers['x-cashu'], TOKEN);
  assert.equal(seen.headers['content-type'], 'application/json');
  assert.equal(seen.headers.authorization, undefined);
  assert.deepEqual(JSON.parse(seen.body), { ...BODY, stream: true, stream_options: { foo: 1, include_usage: true } });
});

test('a balance payment goes as a Bearer key, and its insufficient_quota 402 is told apart', async (t) => {
  // auth.py + core/exceptions.py: {"detail": {"error": {...}}, "error": {...}, "request_id": ...}
  const err = { message: 'Insufficient balance', type: 'insufficient_quota', code: 'insufficient_balance' };
  const s = await server(t, (_req, res) => json(res, 402, { detail: { error: err }, error: err, request_id: 'r1' }, { 'x-routstr-request-id': 'r1' }));
  const r = await call(s.url, { payment: { kind: 'bearer', apiKey: 'sk-abc' } });
  assert.equal(s.seen[0].headers.authorization, 'Bearer sk-abc');
  assert.equal(s.seen[0].headers['x-cashu'], undefined);
  assert.equal(r.kind, 'insufficient_quota');
  assert.equal(r.requestId, 'r1');
  assert.equal(r.token, 'none');
});

test('calls one after another reuse one keep-alive connection', async (t) => {
  const s = await server(t, (_req, res) => json(res, 200, ANSWER, { 'x-cashu': CHANGE }));
  const agents = createProviderAgents();
  t.after(() => agents.destroy());
  for (let i = 0; i < 5; i++) assert.equal((await call(s.url, {}, { agents })).kind, 'ok');
  assert.equal(s.connections(), 1);
});

test('a Content-Length longer than the body (the node re-serialised it) still yields the whole JSON answer', async (t) => {
  const text = JSON.stringify(ANSWER);
  const url = await rawServer(t, (so) => {
    so.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-cashu: ${CHANGE}\r\ncontent-length: ${text.length + 40}\r\n\r\n${text}`);
  });
  const r = await call(url, { timeouts: { idleMs: 100 } });
  assert.ok(r.kind === 'ok' && !r.stream);
  assert.equal(r.changeToken, CHANGE);
  assert.equal(r.reported.costMsat, 30);
});

test('a body cut off after the headers (uvicorn refusing more than the declared length) still hands over the change', async (t) => {
  // uvicorn httptools_impl: "Response content longer than Content-Length" -> nothing written, connection closed.
  const url = await rawServer(t, (so) => {
    so.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-cashu: ${CHANGE}\r\nx-routstr-request-id: r9\r\ncontent-length: 120\r\n\r\n`);
  });
  await assert.rejects(call(url), (err: unknown) => {
    assert.ok(err instanceof ProviderConnectionLostError);
    assert.equal(err.reached, 'yes');
    assert.equal(err.changeToken, CHANGE);
    assert.equal(err.requestId, 'r9');
    assert.equal(err.status, 200);
    return true;
  });
});

test('a Content-Length shorter than the body cuts the JSON: malformed, with the change kept', async (t) => {
  const text = JSON.stringify(ANSWER);
  const url = await rawServer(t, (so) => {
    so.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-cashu: ${CHANGE}\r\ncontent-length: ${text.length - 10}\r\n\r\n${text}`);
  });
  await assert.rejects(call(url), (err: unknown) => err instanceof ProviderMalformedError && err.changeToken === CHANGE && err.reached === 'yes');
});

test('a 100 MB answer is cut at the limit, with the change from its headers', async (t) => {
  const s = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-cashu': CHANGE });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < 100 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => (sent = Infinity));
    pump();
  });
  await assert.rejects(call(s.url, { maxAnswerBytes: 1024 * 1024 }), (err: unknown) => {
    assert.ok(err instanceof ProviderBodyTooLargeError);
    assert.equal(err.limitBytes, 1024 * 1024);
    assert.equal(err.changeToken, CHANGE);
    return true;
  });
});

test("a 200 that is not JSON (the node's emergency full refund) or not a chat answer is malformed, change kept", async (t) => {
  // upstream/base.py handle_x_cashu_non_streaming_response, JSONDecodeError: the whole amount refunded in
  // X-Cashu and the upstream's raw content returned.
  const s = await server(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-cashu': CHANGE });
    res.end(req.url?.includes('embeddings') ? '{"object":"list"}' : 'upstream said <html>oops</html>');
  });
  await assert.rejects(call(s.url), (err: unknown) => err instanceof ProviderMalformedError && err.changeToken === CHANGE);
  await assert.rejects(call(s.url, { endpoint: '/v1/embeddings', body: { model: 'e', input: 'x' } }), (err: unknown) => err instanceof ProviderMalformedError && /data/.test(err.message));
});

test('a connection that never opens (a slow SOCKS proxy) times out at connect: the request never left', async () => {
  class NeverConnects extends http.Agent {
    override createConnection(): undefined {
      return undefined; // the callback form: never called
    }
  }
  await assert.rejects(call('http://127.0.0.1:9', { timeouts: { connectMs: 80 } }, { agentFor: () => new NeverConnects() }), (err: unknown) => {
    assert.ok(err instanceof ProviderTimeoutError);
    assert.equal(err.timeout, 'connect');
    assert.equal(err.reached, 'no');
    return true;
  });
});

test('a stream that stalls between events times out as idle, after what it delivered', async (t) => {
  const s = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-cashu': CHANGE });
    res.write('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[{"delta":{"content":"b"}}]}\n\n');
  });
  const r = await call(s.url, { body: { ...BODY, stream: true }, timeouts: { idleMs: 100 } });
  assert.ok(r.kind === 'ok' && r.stream);
  const got: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const e of r.events) got.push(e);
    })(),
    (err: unknown) => err instanceof ProviderTimeoutError && err.timeout === 'idle' && err.eventsDelivered === 2 && err.changeToken === CHANGE,
  );
  assert.equal(got.length, 2);
});

test('a slow reader is not mistaken for a stalled provider', async (t) => {
  const s = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: {"choices":[]}\n\n');
    setTimeout(() => res.end('data: {"choices":[]}\n\ndata: [DONE]\n\n'), 20);
  });
  const r = await call(s.url, { body: { ...BODY, stream: true }, timeouts: { idleMs: 60 } });
  assert.ok(r.kind === 'ok' && r.stream);
  let n = 0;
  for await (const _ of r.events) {
    n += 1;
    if (n === 1) await new Promise((res) => setTimeout(res, 150)); // our client is slow
  }
  assert.equal(n, 2);
  assert.equal(r.events.sawDone, true);
});

test('a stream that never ends is stopped by the total timeout', async (t) => {
  const s = await server(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const ping = setInterval(() => res.write(': ping\n\n'), 10);
    res.on('close', () => clearInterval(ping));
  });
  const r = await call(s.url, { body: { ...BODY, stream: true }, timeouts: { totalMs: 200, idleMs: 100 } });
  assert.ok(r.kind === 'ok' && r.stream);
  await assert.rejects(
    (async () => {
      for await (const _ of r.events);
    })(),
    (err: unknown) => err instanceof ProviderTimeoutError && err.timeout === 'total' && err.reached === 'yes',
  );
});

test('a JSON answer to a streaming request (the node did not stream) is handed over as a plain answer', async (t) => {
  const s = await server(t, (_req, res) => json(res, 200, ANSWER, { 'x-cashu': CHANGE }));
  const r = await call(s.url, { body: { ...BODY, stream: true } });
  assert.ok(r.kind === 'ok' && !r.stream);
  assert.equal(r.changeToken, CHANGE);
});

test('an error answer to a streaming request is classified like any other', async (t) => {
  const s = await server(t, (_req, res) =>
    json(res, 502, { error: { message: 'Error forwarding request to upstream', type: 'upstream_error', code: 502, refund_token: CHANGE } }, { 'x-cashu': CHANGE }),
  );
  const r = await call(s.url, { body: { ...BODY, stream: true } });
  assert.ok(r.kind === 'upstream_error');
  assert.equal(r.refundToken, CHANGE);
});

test('an .onion provider is called through the SOCKS proxy; a proxy that cannot reach it means the request never left', async (t) => {
  const s = await server(t, (_req, res) => json(res, 200, ANSWER, { 'x-cashu': CHANGE }));
  const proxy = await startSocksProxy({ host: '127.0.0.1', port: Number(new URL(s.url).port) });
  t.after(() => proxy.stop());
  const agentFor = socksAgentFor(proxy.url);
  const onion = 'http://providerxyzprovidexyz.onion';
  const r = await call(onion, {}, { agentFor });
  assert.ok(r.kind === 'ok');
  assert.equal(r.changeToken, CHANGE);
  assert.deepEqual(proxy.asked, ['providerxyzprovidexyz.onion']);
  assert.equal(s.seen[0].headers.host, 'providerxyzprovidexyz.onion');
  assert.equal(agentFor(new URL(s.url)), undefined);
  proxy.refuse = true;
  await assert.rejects(call(onion, {}, { agentFor }), (err: unknown) => err instanceof ProviderUnreachableError && err.reached === 'no');
});

test("a node that thinks for longer than the agent's idle-socket timeout is still waited for", async (t) => {
  // The agent's socket timeout only closes idle pooled sockets (an X-Cashu answer arrives after the whole generation).
  const s = await server(t, (_req, res) => setTimeout(() => json(res, 200, ANSWER), 200));
  const agents = createProviderAgents({ freeSocketTimeoutMs: 30 });
  t.after(() => agents.destroy());
  const r = await call(s.url, {}, { agents });
  assert.equal(r.kind, 'ok');
});

test('a provider URL that is not http(s) is unreachable, never sent', async () => {
  for (const url of ['not a url', 'ws://127.0.0.1:1']) {
    await assert.rejects(call(url), (err: unknown) => err instanceof ProviderUnreachableError && err.reached === 'no');
  }
});
