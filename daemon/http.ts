// The daemon's HTTP listener. For now it answers `GET /healthz` (no auth, as DESIGN.md says);
// the OpenAI-compatible API, admin routes and the WebSocket join it with the router.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpListener {
  /** host:port actually bound (port 0 in the config becomes the real port). */
  readonly address: string;
  close(): Promise<void>;
}

export class ListenError extends Error {
  override name = 'ListenError';
}

/** Parse "host:port" (IPv6 as "[::1]:8340"). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ListenError(`invalid listen address "${listen}": expected host:port, e.g. 127.0.0.1:8340`);
  return { host: m[1] ?? m[2], port };
}

export async function startHttp(listen: string, health: () => Record<string, unknown>): Promise<HttpListener> {
  const { host, port } = parseListen(listen);
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) return send(200, { ok: true, ...health() });
    send(404, { error: { code: 'not_found', message: `no route ${req.method} ${url.pathname} in this version of satroute` } });
  });
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ListenError(err.code === 'EADDRINUSE' ? `cannot listen on ${listen}: the address is in use` : `cannot listen on ${listen}: ${err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
