// A server that answers every POST with one recorded answer (status, headers, body), in its own
// process so the call benchmark measures the client side only. Prints {"url"} on stdout and
// runs until stdin closes.
//   node --import tsx bench/_replay-process.ts '{"status":200,"headers":{...},"body":"..."}'
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const answer = JSON.parse(process.argv[2] ?? '{}') as { status: number; headers: Record<string, string>; body: string };
const body = Buffer.from(answer.body);
const headers = { ...answer.headers, 'content-length': String(body.length) };
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(answer.status, headers);
    res.end(body);
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
