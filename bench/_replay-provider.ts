// A provider that replays answers recorded from a world provider, in its own process: GET
// /v1/info and /v1/models as recorded (so satroute's market probes it like any provider), and
// every POST answered with one recorded paid answer - without redeeming the token, so no mint
// work muddies a latency benchmark. With `changeFile` (one valid Cashu token per line, made
// beforehand at the world's mint) each answer hands one out in X-Cashu as its change, so the
// payer's wallet sees change come back as from a real node. Prints {"url"}; runs until stdin closes.
//   node --import tsx bench/_replay-provider.ts '{"info":"...","models":"...","answer":{"headers":{...},"body":"..."},"changeFile":"/tmp/..."}'
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const rec = JSON.parse(process.argv[2] ?? '{}') as { info: string; models: string; answer: { headers: Record<string, string>; body: string }; changeFile?: string };
const change = rec.changeFile ? fs.readFileSync(rec.changeFile, 'utf8').split('\n').filter(Boolean) : [];
const json = (text: string) => ({ body: Buffer.from(text), headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) } });
const info = json(rec.info);
const models = json(rec.models);
const paidBody = Buffer.from(rec.answer.body);
const paidHeaders = { ...rec.answer.headers, 'content-length': String(paidBody.length) };
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/v1/info') return void (res.writeHead(200, info.headers), res.end(info.body));
    if (req.method === 'GET' && req.url === '/v1/models') return void (res.writeHead(200, models.headers), res.end(models.body));
    const token = req.headers['x-cashu'] !== undefined ? change.pop() : undefined;
    res.writeHead(200, token ? { ...paidHeaders, 'x-cashu': token } : paidHeaders);
    res.end(paidBody);
  });
});
server.keepAliveTimeout = 5_000; // uvicorn's default
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }) + '\n');
});
process.stdin.resume();
process.stdin.on('end', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
