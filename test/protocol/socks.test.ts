import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseSocksUrl, socksFetch, SocksError } from '../../protocol/socks.ts';
import { startSocksProxy } from './socks-server.ts';

test('proxy addresses are read as socks5 host and port; other schemes are refused', () => {
  assert.deepEqual(parseSocksUrl('socks5://127.0.0.1:9050'), { host: '127.0.0.1', port: 9050 });
  assert.deepEqual(parseSocksUrl('socks5h://tor:9150'), { host: 'tor', port: 9150 });
  assert.deepEqual(parseSocksUrl('localhost:9050'), { host: 'localhost', port: 9050 });
  assert.throws(() => parseSocksUrl('http://proxy:3128'), SocksError);
});

test('a fetch through the proxy reaches the target by name; a refusal is an error, not a hang', async (t) => {
  const server = http.createServer((req, res) => res.end(JSON.stringify({ path: req.url, host: req.headers.host })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const proxy = await startSocksProxy({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
  t.after(() => proxy.stop());
  const f = socksFetch(proxy.url);
  const res = await f('http://exampleonionaddress.onion/v1/models?x=1');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { path: '/v1/models?x=1', host: 'exampleonionaddress.onion' });
  assert.deepEqual(proxy.asked, ['exampleonionaddress.onion']);
  proxy.refuse = true;
  await assert.rejects(f('http://other.onion/'), SocksError);
});
